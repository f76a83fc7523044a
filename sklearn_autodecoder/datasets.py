"""Readers for standard image data set files (no downloads, ever).

Every loader returns images as an array of shape ``(n_samples, C * H * W)``,
flattened channel-first and row-major (the layout
:func:`sklearn_autodecoder.presets.make_decoder` produces): float32 scaled to
[0, 1] by default, or the raw uint8 pixels with ``dtype="uint8"`` (4 times
smaller; the image estimators take uint8 as 8-bit pixels, x / 255, batch by
batch). Labels are int64 in ``0 .. n_classes - 1``.

:func:`make_regulatory_data` and :func:`make_count_data` simulate data with a
known representation.
"""

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from ._simulate import make_count_data, make_regulatory_data

__all__ = [
    "load_cifar10",
    "load_cifar10_batch",
    "load_idx",
    "load_mnist",
    "load_stl10_binary",
    "make_count_data",
    "make_regulatory_data",
]

# IDX type codes (third magic byte) -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_STL10_SHAPE = (3, 96, 96)


def _read_bytes(path):
    """Whole file content, gunzipped if it starts with the gzip magic."""
    # Sniff the content rather than trusting the extension.
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError) as exc:
            raise ValueError(f"{os.fspath(path)!r}: corrupt gzip stream ({exc}).") from exc
    return data


def load_idx(path):
    """Read an IDX file (the MNIST format), optionally gzip-compressed.

    Parameters
    ----------
    path : str or path-like
        File to read. Gzip compression is detected from the content.

    Returns
    -------
    array : numpy.ndarray
        Array with the file's shape and element type, in native byte order
        (``uint8`` for the MNIST files).

    Raises
    ------
    ValueError
        If the magic number is not an IDX one or the file is shorter or longer
        than its header announces.

    Examples
    --------
    >>> images = load_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    data = _read_bytes(path)
    name = os.fspath(path)
    if len(data) < 4:
        raise ValueError(f"{name!r}: truncated IDX file (no magic number).")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{name!r}: bad IDX magic number 0x{data[:4].hex()}; expected "
            "0x0000TTNN with a type code TT in "
            f"{[hex(t) for t in _IDX_DTYPES]}."
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name!r}: truncated IDX header ({ndim} dimensions announced).")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise ValueError(
            f"{name!r}: {kind} IDX file: {len(data)} bytes for shape {shape} of "
            f"{dtype.name}, expected {expected}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # Native byte order and a writable copy, whatever the file's type.
    return array.astype(dtype.newbyteorder("="))


def _labels(y, n, name, offset=0, n_classes=10):
    y = np.asarray(y).astype(np.int64) - offset
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name!r}: {y.shape} labels for {n} images.")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{name!r}: labels outside {offset}..{offset + n_classes - 1} "
            f"(found {y.min() + offset}..{y.max() + offset})."
        )
    return y


def _to_unit_float(images):
    # Divide (not multiply by 1/255) so that 255 maps to exactly 1.0.
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255)


def _flat_images(images, dtype):
    """Images as (n, C*H*W) rows: float32 in [0, 1], or the uint8 pixels themselves."""
    if dtype == "uint8":
        return np.ascontiguousarray(images).reshape(len(images), -1)
    if dtype == "float32":
        return _to_unit_float(images)
    raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}.")


def load_mnist(images_path, labels_path=None, *, dtype="float32"):
    """Load MNIST-format images (and labels) from IDX files.

    Parameters
    ----------
    images_path : str or path-like
        IDX3 image file (e.g. ``train-images-idx3-ubyte[.gz]``), uint8.
    labels_path : str or path-like, default=None
        IDX1 label file; None skips the labels.
    dtype : {"float32", "uint8"}, default="float32"
        "float32" scales the pixels to [0, 1]; "uint8" keeps the raw pixels.

    Returns
    -------
    X : ndarray of shape (n_samples, H * W), dtype float32 or uint8
        Images flattened row-major.
    y : ndarray of shape (n_samples,), dtype int64, or None
        Labels 0 to 9, or None when ``labels_path`` is None.

    Raises
    ------
    ValueError
        If the files are not uint8 IDX images/labels or their counts differ.
    """
    images = load_idx(images_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{os.fspath(images_path)!r}: expected a 3-D uint8 IDX image file, got "
            f"shape {images.shape} of {images.dtype}."
        )
    X = _flat_images(images, dtype)
    if labels_path is None:
        return X, None
    labels = load_idx(labels_path)
    return X, _labels(labels, len(X), os.fspath(labels_path))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and builtin containers.

    CIFAR batches are pickles; refusing every other global means a tampered
    file cannot run code when loaded.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 3 protocol-2 pickles encode bytes objects through it.
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists."
        )


def _get(batch, key):
    # The original files have bytes keys (Python 2 pickles); accept str too.
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    return None


def load_cifar10_batch(path, *, dtype="float32"):
    """Load one CIFAR-10 batch in the "python version" pickle format.

    Parameters
    ----------
    path : str or path-like
        A batch file such as ``data_batch_1`` or ``test_batch``: a pickled
        dict with ``b"data"`` (uint8, shape ``(n, 3072)``, channel-first
        row-major) and ``b"labels"``. Only numpy arrays and builtin
        containers are unpickled.
    dtype : {"float32", "uint8"}, default="float32"
        "float32" scales the pixels to [0, 1]; "uint8" keeps the raw pixels.

    Returns
    -------
    X : ndarray of shape (n_samples, 3072), dtype float32 or uint8
        Images flattened as ``(3, 32, 32)``.
    y : ndarray of shape (n_samples,), dtype int64
        Labels 0 to 9.

    Raises
    ------
    ValueError
        If the file is not such a batch.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        try:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{name!r}: not a CIFAR-10 batch ({exc}).") from exc
    data = _get(batch, "data") if isinstance(batch, dict) else None
    labels = _get(batch, "labels") if isinstance(batch, dict) else None
    if data is None or labels is None:
        raise ValueError(f"{name!r}: not a CIFAR-10 batch (no data/labels entries).")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{name!r}: expected uint8 data of shape (n, 3072), got {data.shape} "
            f"of {data.dtype}."
        )
    return _flat_images(data, dtype), _labels(labels, len(data), name)


