"""Saving and loading fitted estimators in files that cannot run code.

A model file is a zip archive of two members:

- ``model.json``: the format version, the versions of the packages that
  wrote it, and the estimator as a tree: its class (one of the package's
  public estimators), its parameters and its fitted attributes, as JSON
  values; a value JSON has no type for (a tuple, an array, a device, a
  nested estimator, a preset spec) is an object tagged ``"__type__"``;
- ``tensors.safetensors``: every array and tensor, in the safetensors
  layout (a JSON header, then the raw little-endian bytes), written and read
  here with numpy and torch alone, so the ``safetensors`` package is not
  needed (and reads the member, if installed).

:func:`load` never unpickles: JSON and raw bytes cannot carry code, an
estimator's class is looked up in an allow-list of the package's public
estimators, and a torch module is rebuilt empty by its estimator
(``_build_fitted_module(name)``, from the restored parameters and fitted
attributes) and filled with ``load_state_dict(strict=True)``. What cannot
be stored this way is refused by :func:`save`, naming it.
"""

import dataclasses
import io
import itertools
import json
import math
import os
import platform
import re
import stat
import struct
import sys
import warnings
import zipfile
import zlib
from typing import ClassVar

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator
from skorch.history import History

from ._devices import is_available
from ._files import write_atomically
from ._likelihoods import LIKELIHOODS, Likelihood

FORMAT = "sklearn_autodecoder.model"
FORMAT_VERSION = 1
MODEL_MEMBER = "model.json"
TENSORS_MEMBER = "tensors.safetensors"
TYPE_KEY = "__type__"
# A difference in these versions may change what a model computes: warn.
CHECKED_VERSIONS = ("sklearn_autodecoder", "torch", "scikit-learn")

# Torch dtypes and their safetensors names; the unsigned types beyond uint8
# exist from torch 2.3 on.
_DTYPE_NAMES = {
    getattr(torch, name): code
    for name, code in [
        ("bool", "BOOL"), ("uint8", "U8"), ("int8", "I8"), ("int16", "I16"),
        ("uint16", "U16"), ("int32", "I32"), ("uint32", "U32"), ("int64", "I64"),
        ("uint64", "U64"), ("float16", "F16"), ("bfloat16", "BF16"),
        ("float32", "F32"), ("float64", "F64"),
    ]
    if hasattr(torch, name)
}
_DTYPES = {code: dtype for dtype, code in _DTYPE_NAMES.items()}
# numpy dtypes of the scalars and arrays that are stored (exactly).
_NUMPY_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64"]
)
_UNICODE_DTYPE = re.compile(r"[<>=|]?U[0-9]{1,9}")
# What load allocates is bounded by the file's own size: its members may
# declare, inflated and all together, at most MAX_EXPANSION times the file's
# size plus SIZE_ALLOWANCE bytes (a string array's bytes count against the
# same bound). Model files are far below it: their tensors are stored
# uncompressed, and model.json deflates about 5 to 80 times. JSON parsed
# into Python objects takes up to ~25 times its text, hence the small factor.
MAX_EXPANSION = 100
SIZE_ALLOWANCE = 256 * 1024
# Deflate expands at most about 1032 times (a 258-byte match coded in two
# bits, at best): a deflated member declaring more lies.
_DEFLATE_RATIO = 1032
_CHUNK = 64 * 1024  # members are inflated this many bytes at a time
_MAX_DIMS = 64  # numpy's limit on dimensions
_MAX_DIM = 2**63 - 1


class ModelFileError(ValueError):
    """A file :func:`load` cannot read: not a model file, damaged or tampered with."""


class SaveMixin:
    """Give an estimator :meth:`save`; :func:`load` reads the file back."""

    def save(self, path):
        """Save the estimator to a file that loads without running code.

        The parameters and small fitted attributes are stored as JSON, the
        weights and arrays as raw tensors (safetensors layout), in one zip
        file. Unlike a pickle, the file cannot execute code when loaded, so
        it is safe to share; read it back with
        :func:`sklearn_autodecoder.load`. A model fitted on a GPU loads on a
        CPU-only machine.

        Parameters
        ----------
        path : str, os.PathLike or binary file object
            Where to write. A path is written through a temporary file of a
            unique name in the same directory, then renamed over ``path``:
            an interrupted save never leaves a truncated model behind, and
            concurrent saves to one path each leave a complete file. The
            file gets the permissions ``open`` would give it (those of the
            file it replaces, else the umask's); a symlink at ``path`` is
            replaced, not written through.

        Raises
        ------
        ValueError
            If a parameter or attribute cannot be stored safely, naming it:
            callbacks (not part of a fitted model: set ``callbacks=None``
            first), a custom callable, or an object of an unknown class.
        TypeError
            If ``path`` is neither a path nor a binary file object.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from sklearn_autodecoder import AutoDecoder, load
        >>> X = np.random.RandomState(0).rand(30, 4)
        >>> model = AutoDecoder(hidden_layer_sizes=(), max_iter=2, random_state=0).fit(X)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     model.save(os.path.join(folder, "model.zip"))
        ...     loaded = load(os.path.join(folder, "model.zip"))
        >>> bool((loaded.transform(X) == model.transform(X)).all())
        True
        """
        save(self, path)


