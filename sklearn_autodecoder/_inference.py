"""Latent inference: project samples onto the decoder's manifold.

For each sample, find the latent vector whose decoding best reconstructs the
sample's observed entries, with the decoder frozen. Every sample's problem is
independent: the objective is a sum of per-sample losses and the optimiser
(Adam) acts element-wise, so a row's result never depends on the other rows
of its chunk, and a sample stops on its own convergence test.
"""

import math

import torch

from ._losses import sample_losses

# A sample stops once its best loss has not improved by more than a fraction
# ``tol`` for this many consecutive steps (Adam's loss is not monotone).
N_ITER_NO_CHANGE = 5
_BETAS = (0.9, 0.999)
_EPS = 1e-8


def _objective(decoder, z, x, mask, loss, latent_l2):
    losses = sample_losses(decoder(z), x, loss, mask)
    if latent_l2:
        losses = losses + latent_l2 * z.pow(2).sum(dim=1)
    return losses


def _infer_chunk(decoder, z0, x, mask, *, loss, max_iter, learning_rate, tol, latent_l2):
    """Adam on one chunk's latents; returns the best latents and steps used."""
    z = z0.clone()
    m1 = torch.zeros_like(z)
    m2 = torch.zeros_like(z)
    best = z.clone()
    best_loss = torch.full((len(z),), math.inf, dtype=z.dtype, device=z.device)
    stall = torch.zeros(len(z), dtype=torch.long, device=z.device)
    active = torch.arange(len(z), device=z.device)
    b1, b2 = _BETAS
    n_iter = 0
    for t in range(1, max_iter + 1):
        n_iter = t
        za = z[active].requires_grad_(True)
        ma = None if mask is None else mask[active]
        losses = _objective(decoder, za, x[active], ma, loss, latent_l2)
        (grad,) = torch.autograd.grad(losses.sum(), za)
        with torch.no_grad():
            za = za.detach()
            better = losses < best_loss[active]
            improved = losses < best_loss[active] * (1 - tol)
            best[active[better]] = za[better]
            best_loss[active[better]] = losses[better]
            stall[active] = torch.where(improved, 0, stall[active] + 1)
            m1[active] = b1 * m1[active] + (1 - b1) * grad
            m2[active] = b2 * m2[active] + (1 - b2) * grad * grad
            step = (m1[active] / (1 - b1**t)) / ((m2[active] / (1 - b2**t)).sqrt() + _EPS)
            z[active] = za - learning_rate * step
            active = active[stall[active] < N_ITER_NO_CHANGE]
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
    init : callable
        ``init(x_chunk, mask_chunk) -> z0`` gives the starting latents of a
        chunk (on ``device``, in X's dtype).
    loss : {"mse", "bce"}
        Reconstruction loss.
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed.
    max_iter : int, default=100
        Most Adam steps per sample.
    learning_rate : float, default=0.1
        Adam step size.
    tol : float, default=1e-4
        Relative loss improvement below which a step counts as no progress.
    latent_l2 : float, default=0.0
        Weight of an L2 prior on the latents.
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
    was_training = decoder.training
    decoder.eval()
    chunks, n_iter = [], 0
    try:
        for start in range(0, len(X), batch_size):
            x = X[start : start + batch_size].to(device)
            m = None if mask is None else mask[start : start + batch_size].to(device)
            z, steps = _infer_chunk(
                decoder,
                init(x, m),
                x,
                m,
                loss=loss,
                max_iter=max_iter,
                learning_rate=learning_rate,
                tol=tol,
                latent_l2=latent_l2,
            )
            chunks.append(z)
            n_iter = max(n_iter, steps)
    finally:
        decoder.train(was_training)
    return torch.cat(chunks), n_iter
