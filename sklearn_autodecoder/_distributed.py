"""Data-parallel training under ``torch.distributed`` (e.g. a script run by ``torchrun``).

When a process group is initialised, every rank calls ``fit(X)`` on the
same X. The fit is **world-size invariant**: ``batch_size`` is the global
batch. Every rank builds the same starts (latent table, prior) from the
same seed (rank 0's, broadcast) and draws the same shuffled order of all
the rows each epoch; row ``i`` belongs to rank ``i % world_size``, and
each rank trains on its own rows of each global batch (:func:`owned`), so
every rank runs the same number of steps, and a rank whose share of a
batch is empty still joins its collectives. The dense networks (the
decoder, and an autoencoder's encoder) are wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`, whose gradients are
all-reduced as a **sum** (:func:`_allreduce_sum`): the package's losses are
sums over samples, so k ranks take the steps of one process. Their
batch-norm layers normalise over the global batch while they train
(:mod:`._sync_batchnorm`). Epoch losses
are all-reduced too (:func:`global_mean`), so early stopping and the history
agree on every rank; after ``fit``, :func:`merge_owned_rows` and
:func:`all_gather_rows` give every rank every row's latent.

Collectives run on the backend's device (:func:`_collective_device`): CUDA
tensors for NCCL, CPU ones for gloo, whatever the form of
``init_process_group``.

Without a process group (or with one process) every function here is the
identity, and nothing from ``torch.distributed`` is touched.
"""

import functools
import hashlib
import json
import os
import threading
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from torch import distributed as dist