# ---- allow-lists ------------------------------------------------------------------


def _estimator_classes():
    """The package's public estimators by name: the only classes load builds."""
    import sklearn_autodecoder as package

    classes = (getattr(package, name) for name in package.__all__)
    return {
        cls.__name__: cls
        for cls in classes
        if isinstance(cls, type) and issubclass(cls, BaseEstimator)
    }


def _data_classes():
    """Plain-data classes stored field by field (dataclasses and NamedTuples)."""
    from . import presets

    return {cls.__name__: cls for cls in (presets.ConvDecoderSpec, presets.ConvLayer)}


def _fields(value):
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    return value._asdict()


def _versions():
    from . import __version__

    return {
        "sklearn_autodecoder": __version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _check_byte_order():
    # The safetensors layout is little-endian, as are the machines torch runs on.
    if sys.byteorder != "little":
        raise OSError("Model files can only be read and written on little-endian machines.")


# ---- save ------------------------------------------------------------------------


def _unsupported(path, value, why=""):
    return ValueError(
        f"Cannot save {path}: a {type(value).__module__}.{type(value).__qualname__} "
        f"cannot be stored safely{why}. save() stores parameters and fitted attributes made "
        "of numbers, strings, lists, tuples, dicts, arrays, tensors, torch modules and the "
        "package's own estimators and preset specs; pickle or joblib can save anything, but "
        "only load such files from sources you trust."
    )


class _Encoder:
    """Turns an estimator into a JSON tree, collecting its tensors on the side."""

    def __init__(self):
        self.tensors = {}

    def estimator(self, estimator, path):
        cls = type(estimator)
        classes = _estimator_classes()
        if classes.get(cls.__name__) is not cls:
            where = f"{path} is" if path else "The estimator is"
            raise ValueError(
                f"{where} a {cls.__module__}.{cls.__qualname__}; save() stores only the "
                f"package's public estimators ({', '.join(sorted(classes))}). Use pickle or "
                "joblib for other classes (and load such files only from trusted sources)."
            )
        prefix = f"{path}." if path else ""
        params = estimator.get_params(deep=False)
        if params.get("callbacks"):
            raise ValueError(
                f"Cannot save {prefix}callbacks: callbacks are not part of a fitted model and "
                f"are not saved. Set them to None before saving, e.g. "
                f"model.{prefix}set_params(callbacks=None): a fitted model does not use them "
                "(copy.deepcopy the model first to keep them on the original)."
            )
        node = {
            TYPE_KEY: "estimator",
            "class": cls.__name__,
            "params": {name: self.value(v, prefix + name) for name, v in params.items()},
            "attributes": {},
        }
        for name, value in vars(estimator).items():
            if name in params:
                continue
            if isinstance(value, torch.nn.Module):
                node["attributes"][name] = self.module(estimator, name, value, prefix + name)
            else:
                node["attributes"][name] = self.value(value, prefix + name)
        return node

    def module(self, estimator, name, module, path):
        """A fitted torch module: its tensors, devices and modes (not its code)."""
        _check_architecture(estimator, name, module, path)
        return {
            TYPE_KEY: "module",
            "tensors": {
                key: self.tensor(t, f"{path}.{key}")
                for key, t in module.state_dict(keep_vars=False).items()
            },
            "device": str(_module_device(module)),
            "training": [n for n, m in module.named_modules() if m.training],
        }

    def tensor(self, tensor, key):
        """Stash a tensor and return its key in the tensors member."""
        if tensor.layout != torch.strided or tensor.dtype not in _DTYPE_NAMES:
            raise _unsupported(key, tensor, f" (dtype {tensor.dtype}, layout {tensor.layout})")
        if key in self.tensors:  # paths are unique; a clash would lose data
            raise RuntimeError(f"Two tensors would be stored under {key!r}.")
        self.tensors[key] = tensor.detach().to("cpu", copy=True).contiguous()
        return key

    def value(self, value, path):
        """The JSON node of a parameter or attribute value, or a clear refusal."""
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if math.isfinite(value) else {TYPE_KEY: "float", "value": repr(value)}
        if isinstance(value, np.generic):
            if value.dtype.name not in _NUMPY_DTYPES:
                raise _unsupported(path, value)
            return {TYPE_KEY: "numpy", "dtype": value.dtype.name, "value": self.value(value.item(), path)}
        if _data_classes().get(kind.__name__) is kind:
            return {
                TYPE_KEY: "data",
                "class": kind.__name__,
                "fields": {k: self.value(v, f"{path}.{k}") for k, v in _fields(value).items()},
            }
        if kind is History:
            return {TYPE_KEY: "history", "items": self.value(list(value), path)}
        if kind is list:
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind is tuple:
            return {TYPE_KEY: "tuple", "items": [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            return self.dict(value, path)
        if isinstance(value, np.ndarray):
            return self.array(value, path)
        if isinstance(value, torch.Tensor):
            return {
                TYPE_KEY: "tensor",
                "tensor": self.tensor(value, path),
                "device": str(value.device),
                "requires_grad": value.requires_grad,
            }
        if kind is torch.device:
            return {TYPE_KEY: "device", "value": str(value)}
        if kind is torch.dtype and value in _DTYPE_NAMES:
            return {TYPE_KEY: "torch_dtype", "value": _DTYPE_NAMES[value]}
        if kind is np.random.RandomState:
            return {TYPE_KEY: "random_state", "state": self.value(value.get_state(), path)}
        if isinstance(value, BaseEstimator):
            return self.estimator(value, path)
        if isinstance(value, Likelihood):
            if LIKELIHOODS.get(value.name) is not type(value):
                raise _unsupported(path, value, " (a likelihood class outside the package's registry)")
            return {TYPE_KEY: "likelihood", "name": value.name, "params": self.dict(value.get_params(), path)}
        if isinstance(value, torch.nn.Module):
            return self.user_module(value, path)
        if callable(value):
            raise _unsupported(path, value, " (a callable is code)")
        raise _unsupported(path, value)

    def user_module(self, module, path):
        """A module given as a parameter (``decoder=``): its class by name, attributes, tensors.

        Like pickle, but for ``nn.Module`` trees only: the class is named
        (it must be importable by that name), every plain attribute is a
        JSON value, each parameter and buffer a tensor, each child module
        a node of its own. Hooks and callables are code: refused.
        """
        cls = type(module)
        name = f"{cls.__module__}:{cls.__qualname__}"
        # __main__ is another module in the process that loads the file.
        main = cls.__module__ == "__main__"
        if main or "<" in cls.__qualname__ or _find_class(cls.__module__, cls.__qualname__) is not cls:
            raise _unsupported(path, module, " (its class cannot be imported by its name: define it "
                               "at the top level of an importable module, not in __main__ or a function)")
        state = vars(module)
        hooks = [key for key in _MODULE_INTERNALS if isinstance(state.get(key), dict) and state[key]
                 and "hook" in key]
        if hooks:
            raise _unsupported(path, module, f" (it has hooks, which are code: {', '.join(hooks)})")
        return {
            TYPE_KEY: "torch_module",
            "class": name,
            "training": module.training,
            "attributes": {k: self.value(v, f"{path}.{k}") for k, v in state.items()
                           if k not in _MODULE_INTERNALS},
            "parameters": {k: None if p is None else {"tensor": self.tensor(p, f"{path}.{k}"),
                                                      "requires_grad": p.requires_grad}
                           for k, p in module._parameters.items()},
            "buffers": {k: None if b is None else self.tensor(b, f"{path}.{k}")
                        for k, b in module._buffers.items()},
            "non_persistent": sorted(module._non_persistent_buffers_set),
            "children": {k: None if c is None else self.user_module(c, f"{path}.{k}")
                         for k, c in module._modules.items()},
        }

    def dict(self, value, path):
        # A string-keyed dict is a plain JSON object, unless a key could be
        # mistaken for the type tag; other keys go in a list of pairs.
        if all(type(k) is str for k in value) and TYPE_KEY not in value:
            return {k: self.value(v, f"{path}[{k!r}]") for k, v in value.items()}
        return {
            TYPE_KEY: "dict",
            "items": [
                [self.value(k, f"{path} (key {i})"), self.value(v, f"{path}[{k!r}]")]
                for i, (k, v) in enumerate(value.items())
            ],
        }

    def array(self, value, path):
        if value.dtype.kind in "OU":  # e.g. feature_names_in_
            items = value.ravel().tolist()
            if not all(type(item) is str for item in items):
                raise _unsupported(path, value, " (an object array holding other than strings)")
            return {
                TYPE_KEY: "string_array",
                "dtype": "object" if value.dtype.kind == "O" else value.dtype.str,
                "shape": list(value.shape),
                "items": items,
            }
        if value.dtype.name not in _NUMPY_DTYPES:
            raise _unsupported(path, value, f" (dtype {value.dtype})")
        native = value.astype(value.dtype.newbyteorder("="), copy=False)
        return {TYPE_KEY: "array", "tensor": self.tensor(torch.from_numpy(np.ascontiguousarray(native)), path)}


# What nn.Module.__init__ puts in every module's __dict__ (stored apart, or empty hooks).
_MODULE_INTERNALS = frozenset(vars(torch.nn.Module()))


def _find_class(module_name, qualname, imported_only=False):
    """The class ``module_name:qualname``, or None; with ``imported_only``, from ``sys.modules`` alone."""
    import importlib

    if imported_only:
        owner = sys.modules.get(module_name)
    else:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            return None
    for part in qualname.split("."):
        owner = getattr(owner, part, None) if part.isidentifier() and not part.startswith("__") else None
    return owner


def runnable_device(device, warned=None):
    """``device`` if it is available here, else the CPU, with a warning.

    The one device fallback of loaded models (:func:`load`, and unpickling
    in ``BaseRepresentationEstimator.__setstate__``). ``warned``: a set of
    devices already warned about, to warn once per device.
    """
    device = torch.device(device)
    if is_available(device):
        return device
    if warned is None or device not in warned:
        if warned is not None:
            warned.add(device)
        warnings.warn(
            f"This model was fitted on {device}, which is not available here; it now runs on the CPU.",
            UserWarning,
            stacklevel=3,
        )
    return torch.device("cpu")


def _module_device(module):
    tensor = next(iter(module.state_dict().values()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _empty_module(estimator, name):
    """The estimator's untrained module for fitted attribute ``name``, on the meta device.

    On the meta device no memory is allocated and no random number drawn:
    the weights come from the file.
    """
    build = getattr(estimator, "_build_fitted_module", None)
    if build is None:
        raise ValueError(
            f"{type(estimator).__name__} cannot rebuild its torch module {name} "
            "(it has no _build_fitted_module)."
        )
    with torch.device("meta"), warnings.catch_warnings():
        # The weights come from the file: how the empty module initialises is moot.
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        return build(name)


def _shapes(module):
    return {key: tuple(tensor.shape) for key, tensor in module.state_dict().items()}


def _check_architecture(estimator, name, module, path):
    """Refuse at save a module that its estimator's parameters would not rebuild."""
    try:
        empty = _empty_module(estimator, name)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"Cannot save {path}: the estimator cannot rebuild it ({exc}).") from exc
    if type(empty) is not type(module) or _shapes(empty) != _shapes(module):
        raise ValueError(
            f"Cannot save {path}: it does not have the architecture that the estimator's "
            "parameters describe (were they changed after fit, e.g. with set_params?). "
            "Restore them, or refit, before saving."
        )


def _write_tensors(file, tensors):
    """Write a dict of CPU tensors to ``file`` in the safetensors layout."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for key, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        header[key] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the layout pads the header to 8 bytes
    file.write(struct.pack("<Q", len(text)) + text)
    for tensor in tensors.values():
        file.write(tensor.reshape(-1).view(torch.uint8).numpy())


def save(estimator, path):
    """Save ``estimator`` to ``path``; see :meth:`SaveMixin.save`."""
    _check_byte_order()
    if not isinstance(path, (str, bytes, os.PathLike)) and (
        isinstance(path, io.TextIOBase) or not callable(getattr(path, "write", None))
    ):  # before the work of encoding
        raise TypeError(
            f"path must be a str, os.PathLike or binary file object (opened with 'wb'), "
            f"got {type(path).__name__}."
        )
    encoder = _Encoder()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "estimator": encoder.estimator(estimator, ""),
    }
    text = json.dumps(document, indent=1, allow_nan=False)

    def write(file):
        with zipfile.ZipFile(file, "w") as archive:
            archive.writestr(MODEL_MEMBER, text, compress_type=zipfile.ZIP_DEFLATED)
            with archive.open(TENSORS_MEMBER, "w", force_zip64=True) as member:
                _write_tensors(member, encoder.tensors)

    if isinstance(path, (str, bytes, os.PathLike)):
        write_atomically(path, write)
    else:
        write(path)


# ---- load ------------------------------------------------------------------------


def _expect(condition, message):
    if not condition:
        raise ModelFileError(message)


def _is_int(value, minimum=0):
    return type(value) is int and value >= minimum


def _is_shape(shape):
    """A list of at most _MAX_DIMS sizes, each an int that numpy and torch can index with."""
    return (type(shape) is list and len(shape) <= _MAX_DIMS
            and all(_is_int(s) and s <= _MAX_DIM for s in shape))


def _read_tensors(buffer):
    """The tensors of a safetensors buffer, each checked against the header."""
    _expect(len(buffer) >= 8, "The tensors member is truncated.")
    (n_header,) = struct.unpack("<Q", buffer[:8])
    _expect(n_header <= len(buffer) - 8, "The tensors member is truncated.")
    try:
        header = json.loads(bytes(buffer[8 : 8 + n_header]))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"The tensors member's header is not valid JSON ({exc}).") from None
    _expect(type(header) is dict, "The tensors member's header is not a JSON object.")
    header.pop("__metadata__", None)
    start, size = 8 + n_header, len(buffer) - 8 - n_header
    tensors, spans = {}, []
    for key, info in header.items():
        _expect(type(info) is dict and info.keys() >= {"dtype", "shape", "data_offsets"},
                f"Tensor {key!r}: malformed header entry.")
        dtype = _DTYPES.get(info["dtype"]) if type(info["dtype"]) is str else None
        shape, offsets = info["shape"], info["data_offsets"]
        _expect(dtype is not None, f"Tensor {key!r}: unknown dtype {info['dtype']!r}.")
        _expect(_is_shape(shape), f"Tensor {key!r}: bad shape.")
        _expect(type(offsets) is list and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and offsets[0] <= offsets[1] <= size, f"Tensor {key!r}: bad data offsets.")
        count = math.prod(shape)
        _expect(offsets[1] - offsets[0] == count * dtype.itemsize,
                f"Tensor {key!r}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}.")
        spans.append(offsets)
        if count == 0:
            try:
                tensors[key] = torch.empty(shape, dtype=dtype)
            except RuntimeError as exc:  # a size torch cannot stride, e.g. [0, 2**62, 4]
                raise ModelFileError(f"Tensor {key!r}: bad shape {shape} ({exc}).") from None
            continue
        # Bytes are read as uint8 and cast, so that no bit pattern is an
        # invalid value (a bool byte other than 0 or 1); clone() aligns them.
        raw = torch.frombuffer(buffer, dtype=torch.uint8, count=offsets[1] - offsets[0],
                               offset=start + offsets[0]).clone()
        tensors[key] = (raw != 0 if dtype == torch.bool else raw.view(dtype)).reshape(shape)
    spans.sort()
    _expect(all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "Tensor data overlap.")
    return tensors


def _open(path):
    """``(file, size, close)``: the model file open for reading, its size in bytes."""
    if isinstance(path, (str, bytes, os.PathLike)):
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
            raise ModelFileError(f"{os.fsdecode(path)!r} is not a regular file.")
        file = open(path, "rb")
        return file, os.fstat(file.fileno()).st_size, True
    if isinstance(path, io.TextIOBase) or not all(
        callable(getattr(path, name, None)) for name in ("read", "seek", "tell")
    ):
        raise TypeError(
            "path must be a str, os.PathLike or binary file object (opened with 'rb'), "
            f"got {type(path).__name__}."
        )
    seekable = getattr(path, "seekable", None)
    if callable(seekable) and not seekable():
        raise io.UnsupportedOperation(
            "load needs a file object it can seek in (a zip archive is read from its end); "
            "read this one into an io.BytesIO first."
        )
    path.seek(0, io.SEEK_END)
    return path, path.tell(), False


def _check_sizes(infos, size):
    """Refuse members whose declared sizes are out of proportion to the file's ``size``.

    Returns the bound of what load may allocate for the model's content.
    """
    limit = SIZE_ALLOWANCE + MAX_EXPANSION * size
    for info in infos:
        name = info.filename
        _expect(info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED),
                f"{name} uses compression method {info.compress_type}; model files use only "
                "stored or deflated members.")
        _expect(info.compress_size <= size,
                f"{name} declares {info.compress_size:,} compressed bytes in a file of {size:,}.")
        _expect(info.file_size <= (info.compress_size if info.compress_type == zipfile.ZIP_STORED
                                   else _DEFLATE_RATIO * info.compress_size + 64),
                f"{name} declares {info.file_size:,} bytes from {info.compress_size:,} compressed "
                "ones, more than the compression can produce (a zip bomb, or a damaged file).")
    declared = sum(info.file_size for info in infos)
    _expect(declared <= limit,
            f"The file's members declare {declared:,} bytes once inflated, more than "
            f"{MAX_EXPANSION} times the file's {size:,} bytes (plus {SIZE_ALLOWANCE:,}), which "
            "load refuses so that a small file cannot take much memory (a zip bomb). A file "
            "written by save() is far below this bound.")
    return limit


def _read_member(archive, info):
    """The bytes of a member, inflated a chunk at a time and never beyond its declared size."""
    buffer, filled = bytearray(info.file_size), 0
    with archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            _expect(filled + len(chunk) <= len(buffer),
                    f"{info.filename} holds more bytes than it declares.")
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    _expect(filled == len(buffer), f"{info.filename} is truncated.")
    return buffer


def _read_archive(path):
    """The model document, the tensors of a model file, and the bound on its allocations."""
    file, size, close = _open(path)
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
            names = sorted(info.filename for info in infos)
            _expect(names == sorted([MODEL_MEMBER, TENSORS_MEMBER]),
                    f"Not a model file: it holds {names}, not {[MODEL_MEMBER, TENSORS_MEMBER]}.")
            limit = _check_sizes(infos, size)
            members = {info.filename: info for info in infos}
            try:
                document = json.loads(_read_member(archive, members[MODEL_MEMBER]))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                if isinstance(exc, ModelFileError):
                    raise
                raise ModelFileError(f"{MODEL_MEMBER} is not valid JSON ({exc}).") from None
            _check_document(document)
            tensors = _read_tensors(_read_member(archive, members[TENSORS_MEMBER]))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(f"Not a model file, or a damaged one: {exc}") from None
    finally:
        if close:
            file.close()
    return document, tensors, limit


def _check_document(document):
    _expect(type(document) is dict and document.get("format") == FORMAT,
            f"Not a sklearn_autodecoder model file (no format {FORMAT!r}).")
    version = document.get("format_version")
    _expect(_is_int(version, 1), f"The model file has a malformed format version {version!r}: "
            "a positive integer is expected (a damaged or tampered file).")
    _expect(version <= FORMAT_VERSION,
            f"Unknown model file format version {version!r}: this sklearn_autodecoder reads "
            f"versions 1 to {FORMAT_VERSION}. A newer version of the package wrote it: upgrade.")
    saved, current = document.get("versions"), _versions()
    _expect(type(saved) is dict, "The model file does not record its versions.")
    differ = [f"{name} {saved.get(name)} (now {current[name]})"
              for name in CHECKED_VERSIONS if saved.get(name) != current[name]]
    if differ:
        warnings.warn(
            f"This model was saved with {', '.join(differ)}. It may compute differently, "
            "or fail: check its results, or refit it with the installed versions.",
            UserWarning,
            stacklevel=4,
        )
    _expect(type(document.get("estimator")) is dict, "The model file holds no estimator.")


def _is_module(node):
    return type(node) is dict and node.get(TYPE_KEY) == "module"


class _Decoder:
    """Rebuilds values from JSON nodes and the loaded tensors."""

    def __init__(self, tensors, limit):
        self.tensors = tensors
        self.limit = limit  # the most bytes an array built from JSON may take
        self.used = set()
        self.warned = set()

    def tensor(self, key):
        _expect(type(key) is str and key in self.tensors, f"Missing tensor {key!r}.")
        _expect(key not in self.used, f"Tensor {key!r} is used twice.")
        self.used.add(key)
        return self.tensors[key]

    def device(self, name):
        """The device ``name``, or the CPU (with one warning per device) where it is not available."""
        return runnable_device(name, warned=self.warned)

    def estimator(self, node, path):
        classes = _estimator_classes()
        _expect(type(node) is dict and node.get(TYPE_KEY) == "estimator", f"{path}: not an estimator.")
        cls = classes.get(node.get("class")) if type(node.get("class")) is str else None
        _expect(cls is not None, f"{path}: unknown estimator class {node.get('class')!r}; "
                f"expected one of {sorted(classes)}.")
        params, attributes = node.get("params"), node.get("attributes")
        _expect(type(params) is dict and type(attributes) is dict, f"{path}: malformed estimator.")
        names = set(cls._get_param_names())
        _expect(params.keys() <= names, f"{path}: unknown parameters {sorted(params.keys() - names)} "
                f"of {cls.__name__}.")
        prefix = f"{path}." if path else ""
        estimator = cls(**{name: self.value(v, prefix + name) for name, v in params.items()})
        estimator._validate_params()  # a ValueError (sklearn's) names a tampered parameter
        for name in attributes:
            # Nor may an attribute shadow what the class defines (a method, a property).
            _expect(type(name) is str and name.isidentifier() and not name.startswith("__")
                    and name not in names and not hasattr(cls, name),
                    f"{path}: invalid attribute name {name!r}.")
        # Set as pickle does, past any descriptor of the class; modules last,
        # as rebuilding one uses the other fitted attributes.
        state = vars(estimator)
        for name, value in attributes.items():
            state[name] = None if _is_module(value) else self.value(value, prefix + name)
        if isinstance(state.get("device_"), torch.device):
            state["device_"] = self.device(str(state["device_"]))
        for name, value in attributes.items():
            if _is_module(value):
                state[name] = self.module(estimator, name, value, prefix + name)
        return estimator

    def module(self, estimator, name, node, path):
        try:
            module = _empty_module(estimator, name)
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: the estimator cannot rebuild it ({exc}).") from None
        keys, training = node.get("tensors"), node.get("training")
        _expect(type(keys) is dict and type(training) is list and type(node.get("device")) is str,
                f"{path}: malformed module.")
        state = {k: self.tensor(v) for k, v in keys.items()}
        try:
            module.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"{path}: the stored weights do not fit the architecture its parameters "
                f"describe (a tampered or damaged file): {exc}"
            ) from None
        _expect(not any(t.is_meta for t in [*module.parameters(), *module.buffers()]),
                f"{path}: the file does not hold all of the module's tensors.")
        for sub_name, sub in module.named_modules():
            sub.training = sub_name in training
        return module.to(self.device(node["device"]))

    def value(self, node, path):
        if node is None or type(node) in (bool, int, float, str):
            return node
        # Lists and plain dicts are decoded in place: the JSON tree is load's
        # own, and a copy would double what a file of many small containers takes.
        if type(node) is list:
            for i, v in enumerate(node):
                node[i] = self.value(v, f"{path}[{i}]")
            return node
        _expect(type(node) is dict, f"{path}: unexpected JSON value.")
        if TYPE_KEY not in node:
            for k, v in node.items():
                node[k] = self.value(v, f"{path}[{k!r}]")
            return node
        kind = node[TYPE_KEY]
        decode = self._DECODERS.get(kind) if type(kind) is str else None
        _expect(decode is not None, f"{path}: unknown value type {kind!r}.")
        return decode(self, node, path)

    def _float(self, node, path):
        _expect(node.get("value") in ("nan", "inf", "-inf"), f"{path}: bad float.")
        return float(node["value"])

    def _numpy(self, node, path):
        dtype = node.get("dtype")
        _expect(dtype in _NUMPY_DTYPES, f"{path}: bad numpy scalar dtype {dtype!r}.")
        return np.dtype(dtype).type(self.value(node.get("value"), path))

    def _data(self, node, path):
        cls = _data_classes().get(node.get("class")) if type(node.get("class")) is str else None
        _expect(cls is not None and type(node.get("fields")) is dict, f"{path}: unknown data class.")
        return cls(**{k: self.value(v, f"{path}.{k}") for k, v in node["fields"].items()})

    def _history(self, node, path):
        items = self.value(node.get("items"), path)
        _expect(type(items) is list, f"{path}: bad history.")
        return History(items)

    def _tuple(self, node, path):
        _expect(type(node.get("items")) is list, f"{path}: bad tuple.")
        return tuple(self.value(node["items"], path))

    def _dict(self, node, path):
        items = node.get("items")
        _expect(type(items) is list and all(type(p) is list and len(p) == 2 for p in items),
                f"{path}: bad dict.")
        return {self.value(k, path): self.value(v, f"{path}[{i}]") for i, (k, v) in enumerate(items)}

    def _string_array(self, node, path):
        dtype, shape, items = node.get("dtype"), node.get("shape"), node.get("items")
        _expect(type(dtype) is str and (dtype == "object" or _UNICODE_DTYPE.fullmatch(dtype))
                and _is_shape(shape) and type(items) is list and all(type(s) is str for s in items)
                and len(items) == math.prod(shape), f"{path}: bad string array.")
        size = len(items) * np.dtype(dtype).itemsize
        _expect(size <= self.limit, f"{path}: a string array of {size:,} bytes ({dtype}) is out of "
                f"proportion to the file (at most {self.limit:,}).")
        array = np.empty(len(items), dtype=dtype)
        array[:] = items
        return array.reshape(shape)

    def _array(self, node, path):
        tensor = self.tensor(node.get("tensor"))
        _expect(tensor.dtype != torch.bfloat16, f"{path}: numpy has no bfloat16.")
        return tensor.numpy()

    def _tensor(self, node, path):
        _expect(type(node.get("device")) is str and type(node.get("requires_grad")) is bool,
                f"{path}: bad tensor.")
        tensor = self.tensor(node.get("tensor")).to(self.device(node["device"]))
        return tensor.requires_grad_(node["requires_grad"])

    def _device(self, node, path):
        _expect(type(node.get("value")) is str, f"{path}: bad device.")
        return torch.device(node["value"])

    def _torch_dtype(self, node, path):
        _expect(node.get("value") in _DTYPES, f"{path}: bad torch dtype.")
        return _DTYPES[node["value"]]

    def _random_state(self, node, path):
        random_state = np.random.RandomState()
        random_state.set_state(self.value(node.get("state"), path))
        return random_state

    def _estimator(self, node, path):
        return self.estimator(node, path)

    def _torch_module(self, node, path):
        """A module parameter rebuilt as pickle would, from classes already imported only.

        No module is imported and no function of the file called: the class
        must be an ``nn.Module`` subclass of a module the program has
        imported; the instance is made without its ``__init__`` and given
        the stored attributes, tensors and children.
        """
        name = node.get("class")
        _expect(type(name) is str and name.count(":") == 1, f"{path}: bad module class.")
        module_name, qualname = name.split(":")
        cls = _find_class(module_name, qualname, imported_only=True)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ModelFileError(
                f"{path} is a {qualname} of module {module_name}, which is not imported: import "
                f"it (e.g. `import {module_name}`) before load(), which imports nothing a file names."
            )
        attributes, parameters, buffers, children = (
            node.get(key) for key in ("attributes", "parameters", "buffers", "children")
        )
        _expect(all(type(v) is dict for v in (attributes, parameters, buffers, children))
                and type(node.get("training")) is bool and type(node.get("non_persistent")) is list,
                f"{path}: malformed module.")
        # Attributes are identifiers; children, parameters and buffers may be "0", "1" (nn.Sequential).
        _expect(all(type(k) is str and k.isidentifier() and not k.startswith("__") and k not in _MODULE_INTERNALS
                    for k in attributes)
                and all(type(k) is str and k and "." not in k and not k.startswith("__")
                        for k in [*parameters, *buffers, *children]), f"{path}: invalid attribute name.")
        module = cls.__new__(cls)
        torch.nn.Module.__init__(module)
        for key, value in attributes.items():
            module.__dict__[key] = self.value(value, f"{path}.{key}")
        for key, value in parameters.items():
            _expect(value is None or (type(value) is dict and type(value.get("requires_grad")) is bool),
                    f"{path}.{key}: bad parameter.")
            module._parameters[key] = None if value is None else torch.nn.Parameter(
                self.tensor(value.get("tensor")), requires_grad=value["requires_grad"])
        for key, value in buffers.items():
            module._buffers[key] = None if value is None else self.tensor(value)
        module._non_persistent_buffers_set.update(k for k in node["non_persistent"] if k in buffers)
        for key, value in children.items():
            module._modules[key] = None if value is None else self._torch_module(value, f"{path}.{key}")
        module.training = node["training"]
        return module

    def _likelihood(self, node, path):
        cls = LIKELIHOODS.get(node.get("name")) if type(node.get("name")) is str else None
        params = self.value(node.get("params"), path)
        _expect(cls is not None and type(params) is dict, f"{path}: unknown likelihood.")
        return cls(**params)

    _DECODERS: ClassVar[dict] = {
        "float": _float,
        "numpy": _numpy,
        "data": _data,
        "history": _history,
        "tuple": _tuple,
        "dict": _dict,
        "string_array": _string_array,
        "array": _array,
        "tensor": _tensor,
        "device": _device,
        "torch_dtype": _torch_dtype,
        "random_state": _random_state,
        "estimator": _estimator,
        "likelihood": _likelihood,
        "torch_module": _torch_module,
    }


def load(path):
    """Load an estimator saved with its ``save`` method, without running code.

    The file holds JSON and raw tensors only; nothing in it is unpickled or
    evaluated, and an estimator is only ever one of the package's public
    classes. It is safe to load a file from an untrusted source (its model
    may still be a bad model). A model saved on a GPU that is not available
    here loads on the CPU, with a warning.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        A file written by ``save``. A file object must be seekable.

    Returns
    -------
    estimator : estimator instance
        The estimator, with the parameters and fitted attributes it was
        saved with: it transforms, scores and decodes bit for bit as the
        saved one did on the same device.

    Raises
    ------
    ModelFileError
        A subclass of ValueError, if the file is not a model file, is
        truncated or damaged, was tampered with, has a format version this
        package does not know, or declares sizes out of proportion to its
        own (more than ``MAX_EXPANSION`` = 100 times its size plus 256 KiB
        once inflated: a zip bomb), before allocating them.
    TypeError
        If ``path`` is neither a path nor a binary file object.
    io.UnsupportedOperation
        If ``path`` is a file object that cannot seek (a pipe, a socket).

    Warns
    -----
    UserWarning
        If the file was written with another version of sklearn_autodecoder,
        torch or scikit-learn, or on a device that is not available here.

    See Also
    --------
    sklearn_autodecoder.AutoDecoder.save : Write the file.
    """
    _check_byte_order()
    document, tensors, limit = _read_archive(path)
    decoder = _Decoder(tensors, limit)
    try:
        estimator = decoder.estimator(document["estimator"], "")
    except ModelFileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError,
            RecursionError, OverflowError) as exc:
        raise ModelFileError(f"Invalid model file: {type(exc).__name__}: {exc}") from None
    unused = sorted(tensors.keys() - decoder.used)
    _expect(not unused, f"The file holds tensors that no attribute uses: {unused[:5]}.")
    return estimator
