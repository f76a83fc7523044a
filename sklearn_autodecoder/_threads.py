"""How many CPU threads torch may use, scoped to the estimators' own calls.

torch's intra-op pool defaults to one thread per physical core. Small models
gain nothing from it, and when other processes (another fit, joblib workers,
a busy loop) hold the cores, the threads of an OpenMP team wait at every
parallel region for the one that is descheduled. On a loaded 2-core machine
(``benchmarks/bench_threads.py``), torch's default of 2 threads against 1:
the demo 19x slower (36x with a busy loop added), one epoch of the MNIST
preset 4.5x, and every decoder of the 1-vs-2-thread sweep, up to 864M
multiply-adds per batch, 1.7x to 11x. So the estimators choose a thread
count per call (:func:`resolve_n_threads`, an ``n_jobs``-style parameter)
and apply it only while their own code runs (:func:`torch_threads`), as
scikit-learn does with ``threadpoolctl`` around its OpenMP and BLAS
sections.
"""

import os
import threading
import time
import warnings
from contextlib import contextmanager
from numbers import Integral

import joblib
import torch
from threadpoolctl import ThreadpoolController
from torch import nn

__all__ = ["forward_flops", "resolve_n_threads", "torch_threads"]

# Multiply-adds of a batch's forward pass per thread the default gives: a
# thread needs about this much work per step to repay the synchronisation
# at each parallel region. The demo's MLP (0.6M per batch) gets 1 thread,
# the MNIST preset (864M per batch of 128) all free cores. An estimate, not
# a measurement: no idle machine was at hand, and on a loaded one a second
# thread never paid. benchmarks/bench_threads.py --sweep measures a
# machine's crossover.
FLOPS_PER_THREAD = 20_000_000

# The variables torch reads, in its order, for its default thread count;
# loky sets them in its workers to cpu_count // n_jobs.
_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

# Finding the BLAS/OpenMP libraries walks every loaded library (about a
# millisecond); do it once, as scikit-learn does (utils.parallel).
_controller = None


def _threadpool_controller():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


@contextmanager
def torch_threads(n_threads):
    """Run a block with torch, BLAS and OpenMP limited to ``n_threads`` threads.

    On exit, also through an exception, torch's thread count and every
    thread pool limit are put back exactly as they were. Blocks nest: the
    inner one's count applies inside it, the outer one's again after it.

    Parameters
    ----------
    n_threads : int or None
        Threads for torch's intra-op pool (``torch.set_num_threads``) and for
        the BLAS and OpenMP libraries ``threadpoolctl`` finds (NumPy's and
        SciPy's OpenBLAS, torch's OpenMP runtime). None leaves everything as
        it is.

    Yields
    ------
    n_threads : int
        The number of threads torch uses inside the block.

    Notes
    -----
    torch's thread count is a process-wide setting: two Python threads that
    enter the block with different counts at the same time see each other's
    setting (the block opened last applies). What was set before is saved
    when the first block of the process opens and restored when the last one
    closes, whatever the order in which threads leave. joblib's process
    workers (the default ``loky`` backend) are separate processes and are
    not affected.

    Examples
    --------
    >>> import torch
    >>> from sklearn_autodecoder._threads import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1) as n:
    ...     torch.get_num_threads() == n == 1
    True
    >>> torch.get_num_threads() == before
    True
    """
    if n_threads is None:
        yield torch.get_num_threads()
        return
    if isinstance(n_threads, bool) or not isinstance(n_threads, Integral) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}.")
    n_threads = int(n_threads)
    entry = object()
    _enter(entry, n_threads)
    try:
        yield n_threads
    finally:
        _leave(entry)


# The blocks open in any thread of the process, innermost last, and what was
# set before the first one. Saving and restoring the limits per block is not
# thread-safe: with blocks of two threads interleaved (A enters, B enters, A
# leaves, B leaves), B would restore A's limit. So the process-wide settings
# are saved when the first block opens and restored when the last one closes;
# in between, the most recently opened block still open sets them.
_lock = threading.Lock()
_open_blocks = []
_saved = None


def _set_library_threads(counts):
    """Set each library's thread limit (``counts``: one per lib controller, or an int for all).

    threadpoolctl lets only the first thread that limited OpenBLAS's shared
    pool change it while that thread lives (its "controlling thread"), so a
    restore from another thread would be ignored; ``_lock`` already
    serialises our changes, so the direct setter is used where there is one.
    """
    libraries = _threadpool_controller().lib_controllers
    if isinstance(counts, int):
        counts = [counts] * len(libraries)
    for library, count in zip(libraries, counts):
        if count is not None:
            getattr(library, "_real_set_num_threads", library.set_num_threads)(count)


def _apply(n_threads):
    _set_library_threads(n_threads)
    torch.set_num_threads(n_threads)


def _enter(entry, n_threads):
    global _saved
    with _lock:
        if not _open_blocks:
            libraries = _threadpool_controller().lib_controllers
            _saved = (torch.get_num_threads(), [library.num_threads for library in libraries])
        _apply(n_threads)
        _open_blocks.append((entry, n_threads))


def _leave(entry):
    global _saved
    with _lock:
        index = next(i for i, (e, _) in enumerate(_open_blocks) if e is entry)
        was_last = index == len(_open_blocks) - 1
        del _open_blocks[index]
        if not _open_blocks:
            previous, counts = _saved
            _saved = None
            # torch's count first (it also sets OpenMP's), then the libraries
            # exactly as they started.
            torch.set_num_threads(previous)
            _set_library_threads(counts)
        elif was_last:
            _apply(_open_blocks[-1][1])


