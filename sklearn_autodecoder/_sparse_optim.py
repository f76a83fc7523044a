"""Optimisers for the latent table that update only the rows of the batch.

A dense optimiser with momentum (or Adam) over the whole table keeps moving
rows that are not in the batch through their stale momentum. These work on
the sparse gradients of ``nn.Embedding(sparse=True)`` and touch only the rows
present in the gradient, momentum buffers and step counts included.
"""

import torch


def _rows_and_values(p, name):
    """The coalesced sparse gradient of ``p`` as (row indices, row values)."""
    grad = p.grad
    if not grad.is_sparse:
        raise RuntimeError(
            f"{name} expects sparse gradients (nn.Embedding(sparse=True)), got a dense one."
        )
    if grad.sparse_dim() != 1:
        raise RuntimeError(f"{name} expects gradients sparse along dimension 0 only.")
    # Coalescing sums the entries of a row that appears more than once.
    grad = grad.coalesce()
    return grad.indices()[0], grad.values()


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
                rows, values = _rows_and_values(p, "SparseSGD")
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buf = state["momentum_buffer"]
                    values = buf[rows].mul_(group["momentum"]).add_(values)
                    buf[rows] = values
                p.index_add_(0, rows, values, alpha=-group["lr"])
        return loss


class SparseRowAdam(torch.optim.Optimizer):
    """Adam for sparse gradients, with a step count per row.

    ``torch.optim.SparseAdam`` keeps one step count for the whole table, so
    a row's bias correction depends on how many batches passed before it
    was first seen: with the default betas its first update is ``lr`` at
    step 1, ``0.48 * lr`` at step 10 and ``2.5 * lr`` at step 1000. Here every row counts its own
    updates, so each row follows exactly the trajectory dense Adam would
    give it if it were optimised alone on the batches that contain it. The
    moments and the count of a row change only when the row is present in
    the gradient.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Parameters whose gradients are sparse along dimension 0 (one row per
        sample).
    lr : float, default=1e-3
        Learning rate.
    betas : tuple of float, default=(0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default=1e-8
        Added to the bias-corrected root second moment, as in
        ``torch.optim.Adam``.

    Notes
    -----
    The state of a parameter holds ``exp_avg`` and ``exp_avg_sq`` (its
    shape) and ``step``, an int64 tensor with one count per row.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}.")
        if not eps >= 0:
            raise ValueError(f"eps must be non-negative, got {eps}.")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                rows, g = _rows_and_values(p, "SparseRowAdam")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros(len(p), dtype=torch.int64, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                # load_state_dict keeps "step" where it was saved (torch's rule).
                steps = state["step"] = state["step"].to(p.device)
                steps.index_add_(0, rows, torch.ones_like(rows))
                # Bias corrections in float64, as dense Adam's Python floats
                # (MPS has no float64).
                wide = torch.float32 if p.device.type == "mps" else torch.float64
                t = steps[rows].to(wide).view(-1, *([1] * (p.dim() - 1)))
                exp_avg = state["exp_avg"][rows].lerp_(g, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                state["exp_avg"].index_copy_(0, rows, exp_avg)
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                # Dense Adam's update, with each row's own bias corrections.
                step_size = (group["lr"] / (1 - torch.pow(beta1, t))).to(p.dtype)
                bias_correction2_sqrt = torch.sqrt(1 - torch.pow(beta2, t)).to(p.dtype)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
                update = exp_avg.div_(denom).mul_(step_size)
                p.index_add_(0, rows, update, alpha=-1)
        return loss


def make_latent_optimizer(params, name, lr, momentum):
    """Build the row-wise optimiser ``name`` over the latent table's ``params``.

    Parameters
    ----------
    params : iterable of torch.Tensor
        The latent table's parameters (sparse gradients).
    name : {"sgd", "adam"}
        :class:`SparseSGD` with ``momentum``, or :class:`SparseRowAdam`
        (``momentum`` unused).
    lr : float
        Learning rate.
    momentum : float
        Momentum of "sgd".

    Returns
    -------
    optimizer : torch.optim.Optimizer
    """
    if name == "sgd":
        return SparseSGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return SparseRowAdam(params, lr=lr)
    raise ValueError(f"Unknown latent optimizer {name!r}; expected 'sgd' or 'adam'.")
