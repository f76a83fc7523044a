"""Data-parallel training under ``torch.distributed`` (e.g. a script run by ``torchrun``).

When a process group is initialised, every rank calls ``fit(X)`` on the
same X, takes its own contiguous shard of the rows (:func:`shard`) and owns
those rows' latents: latents never travel. The dense networks (the decoder,
and an autoencoder's encoder) are wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`, whose gradients are
all-reduced as a **sum** (:func:`_allreduce_sum`): the package's losses are
sums over samples, so a step on ``world_size`` shards of ``batch_size`` rows
is the step of one process on a batch of ``world_size * batch_size`` rows.
Epoch losses are all-reduced too (:func:`global_mean`), so early stopping
and the history agree on every rank; after ``fit``, :func:`all_gather_rows`
gives every rank every row's latent.

Without a process group (or with one process) every function here is the
identity, and nothing from ``torch.distributed`` is touched.
"""

import numpy as np
import torch
from torch import distributed as dist


def is_active():
    """Whether ``fit`` runs data-parallel: an initialised group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_active() else 0


def _collective_device(device):
    # gloo works on CPU tensors, nccl on CUDA ones.
    return torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")


def shard(rows):
    """This rank's contiguous block of the sorted ``rows`` (all of them without a group)."""
    if rows is None or not is_active():
        return rows
    return np.array_split(rows, dist.get_world_size())[dist.get_rank()]


def _allreduce_sum(state, bucket):
    """DDP communication hook: the gradients' sum over ranks (DDP's default is the mean)."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def wrap(module, device):
    """``module`` in DistributedDataParallel (summing gradients) when data-parallel.

    Modules with no trainable dense parameter, such as the latent table
    (whose rows are local to a rank), are returned as they are.
    """
    if not is_active() or getattr(module, "rank_local", False):
        return module
    if not any(p.requires_grad for p in module.parameters()):
        return module
    device_ids = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    ddp.register_comm_hook(state=None, hook=_allreduce_sum)
    return ddp


def global_mean(total, count):
    """``total / count`` over all ranks, as a float (one host synchronisation)."""
    if total is None:
        total = torch.zeros(())
    if not is_active():
        return float(total) / max(count, 1)
    device = _collective_device(total.device)
    pair = torch.stack([total.detach().double().reshape(()), torch.tensor(float(count))]).to(device)
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
    """Sum ``module``'s gradients over ranks (for small modules outside DDP, e.g. a prior)."""
    if not is_active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if grads:
        flat = torch.cat([g.reshape(-1) for g in grads])
        device = _collective_device(flat.device)
        flat = flat.to(device)
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