def resolve_n_threads(n_jobs=None, *, flops=None):
    """The number of torch threads for an ``n_jobs``-style parameter.

    Parameters
    ----------
    n_jobs : int or None, default=None
        - None: as many threads as the work pays for and the machine has
          free, never more than the process was given. The work: one
          thread per ``FLOPS_PER_THREAD`` multiply-adds in ``flops``
          (small models get 1). Free: the CPUs available to the process
          less the threads other processes are running right now (Linux's
          ``/proc/loadavg``; not counted elsewhere). Given: ``OMP_NUM_THREADS``
          (or ``MKL_NUM_THREADS``) when set, which is what joblib's ``loky``
          workers receive (``cpu_count // n_jobs``); 1 inside other joblib
          workers (threads or plain processes), which already share the
          cores; otherwise the physical cores available to the process.
        - Positive: exactly that many threads.
        - Negative: counted from the threads the process was given, as in
          scikit-learn (-1: all of them, -2: all but one; at least 1),
          whatever the load.
    flops : int or None, default=None
        Multiply-adds of one forward pass over a training batch (see
        :func:`forward_flops`). None: unknown, treated as large enough for
        every available core.

    Returns
    -------
    n_threads : int
        At least 1.

    Raises
    ------
    ValueError
        If ``n_jobs`` is 0 or not an integer.

    Notes
    -----
    The thread count can change the rounding of torch's parallel reductions,
    so with ``n_jobs=None`` two fits with the same ``random_state`` may
    differ in the last bits when the machine's load differs; set ``n_jobs``
    to a number for bit-identical reruns.

    See Also
    --------
    torch_threads : Apply the count to a block of code.
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral)):
        raise ValueError(f"n_jobs must be an integer or None, got {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or a negative integer.")
    if n_jobs is not None and n_jobs > 0:
        return int(n_jobs)
    given = _given_threads()
    if n_jobs is not None:
        return max(1, given + 1 + int(n_jobs))
    n_threads = min(given, _free_cpus())
    if flops is not None:
        n_threads = min(n_threads, int(flops // FLOPS_PER_THREAD))
    return max(1, n_threads)


def _given_threads():
    """Threads this process was given: environment, joblib worker, or its cores."""
    from_env = _env_threads()
    if from_env is not None:
        return from_env
    if _in_joblib_worker():
        return 1
    with warnings.catch_warnings():
        # loky warns when it cannot count physical cores, then counts logical ones.
        warnings.simplefilter("ignore")
        return max(1, joblib.cpu_count(only_physical_cores=True))


def _free_cpus():
    """CPUs of this process not running another process's thread right now."""
    cpus = joblib.cpu_count()  # respects the affinity mask and cgroup quotas
    busy = _busy_threads()
    return cpus if busy is None else max(1, cpus - busy)


def _busy_threads(reads=3, interval=0.001):
    """Runnable threads other than the caller (Linux), or None where unknown.

    The fourth field of ``/proc/loadavg`` counts the runnable threads now,
    the caller included. The least of a few reads a millisecond apart
    ignores momentary wake-ups (a busy loop is runnable in every read).
    """
    counts = []
    for i in range(reads):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return None
        if i < reads - 1:
            time.sleep(interval)
    return max(0, min(counts) - 1)


def _env_threads():
    for var in _THREAD_ENV_VARS:
        value = os.environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _in_joblib_worker():
    # joblib runs every task under its backend's nested backend, whose
    # nesting level is 1 or more; the caller's own backend has level 0.
    try:
        from joblib.parallel import get_active_backend

        backend, _ = get_active_backend()
    except (ImportError, AttributeError, TypeError, ValueError):
        # get_active_backend is joblib's, not documented: never fail a fit over it.
        return False
    return getattr(backend, "nesting_level", 0) > 0


def forward_flops(module, x):
    """Multiply-adds of ``module``'s linear and convolution layers on ``x``.

    Counted with forward hooks on one pass, without gradients and in eval
    mode (BatchNorm statistics stay untouched; each module's mode is put
    back), so the input can be a single sample and the count scaled by the
    batch size.
    Other layers (activations, normalisation) cost far less and are left
    out.

    Parameters
    ----------
    module : torch.nn.Module
    x : torch.Tensor
        An input ``module`` accepts.

    Returns
    -------
    flops : int
        Multiply-adds for ``x`` (for a batch of one sample: per sample).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sklearn_autodecoder._threads import forward_flops
    >>> forward_flops(nn.Linear(8, 4), torch.zeros(2, 8))
    64
    """
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        if isinstance(layer, nn.Linear):
            # Every output value needs one multiply-add per weight in its row.
            total += output.numel() * layer.in_features
        elif isinstance(layer, nn.modules.conv._ConvNd):
            weights_per_output = layer.weight.numel() // layer.out_channels
            if layer.transposed:
                # Each input value meets out_channels/groups * kernel weights.
                total += inputs[0].numel() * weights_per_output * layer.out_channels // (
                    layer.in_channels
                )
            else:
                total += output.numel() * weights_per_output

    modes = [(m, m.training) for m in module.modules()]
    hooks = [m.register_forward_hook(count) for m, _ in modes]
    try:
        module.eval()
        with torch.no_grad():
            module(x)
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes:
            m.training = training
    return total
