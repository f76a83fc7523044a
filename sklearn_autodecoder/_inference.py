"""Latent inference: project samples onto the decoder's manifold.

For each sample, find the latent vector whose decoding best reconstructs the
sample's observed entries, with the decoder frozen. Every sample's problem is
independent: the objective is a sum of per-sample losses and the optimiser
(Adam) acts element-wise, so a row's result never depends on the other rows
of its chunk, and a sample stops on its own convergence test.

Starting points (see :func:`nearest_latents` and the estimators' ``init``)
are computed chunk by chunk too, each row from its own sample only.
"""

import math
from contextlib import contextmanager

import torch

from ._losses import sample_losses

# A sample whose best loss has not improved by more than a fraction ``tol``
# for PATIENCE consecutive steps returns to its best latent with a step
# STEP_CUT times smaller and fresh Adam moments (large steps find the basin
# fast, small ones settle in it); at the N_CUTS-th cut it stops.
PATIENCE = 3
STEP_CUT = 0.3
N_CUTS = 4
_BETAS = (0.9, 0.999)
_EPS = 1e-8
# F.binary_cross_entropy clamps its logs at -100; the pairwise form does too,
# so that both rank candidates alike.
_LOG_FLOOR = -100.0


def _objective(decoder, z, x, mask, loss, latent_l2, penalty=None):
    losses = sample_losses(decoder(z).to(x.dtype), x, loss, mask)
    if latent_l2:
        losses = losses + latent_l2 * z.pow(2).sum(dim=1)
    if penalty is not None:
        losses = losses + penalty(z)
    return losses


@contextmanager
def frozen(module):
    """Eval mode and no parameter gradients while inside; restored after.

    Without ``requires_grad=False`` autograd keeps the weights' inputs alive
    for a weight gradient that inference never uses.
    """
    was_training = module.training
    flags = [p.requires_grad for p in module.parameters()]
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        module.train(was_training)


def _infer_chunk(decoder, z0, x, mask, *, loss, max_iter, learning_rate, tol, latent_l2, penalty=None):
    """Adam with per-row step cuts on one chunk's latents.

    Returns the best latent each row visited and the steps used. Rows leave
    the active set once they stop (early exit), so a converged sample costs
    nothing more; all state (moments, step size, step count) is per row.
    """
    n = len(z0)
    z, best = z0.clone(), z0.clone()
    if max_iter == 0:
        return best, 0
    m1, m2 = torch.zeros_like(z), torch.zeros_like(z)
    row = dict(dtype=z.dtype, device=z.device)
    best_loss = torch.full((n,), math.inf, **row)
    lr = torch.full((n, 1), float(learning_rate), **row)
    t = torch.zeros(n, 1, **row)  # Adam's step count, restarted at each cut
    stall = torch.zeros(n, dtype=torch.long, device=z.device)
    cuts = torch.zeros(n, dtype=torch.long, device=z.device)
    active = torch.arange(n, device=z.device)
    b1, b2 = _BETAS
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        za = z[active].requires_grad_(True)
        ma = None if mask is None else mask[active]
        losses = _objective(decoder, za, x[active], ma, loss, latent_l2, penalty)
        (grad,) = torch.autograd.grad(losses.sum(), za)
        with torch.no_grad():
            za = za.detach()
            better = losses < best_loss[active]
            improved = losses < best_loss[active] * (1 - tol)
            best[active[better]] = za[better]
            best_loss[active[better]] = losses[better]
            stall[active] = torch.where(improved, 0, stall[active] + 1)
            ta = t[active] + 1
            m1[active] = b1 * m1[active] + (1 - b1) * grad
            m2[active] = b2 * m2[active] + (1 - b2) * grad * grad
            step = (m1[active] / (1 - b1**ta)) / ((m2[active] / (1 - b2**ta)).sqrt() + _EPS)
            z[active] = za - lr[active] * step
            t[active] = ta
            # Rows out of patience: cut the step and restart from the best.
            cut = active[stall[active] >= PATIENCE]
            if len(cut):
                cuts[cut] += 1
                stall[cut] = 0
                lr[cut] *= STEP_CUT
                z[cut], m1[cut], m2[cut], t[cut] = best[cut], 0.0, 0.0, 0.0
                active = active[cuts[active] < N_CUTS]
        if len(active) == 0:
            break
    return best, n_iter


