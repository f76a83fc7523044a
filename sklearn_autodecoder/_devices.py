"""Choosing and checking torch devices, and how computations run on them.

Devices, the autocast precision, and two GPU habits: channels-last memory
for convolutional networks on CUDA, and an optional ``torch.compile`` that
falls back to eager execution with a warning.
"""

import warnings
from contextlib import nullcontext

import torch

from ._distributed import local_cuda_device


def _mps_available():
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def is_available(device):
    """Whether ``device`` (a torch.device) can be used on this machine."""
    if device.type == "cuda":
        return torch.cuda.is_available() and (
            device.index is None or device.index < torch.cuda.device_count()
        )
    if device.type == "mps":
        return _mps_available()
    return device.type == "cpu"


def resolve_device(device):
    """Turn the ``device`` parameter into an available ``torch.device``.

    ``"auto"`` picks CUDA, then MPS, then the CPU. Anything else must name a
    device that exists here, or a ValueError says which is missing. Under
    an initialised process group (``torchrun``), ``"auto"`` and an index-less
    ``"cuda"`` mean this process's GPU, ``cuda:LOCAL_RANK``.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return local_cuda_device()
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device.") from exc
    if resolved.type == "cuda" and resolved.index is None and torch.cuda.is_available():
        resolved = local_cuda_device()
    if not is_available(resolved):
        raise ValueError(
            f"device={device!r} was requested, but it is not available on this machine "
            "(use device='auto' or 'cpu')."
        )
    return resolved


def compute_dtype(dtype, device):
    """The torch dtype to compute in for numpy ``dtype`` on ``device``."""
    # MPS has no float64: compute in float32 there and cast the result back.
    # kind and size, not equality: a big-endian ">f8" is float64 too.
    if getattr(dtype, "kind", None) == "f" and dtype.itemsize == 8 and device.type != "mps":
        return torch.float64
    return torch.float32


PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_precision(precision, device):
    """Raise a clear error where ``precision`` cannot run on ``device``."""
    if precision == "float16" and device.type != "cuda":
        raise ValueError(
            f"precision='float16' needs a CUDA device (the model runs on {device}); "
            "use precision='bfloat16' on the CPU."
        )


def autocast(precision, device):
    """Autocast context of ``precision`` on ``device`` (a no-op for "float32").

    Only the eligible operations (matrix products, convolutions) run in the
    lower precision; parameters, latents and element-wise updates keep their
    dtype, and float64 tensors are never cast.
    """
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def prefer_channels_last(module, device):
    """``module`` with channels-last weights on CUDA when it has 2-D convolutions.

    Tensor cores run convolutions fastest on NHWC data; elsewhere (CPU, MPS,
    MLPs) the module is returned as it is.
    """
    has_conv = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())
    if torch.device(device).type == "cuda" and has_conv:
        return module.to(memory_format=torch.channels_last)
    return module


class CompiledModule(torch.nn.Module):
    """``torch.compile(module)``, falling back to ``module`` with a warning if compiling fails.

    Compilation happens lazily, at the first call, and can fail there (no
    C++ compiler, an unsupported operation): the first failure warns once
    and every later call runs the module eagerly. The compiled function is
    not a registered submodule, so parameters and ``state_dict`` are the
    module's own.
    """

    def __init__(self, module):
        super().__init__()
        self.module = module
        object.__setattr__(self, "_compiled", torch.compile(module))

    def forward(self, *args):
        if self._compiled is not None:
            try:
                return self._compiled(*args)
            except (torch.OutOfMemoryError, MemoryError):
                raise  # not a compiler failure: eager would run out of memory too
            except Exception as exc:  # noqa: BLE001 - a compiler failure falls back
                # An error of the network itself (eager fails too) is raised as it is.
                output = self.module(*args)
                warnings.warn(
                    f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                    "running the network eagerly.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                object.__setattr__(self, "_compiled", None)
                return output
        return self.module(*args)
