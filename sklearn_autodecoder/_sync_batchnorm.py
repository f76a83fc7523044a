"""Batch normalisation over the global batch in a data-parallel fit.

Under ``torch.distributed`` each rank holds its share of every global batch
(see :mod:`._distributed`), so a plain ``BatchNorm`` layer would normalise
by the statistics of that share, and DistributedDataParallel would keep
rank 0's running statistics: a k-rank fit would then differ from the
1-process fit it is meant to reproduce. :func:`global_batch_norm` makes every
batch-normalisation layer of the fitted modules use the statistics of the
whole global batch while the fit trains: per channel, one all-reduce of the
count, sum and sum of squares (autograd-aware, so the gradients are those of
the 1-process loss), after which every rank holds the same running
statistics.

``torch.nn.SyncBatchNorm`` does the same on GPUs only (it refuses CPU
modules, so gloo fits could not use it) and is a module class of its own,
which ``save`` and ``load`` would then rebuild; here the layers keep their
class and only their ``forward`` is replaced, for the duration of the fit.
"""

import functools
from contextlib import contextmanager

import torch
from torch import distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from . import _distributed as distributed

__all__ = ["global_batch_norm"]


@contextmanager
def global_batch_norm(*modules):
    """Within the block, batch-norm layers of ``modules`` normalise over the global batch.

    Outside a data-parallel fit (no process group, or one process) the
    modules are left untouched. The layers' own ``forward`` is back on exit,
    whatever happened in the block.

    Parameters
    ----------
    *modules : torch.nn.Module or None
        The modules trained in the fit (decoder, encoder, latent table).
    """
    if not distributed.is_active():
        yield
        return
    layers = [
        layer
        for module in modules
        if module is not None
        for layer in module.modules()
        if isinstance(layer, _BatchNorm) and not isinstance(layer, torch.nn.SyncBatchNorm)
    ]
    for layer in layers:
        # An instance attribute shadows the class's forward for this layer only.
        layer.forward = functools.partial(_forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; its gradient is the sum over ranks of the gradients.

    (Every rank's loss uses the sum, and the ranks' losses add up to the
    1-process loss.) torch's own ``torch.distributed.nn.functional.all_reduce``
    does the same but is deprecated with a warning at every process.
    """

    @staticmethod
    def forward(ctx, tensor):
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad):
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


def _all_reduce_sum(tensor):
    """The sum over ranks of ``tensor``, differentiable, on the backend's device."""
    device = distributed._collective_device(tensor.device)
    return _AllReduceSum.apply(tensor.to(device)).to(tensor.device)


def _forward(layer, x):
    """``layer(x)`` with the statistics of the global batch in training mode."""
    if not layer.training:
        return type(layer).forward(layer, x)
    layer._check_input_dim(x)
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, channels] + [1] * (x.dim() - 2)
    values = x.float()
    # Sums taken around the running mean, the same on every rank, so that the
    # variance (mean of squares minus squared mean) loses little to cancellation.
    if layer.running_mean is not None:
        shift = layer.running_mean.detach().float()
    else:
        shift = values.new_zeros(channels)
    centred = values - shift.view(shape)
    count = values.new_full((1,), x.numel() // max(channels, 1))
    totals = _all_reduce_sum(torch.cat([centred.sum(dims), (centred * centred).sum(dims), count]))
    n = totals[-1]
    mean = totals[:channels] / n
    var = (totals[channels : 2 * channels] / n - mean * mean).clamp_min(0)
    out = (centred - mean.view(shape)) * torch.rsqrt(var + layer.eps).view(shape)
    if layer.affine:
        out = out * layer.weight.view(shape) + layer.bias.view(shape)
    if layer.track_running_stats and layer.running_mean is not None:
        _update_running_stats(layer, shift + mean, var, n)
    return out.to(x.dtype)


@torch.no_grad()
def _update_running_stats(layer, mean, var, n):
    """``BatchNorm``'s update of the running statistics, with the global batch's."""
    layer.num_batches_tracked.add_(1)
    if layer.momentum is None:  # a cumulative average, as BatchNorm does
        factor = 1.0 / float(layer.num_batches_tracked)
    else:
        factor = layer.momentum
    unbiased = var * (n / (n - 1).clamp_min(1))
    layer.running_mean.mul_(1 - factor).add_(mean.detach().to(layer.running_mean.dtype), alpha=factor)
    layer.running_var.mul_(1 - factor).add_(unbiased.detach().to(layer.running_var.dtype), alpha=factor)