def is_active():
    """Whether ``fit`` runs data-parallel: an initialised group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_active() else 0


def world_size():
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if is_active() else 1


@contextmanager
def warnings_from_rank_zero():
    """Ignore warnings on ranks other than 0 (they would repeat rank 0's), restored on exit."""
    if rank() == 0:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def local_cuda_device():
    """``cuda:LOCAL_RANK`` under an active process group (torchrun sets LOCAL_RANK), else ``cuda``.

    ``"auto"`` and ``"cuda"`` resolve to it, so that the documented recipe
    (no ``torch.cuda.set_device``) puts each rank on its own GPU.
    """
    if dist.is_available() and dist.is_initialized():
        count = torch.cuda.device_count()
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return torch.device("cuda", local % count if count else local)
    return torch.device("cuda")


def _collective_device_for(backend, device, current_cuda):
    """The device a collective on a tensor of ``device`` must use under ``backend``.

    ``backend`` is ``dist.get_backend()``'s string: ``"nccl"``, ``"gloo"``,
    or a per-device map such as ``"cpu:gloo,cuda:nccl"`` (the backend-less
    ``init_process_group()``). NCCL takes CUDA tensors only: CPU ones move to
    ``current_cuda`` when no CPU backend is there; gloo takes CPU tensors.
    """
    device = torch.device(device)
    backend = str(backend).lower()
    parts = dict(p.split(":", 1) for p in backend.split(",")) if ":" in backend else None
    if parts is None:
        cuda_backend = cpu_backend = backend
    else:
        cuda_backend, cpu_backend = parts.get("cuda"), parts.get("cpu")
    if device.type != "cpu" and cuda_backend == "nccl":  # (meta stands in for cuda in tests)
        return device
    if cpu_backend is None or cpu_backend == "nccl":
        return torch.device(current_cuda)
    return torch.device("cpu")


def _collective_device(device):
    current = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None
    if torch.device(device).type == "cuda" and torch.device(device).index is not None:
        current = torch.device(device)
    return _collective_device_for(dist.get_backend(), device, current)


def broadcast_seed(seed):
    """Rank 0's ``seed`` on every rank (``random_state=None`` draws differ per process)."""
    if not is_active():
        return seed
    value = torch.tensor([seed], dtype=torch.long, device=_collective_device("cpu"))
    dist.broadcast(value, src=0)
    return int(value.item())


def shard(rows):
    """This rank's rows of ``rows``: every ``world_size``-th, from position ``rank`` (all without a group)."""
    if rows is None or not is_active():
        return rows
    return rows[dist.get_rank() :: dist.get_world_size()]


def owned(positions):
    """The entries of ``positions`` (positions in the training rows) that this rank trains on."""
    if not is_active():
        return positions
    return positions[positions % dist.get_world_size() == dist.get_rank()]


def merge_owned_rows(values):
    """The rows of ``values`` each rank owns (row ``i``: rank ``i % world_size``), merged, on the CPU.

    Every rank holds a full table of which it trained its own rows only;
    the others' rows are zeroed and the tables summed, which is exact.
    """
    values = values.detach()
    if not is_active():
        return values.cpu()
    device = _collective_device(values.device)
    mine = torch.arange(len(values), device=values.device) % dist.get_world_size() == dist.get_rank()
    merged = torch.where(mine[:, None], values, torch.zeros((), dtype=values.dtype, device=values.device))
    merged = merged.to(device)
    dist.all_reduce(merged)
    return merged.cpu()


def broadcast_module(module):
    """Rank 0's parameters and buffers of ``module`` on every rank (in place)."""
    if module is None or not is_active():
        return module
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            device = _collective_device(tensor.device)
            held = tensor.detach().to(device)
            dist.broadcast(held, src=0)
            tensor.copy_(held.to(tensor.device))
    return module


def sum_tensors(*tensors):
    """The sums over ranks of scalar tensors (one collective), on their device."""
    if not is_active():
        return tensors
    device = tensors[0].device
    stacked = torch.stack([torch.as_tensor(t, device=device).detach().double().reshape(()) for t in tensors])
    reduced = stacked.to(_collective_device(device))
    dist.all_reduce(reduced)
    reduced = reduced.to(device)
    return tuple(reduced[i].to(torch.as_tensor(t).dtype) for i, t in enumerate(tensors))


def sync_found_inf(scaler, optimizers):
    """All-reduce (max) a GradScaler's found-inf flags after ``unscale_``, for every optimiser.

    Rank-local parameters (latents, a prior's copy) are unscaled per rank:
    without this, one rank would skip a step that another takes, and the
    scales and the models would drift apart.
    """
    if scaler is None or not is_active():
        return
    flags = [
        found
        for optimizer in optimizers
        for found in scaler._per_optimizer_states[id(optimizer)]["found_inf_per_device"].values()
    ]
    if not flags:
        return
    # One flag for all: any inf anywhere skips every optimiser's step, as on one process.
    any_inf = torch.stack([f.reshape(()).float() for f in flags]).amax()
    reduced = any_inf.to(_collective_device(any_inf.device))
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    for found in flags:
        found.fill_(reduced.to(found.device))


def _allreduce_sum(state, bucket):
    """DDP communication hook: the gradients' sum over ranks (DDP's default is the mean)."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def wrap(module, device):
    """``module`` in DistributedDataParallel (summing gradients) when data-parallel.

    Modules with no trainable dense parameter, such as the latent table
    (whose rows are each trained by one rank), are returned as they are.
    """
    if not is_active() or getattr(module, "rank_local", False):
        return module
    if not any(p.requires_grad for p in module.parameters()):
        return module
    device = torch.device(device)
    # device_ids name the GPU the weights are on (cuda:LOCAL_RANK), never a default 0.
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    ddp.register_comm_hook(state=None, hook=_allreduce_sum)
    return ddp


def global_mean(total, count):
    """``total / count`` over all ranks, as a float (one host synchronisation)."""
    if total is None:
        total = torch.zeros((), dtype=torch.float64, device="cpu")  # no batch here: nothing on a device
    if not is_active():
        return float(total) / max(count, 1)
    # Both entries built on the loss's own device (a CUDA sum stacked with a CPU count fails).
    pair = torch.stack([total.detach().double().reshape(()),
                        torch.tensor(float(count), dtype=torch.float64, device=total.device)])
    pair = pair.to(_collective_device(total.device))
    dist.all_reduce(pair)
    return float(pair[0]) / max(float(pair[1]), 1.0)


def all_gather_rows(rows, values):
    """Every rank's ``(rows, values)`` pieces, concatenated in row order on every rank.

    Parameters
    ----------
    rows : ndarray of int of shape (n_local,)
    values : torch.Tensor of shape (n_local, width)

    Returns
    -------
    rows : ndarray of shape (n_total,)
    values : torch.Tensor of shape (n_total, width), on the CPU
    """
    if not is_active():
        return rows, values.detach().cpu()
    device = _collective_device(values.device)
    world = dist.get_world_size()
    sizes = [torch.zeros((), dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor(len(rows), device=device))
    longest = int(max(sizes))
    width = values.shape[1]
    padded_rows = torch.full((longest,), -1, dtype=torch.long, device=device)
    padded_rows[: len(rows)] = torch.as_tensor(rows, device=device)
    padded = torch.zeros(longest, width, dtype=values.dtype, device=device)
    padded[: len(rows)] = values.detach().to(device)
    all_rows = [torch.empty_like(padded_rows) for _ in range(world)]
    all_values = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(all_rows, padded_rows)
    dist.all_gather(all_values, padded)
    rows = torch.cat([r[: int(n)] for r, n in zip(all_rows, sizes)]).cpu().numpy()
    values = torch.cat([v[: int(n)] for v, n in zip(all_values, sizes)]).cpu()
    order = np.argsort(rows, kind="stable")
    return rows[order], values[torch.from_numpy(order)]


def sum_gradients(module):
    """Sum ``module``'s gradients over ranks (for small modules outside DDP, e.g. a prior).

    A parameter without a gradient on this rank (its share of the batch was
    empty) contributes zeros, so every rank joins the same collective.
    """
    if not is_active():
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = flat.to(_collective_device(flat.device))
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


# ---- the ranks agree before their first collective -----------------------------------
#
# A rank that fails alone (bad parameters or data on that rank) would leave the
# others waiting in the fit's first collective until the process group's
# timeout (30 minutes by default); ranks with different parameters would train
# together silently. So every fit opens with one exchange (:func:`agree`) of
# each rank's failure, if any, and of its parameters: a rank that fails before
# reaching it takes part with its error (:func:`failures_agreed`), and every
# rank then raises.

# Parameters that may differ between ranks: where each rank runs and logs,
# its thread count, and the seed (rank 0's is used by every rank).
RANK_LOCAL_PARAMETERS = frozenset({"device", "verbose", "callbacks", "n_jobs", "random_state"})

_agreement = threading.local()


def fingerprint(params):
    """A comparable text per parameter (its repr; the type for a repr holding an address).

    The rank-local parameters (``RANK_LOCAL_PARAMETERS``) are left out.
    """
    described = {}
    for name, value in sorted(params.items()):
        if name in RANK_LOCAL_PARAMETERS:
            continue
        text = repr(value)
        if " at 0x" in text:  # a default object repr differs per process
            text = f"<{type(value).__module__}.{type(value).__qualname__}>"
        if len(text) > 200:  # shown shortened, compared whole
            text = f"{text[:160]}... (sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]})"
        described[name] = text
    return described


class RankFailedError(RuntimeError):
    """Raised on the other ranks when a rank's fit failed before the ranks' first collective."""


@contextmanager
def failures_agreed():
    """Run a fit whose failure on this rank before :func:`agree` is shared with the other ranks."""
    if not is_active():
        yield
        return
    frames = _agreement.__dict__.setdefault("frames", [])
    frames.append({"agreed": False})
    try:
        yield
    except Exception as error:
        frame = frames[-1]
        if not frame["agreed"]:
            frame["agreed"] = True
            _exchange(f"{type(error).__name__}: {error}", None)
        raise
    finally:
        frames.pop()


def agree(params):
    """The fit's first collective: raise on every rank if one failed or the parameters differ.

    Parameters
    ----------
    params : dict
        This rank's fingerprint (:func:`fingerprint`, plus anything else
        that must match, e.g. the data's shape).
    """
    frames = getattr(_agreement, "frames", None)
    if not is_active() or not frames or frames[-1]["agreed"]:
        return
    frames[-1]["agreed"] = True
    _exchange(None, params)


def _exchange(error, params):
    """Share (error, params) with every rank; raise unless all succeeded with equal params."""
    payload = json.dumps({"error": error, "params": params}).encode()
    gathered = [json.loads(blob.decode()) for blob in _all_gather_bytes(payload)]
    failed = [(r, g["error"]) for r, g in enumerate(gathered) if g["error"] is not None]
    if failed:
        if error is not None:
            return  # this rank raises its own error
        ranks = ", ".join(str(r) for r, _ in failed)
        raise RankFailedError(
            f"fit failed on rank(s) {ranks} of {len(gathered)}, so every rank stops: "
            + "; ".join(f"rank {r}: {message}" for r, message in failed)
        )
    differing = sorted(
        name
        for name in set().union(*(g["params"] for g in gathered))
        if len({g["params"].get(name) for g in gathered}) > 1
    )
    if differing:
        details = "; ".join(
            f"{name}: " + ", ".join(f"rank {r}: {g['params'].get(name, '<absent>')}" for r, g in enumerate(gathered))
            for name in differing
        )
        raise ValueError(
            "Under torch.distributed every rank must call fit with the same parameters and data "
            f"shape; they differ in {', '.join(differing)} ({details})."
        )


def _all_gather_bytes(payload):
    """Every rank's ``payload`` (bytes), in rank order, on the backend's collective device."""
    device = _collective_device("cpu")
    size = torch.tensor([len(payload)], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = max(int(s.item()) for s in sizes)
    mine = torch.zeros(longest, dtype=torch.uint8, device=device)
    mine[: len(payload)] = torch.tensor(list(payload), dtype=torch.uint8, device=device)
    blobs = [torch.empty_like(mine) for _ in sizes]
    dist.all_gather(blobs, mine)
    return [bytes(b[: int(s.item())].cpu().tolist()) for b, s in zip(blobs, sizes)]


def agreeing(method):
    """Decorate ``fit``-like methods: see :func:`failures_agreed`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with failures_agreed():
            return method(*args, **kwargs)

    return wrapper
