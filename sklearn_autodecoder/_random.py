"""Random draws from a local generator, never from torch's global one.

Module constructors (``nn.Linear``, ``nn.Conv2d``, ``nn.Embedding``, a
user's architecture) draw their initial weights from torch's default CPU
generator. Seeding and restoring that generator around the build (as
``torch.random.fork_rng`` does) is not thread-safe: two fits in joblib's
threading backend would seed, draw from and restore one process-global
generator in turn, so a fit could get the other's weights and the caller's
state could end up changed. :func:`local_random_draws` instead hands every
draw made on the calling thread to a local ``torch.Generator``, through a
``TorchFunctionMode`` (torch keeps its mode stack per thread): torch's own
initialisation code runs unchanged, with its own distributions, and the
global generator is neither read nor advanced.
"""

from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["local_random_draws"]

# Random functions and in-place methods that take a ``generator`` argument;
# calls that leave it out get the local one. Calls that pass
# ``generator=None`` explicitly (``torch.nn.init``'s functions do) get it too.
_TENSOR_METHODS = (
    "uniform_", "normal_", "random_", "bernoulli_", "exponential_",
    "geometric_", "log_normal_", "cauchy_",
)
_TORCH_FUNCTIONS = ("rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson")
_RANDOM = frozenset(
    [getattr(torch.Tensor, name) for name in _TENSOR_METHODS]
    + [getattr(torch, name) for name in _TORCH_FUNCTIONS]
)

_MISSING = object()


class _LocalGeneratorMode(TorchFunctionMode):
    """Gives ``generator`` to every random draw made without one (on this thread)."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        given = kwargs.get("generator", _MISSING)
        if (given is None or (given is _MISSING and func in _RANDOM)) and _on_cpu(args, kwargs):
            kwargs["generator"] = self.generator
        return func(*args, **kwargs)


def _on_cpu(args, kwargs):
    """Whether a draw made without a generator would use the CPU generator."""
    tensor = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
    if isinstance(tensor, torch.Tensor):
        return tensor.device.type == "cpu"
    device = kwargs.get("device")
    return device is None or torch.device(device).type == "cpu"


@contextmanager
def local_random_draws(generator):
    """Run a block with its random draws taken from a local CPU generator.

    Only the calling thread is affected, and torch's default generator is
    left exactly as it was (neither seeded nor advanced). A block that draws
    as it would from the default generator seeded with ``s`` gets the same
    numbers from ``torch.Generator().manual_seed(s)``.

    Parameters
    ----------
    generator : torch.Generator
        A CPU generator; the block's draws advance it.

    Examples
    --------
    >>> import torch
    >>> from sklearn_autodecoder._random import local_random_draws
    >>> state = torch.get_rng_state()
    >>> with local_random_draws(torch.Generator().manual_seed(0)):
    ...     a = torch.nn.Linear(3, 2).weight
    >>> with local_random_draws(torch.Generator().manual_seed(0)):
    ...     b = torch.nn.Linear(3, 2).weight
    >>> bool(torch.equal(a, b)), bool(torch.equal(state, torch.get_rng_state()))
    (True, True)
    """
    with _LocalGeneratorMode(generator):
        yield generator
