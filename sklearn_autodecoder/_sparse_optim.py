"""Optimisers for the latent table that update only the rows of the batch.

A dense optimiser with momentum (or Adam) over the whole table keeps moving
rows that are not in the batch through their stale momentum. These work on
the sparse gradients of ``nn.Embedding(sparse=True)`` and touch only the rows
present in the gradient, momentum buffers included.
"""

import torch


class SparseSGD(torch.optim.Optimizer):
    """SGD with per-row ("lazy") momentum for sparse gradients.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Parameters whose gradients are sparse along dimension 0.
    lr : float
        Learning rate.
    momentum : float, default=0.0
        Momentum factor, applied only to the rows present in a gradient.
    """

    def __init__(self, params, lr, momentum=0.0):
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not grad.is_sparse:
                    raise RuntimeError("SparseSGD expects sparse gradients.")
                grad = grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buf = state["momentum_buffer"]
                    values = buf[rows].mul_(group["momentum"]).add_(values)
                    buf[rows] = values
                p.index_add_(0, rows, values, alpha=-group["lr"])
        return loss


def make_latent_optimizer(params, name, lr, momentum):
    """Build the row-wise optimiser ``name`` ("sgd" or "adam") over ``params``."""
    if name == "sgd":
        return SparseSGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.SparseAdam(params, lr=lr)
    raise ValueError(f"Unknown latent optimizer {name!r}; expected 'sgd' or 'adam'.")