def infer_latents(
    decoder,
    X,
    init,
    *,
    loss,
    mask=None,
    max_iter=100,
    learning_rate=0.1,
    tol=1e-4,
    latent_l2=0.0,
    penalty=None,
    batch_size=256,
    device="cpu",
):
    """Infer the latents of ``X`` under a frozen ``decoder``.

    Parameters
    ----------
    decoder : torch.nn.Module
        Maps (n, n_components) latents to (n, n_features) reconstructions. It
        is put in eval mode; its parameters get no gradient.
    X : torch.Tensor of shape (n_samples, n_features)
        Samples, on any device; moved chunk by chunk to ``device``. Entries
        where ``mask`` is False must be finite placeholders.
    init : callable or torch.Tensor of shape (n_samples, n_components)
        ``init(x_chunk, mask_chunk) -> z0`` gives the starting latents of a
        chunk (on ``device``, in X's dtype); each row must depend on its own
        sample only. A tensor gives every sample's start directly.
    loss : {"mse", "bce"}
        Reconstruction loss.
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed.
    max_iter : int, default=100
        Most Adam steps per sample; 0 returns the starting latents.
    learning_rate : float, default=0.1
        Adam step size.
    tol : float, default=1e-4
        Relative loss improvement below which a step counts as no progress.
    latent_l2 : float, default=0.0
        Weight of an L2 prior on the latents.
    penalty : callable, default=None
        ``penalty(z) -> (n,)`` added to each row's loss, from that row's
        latent only (e.g. a mixture prior's negative log-density).
    batch_size : int, default=256
        Samples per chunk: bounds device memory.
    device : torch.device or str, default="cpu"
        Where the optimisation runs.

    Returns
    -------
    Z : torch.Tensor of shape (n_samples, n_components)
        On ``device``.
    n_iter : int
        Most steps any chunk used.
    """
    chunks, n_iter = [], 0
    if torch.is_tensor(init):
        starts = iter(torch.split(init, batch_size))
        init = lambda x, m: next(starts).to(device=device, dtype=x.dtype)  # noqa: E731
    with frozen(decoder):
        for x, m in _chunks(X, mask, batch_size, device):
            with torch.no_grad():
                z0 = init(x, m)
            z, steps = _infer_chunk(
                decoder,
                z0,
                x,
                m,
                loss=loss,
                max_iter=max_iter,
                learning_rate=learning_rate,
                tol=tol,
                latent_l2=latent_l2,
                penalty=penalty,
            )
            chunks.append(z)
            n_iter = max(n_iter, steps)
    return torch.cat(chunks), n_iter


def _chunks(X, mask, batch_size, device):
    """``(x, mask)`` slices of ``batch_size`` rows, moved to ``device``."""
    for start in range(0, len(X), batch_size):
        x = X[start : start + batch_size].to(device)
        m = None if mask is None else mask[start : start + batch_size].to(device)
        yield x, m


def pairwise_losses(x, mask, references, loss):
    """Loss of every sample against every reference reconstruction.

    The masked per-sample loss of :func:`~._losses.sample_losses`, for all
    pairs at once, written as matrix products (no per-pair tensor of
    n_features values).

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, n_features)
        Samples; entries where ``mask`` is False are ignored.
    mask : torch.Tensor of bool of the same shape, or None
        True where an entry is observed.
    references : torch.Tensor of shape (n_references, n_features)
        Reconstructions to compare with.
    loss : {"mse", "bce"}

    Returns
    -------
    losses : torch.Tensor of shape (n_samples, n_references)
    """
    w = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    x = x * w  # zero the placeholders so that they add nothing
    if loss == "mse":
        # sum_j w_j (x_j - r_j)^2 = sum w x^2 - 2 (w x) . r + w . r^2
        return (x * x).sum(1, keepdim=True) - 2 * x @ references.T + w @ (references * references).T
    log_r = references.log().clamp(min=_LOG_FLOOR)
    log_1mr = torch.log1p(-references).clamp(min=_LOG_FLOOR)
    return -(x @ log_r.T) - (w - x) @ log_1mr.T


def nearest_latents(x, mask, references, latents, loss):
    """The latent whose reconstruction best fits each sample's observed entries.

    Parameters
    ----------
    x, mask : torch.Tensor
        A chunk of samples and its observed-entry mask (or None).
    references : torch.Tensor of shape (n_references, n_features)
        Decoded training latents, in x's dtype and on its device.
    latents : torch.Tensor of shape (n_references, n_components)
        The training latents they decode.
    loss : {"mse", "bce"}

    Returns
    -------
    z0 : torch.Tensor of shape (n_samples, n_components)
        A copy of the best training latent of each row.
    """
    best = pairwise_losses(x, mask, references, loss).argmin(dim=1)
    return latents[best].clone()


@torch.no_grad()
def decode_in_chunks(decoder, Z, batch_size, device):
    """``decoder(Z)`` in eval mode, ``batch_size`` rows at a time, on ``device``."""
    with frozen(decoder):
        return torch.cat([decoder(z) for z, _ in _chunks(Z, None, batch_size, device)])
