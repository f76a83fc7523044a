"""Per-sample reconstruction losses.

Convention used throughout the package: a sample's loss is the **sum** over its
observed features of the element-wise loss, and a batch's objective is the sum
of its samples' losses. The gradient with respect to a latent vector then
depends on its own sample only, whatever the batch size, so latent learning
rates match the published (sum-reduced) settings and inference rows are
independent of each other.
"""

import torch
import torch.nn.functional as F

LOSSES = ("mse", "bce")


def elementwise_loss(x_hat, x, loss):
    """Element-wise loss between reconstructions ``x_hat`` and targets ``x``."""
    if loss == "mse":
        return (x_hat - x) ** 2
    if loss == "bce":
        return F.binary_cross_entropy(x_hat, x, reduction="none")
    raise ValueError(f"Unknown loss {loss!r}; expected one of {LOSSES}.")


def sample_losses(x_hat, x, loss, mask=None):
    """Loss of each sample, summed over its observed features.

    Parameters
    ----------
    x_hat, x : torch.Tensor of shape (n_samples, n_features)
        Reconstructions and targets. Where ``mask`` is False, ``x`` may hold
        any finite placeholder: those entries get no weight and no gradient.
    loss : {"mse", "bce"}
        Element-wise loss.
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed. None means all are observed.

    Returns
    -------
    losses : torch.Tensor of shape (n_samples,)
    """
    elements = elementwise_loss(x_hat, x, loss)
    if mask is not None:
        # torch.where (not a product) so that a NaN/inf in a hidden entry's
        # loss cannot leak into the sum or its gradient.
        elements = torch.where(mask, elements, torch.zeros((), dtype=elements.dtype))
    return elements.sum(dim=1)