def load_cifar10(directory, train=True, *, dtype="float32"):
    """Load the CIFAR-10 training or test set from the python-format files.

    Parameters
    ----------
    directory : str or path-like
        Folder holding ``data_batch_1`` .. ``data_batch_5`` and
        ``test_batch``, or its parent holding ``cifar-10-batches-py/``.
    train : bool, default=True
        True concatenates the five training batches (50,000 images); False
        reads ``test_batch`` (10,000 images).
    dtype : {"float32", "uint8"}, default="float32"
        "float32" scales the pixels to [0, 1]; "uint8" keeps the raw pixels.

    Returns
    -------
    X : ndarray of shape (n_samples, 3072), dtype float32 or uint8
        Images flattened as ``(3, 32, 32)``.
    y : ndarray of shape (n_samples,), dtype int64
        Labels 0 to 9.

    Raises
    ------
    FileNotFoundError
        If a batch file is missing.
    """
    directory = Path(directory)
    if not (directory / "test_batch").exists() and (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"Missing CIFAR-10 batch files in {str(directory)!r}: {missing}.")
    parts = [load_cifar10_batch(directory / n, dtype=dtype) for n in names]
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts])


def load_stl10_binary(images_path, labels_path=None, *, dtype="float32", mmap=False):
    """Load STL-10 images (and labels) from the binary distribution files.

    Parameters
    ----------
    images_path : str or path-like
        A ``*_X.bin`` file (e.g. ``train_X.bin``, ``unlabeled_X.bin``): uint8
        images of 3x96x96, each channel stored column-major. Gzip compression
        is detected from the content.
    labels_path : str or path-like, default=None
        The matching ``*_y.bin`` file (uint8 labels 1 to 10); None skips the
        labels.
    dtype : {"float32", "uint8"}, default="float32"
        "float32" scales the pixels to [0, 1]; "uint8" keeps the raw pixels.
        Ignored with ``mmap=True`` (always uint8).
    mmap : bool, default=False
        Return a read-only ``np.memmap`` over the (uncompressed) file itself
        instead of loading it: the 100,000 unlabeled images stay on disk
        (2.6 GiB) and the estimators read them batch by batch. The rows are
        then the file's own pixel order, each channel **transposed**
        (``(C, W, H)``): STL-10 images are square, so a model trained on
        them is the same model for transposed images. Use
        ``X.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)`` to view upright
        images.

    Returns
    -------
    X : ndarray or np.memmap of shape (n_samples, 27648)
        Images flattened channel-first row-major as ``(3, 96, 96)`` (or
        ``(3, 96, 96)`` transposed with ``mmap=True``).
    y : ndarray of shape (n_samples,), dtype int64, or None
        Labels 0 to 9 (the files' 1 to 10, shifted), or None.

    Raises
    ------
    ValueError
        If the file size is not a whole number of images, the labels do not
        match, or ``mmap=True`` is asked of a compressed file.
    """
    name = os.fspath(images_path)
    size = int(np.prod(_STL10_SHAPE))
    if mmap:
        with open(images_path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                raise ValueError(f"{name!r} is gzip-compressed; mmap=True needs the raw .bin file.")
        n_bytes = os.path.getsize(images_path)
        if n_bytes % size:
            raise ValueError(f"{name!r}: {n_bytes} bytes is not a whole number of 3x96x96 uint8 images.")
        X = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(n_bytes // size, size))
    else:
        data = _read_bytes(images_path)
        if len(data) % size:
            raise ValueError(
                f"{name!r}: {len(data)} bytes is not a whole number of "
                f"{'x'.join(map(str, _STL10_SHAPE))} uint8 images."
            )
        # On disk each channel is column-major: read as (c, w, h), swap to (c, h, w).
        images = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
        X = _flat_images(images, dtype)
    if labels_path is None:
        return X, None
    labels = np.frombuffer(_read_bytes(labels_path), dtype=np.uint8)
    return X, _labels(labels, len(X), os.fspath(labels_path), offset=1)
