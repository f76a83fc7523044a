"""Per-sample reconstruction losses.

Convention used throughout the package: a sample's loss is the **sum** over its
observed features of the element-wise loss, and a batch's objective is the sum
of its samples' losses. The gradient with respect to a latent vector then
depends on its own sample only, whatever the batch size, so latent learning
rates match the published (sum-reduced) settings and inference rows are
independent of each other.

Binary cross-entropy is computed from the decoder's *logits* wherever the
decoder ends with a ``Sigmoid`` (every decoder the package builds does): on
probabilities, a saturated output has an exactly zero gradient (a logit of
20 with target 0 costs 20 nats but cannot move), and the logarithms clamp at
-100. :func:`decoded_losses` is the entry point that does this; the decoder
itself still maps latents to probabilities.
"""

from ._likelihoods import (
    LIKELIHOODS,
    get_likelihood,
    masked_sum,
    split_output_activation,
    wrap_keeping_logits,
)

__all__ = [
    "LOSSES",
    "decode_and_losses",
    "decoded_losses",
    "masked_sum",
    "output_and_loss",
    "sample_losses",
    "split_output_activation",
    "wrap_keeping_logits",
]

# The public names of ``loss=`` (the likelihood registry's keys).
LOSSES = tuple(LIKELIHOODS)


def sample_losses(x_hat, x, loss, mask=None):
    """Loss of each sample, summed over its observed features.

    Parameters
    ----------
    x_hat, x : torch.Tensor of shape (n_samples, n_features)
        Reconstructions and targets. Where ``mask`` is False, ``x`` may hold
        any finite placeholder: those entries get no weight and no gradient.
        For "bce", ``x_hat`` holds probabilities (logs clamped at -100 by
        torch); prefer :func:`decoded_losses`, which works from logits.
    loss : str or Likelihood
        A name of :data:`~._likelihoods.LIKELIHOODS` ("mse", "bce") or a
        likelihood object.
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed. None means all are observed.

    Returns
    -------
    losses : torch.Tensor of shape (n_samples,)
    """
    return masked_sum(get_likelihood(loss).elementwise(x_hat, x, mask), mask)


def output_and_loss(decoder, loss):
    """How to compute ``loss`` from a decoder's last differentiable output.

    Parameters
    ----------
    decoder : torch.nn.Module
    loss : str or Likelihood

    Returns
    -------
    forward : torch.nn.Module
        ``decoder`` itself, or its logit view for "bce".
    link : str
        What ``forward`` outputs, in the likelihood's terms (see
        :meth:`~._likelihoods.Likelihood.head`).
    """
    return get_likelihood(loss).head(decoder)


def decoded_losses(decoder, z, x, loss, mask=None):
    """Loss of each sample's decoding, summed over its observed features.

    The single entry point for a loss through a decoder: training and
    inference both call it. For "bce" it works from the logits when the
    decoder ends with a Sigmoid (exact, with a non-vanishing gradient when
    saturated); otherwise from the probabilities (clamped logs).

    Parameters
    ----------
    decoder : torch.nn.Module
        Maps (n_samples, n_components) latents to (n_samples, n_features).
    z : torch.Tensor of shape (n_samples, n_components)
    x : torch.Tensor of shape (n_samples, n_features)
        Targets; entries where ``mask`` is False may hold any finite value.
    loss : str or Likelihood
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed; None means all are.

    Returns
    -------
    losses : torch.Tensor of shape (n_samples,)

    See Also
    --------
    decode_and_losses : The same, with the reconstructions from the same pass.
    """
    return decode_and_losses(decoder, z, x, loss, mask)[1]


def decode_and_losses(decoder, z, x, loss, mask=None):
    """``(decoder(z), decoded_losses(...))`` from one forward pass.

    For the training loop, which needs the reconstructions too (skorch's
    ``y_pred``): with logits, the probabilities are their sigmoid.

    Returns
    -------
    x_hat : torch.Tensor of shape (n_samples, n_features)
        What ``decoder(z)`` returns (probabilities for "bce").
    losses : torch.Tensor of shape (n_samples,)
    """
    likelihood = get_likelihood(loss)
    forward, link = likelihood.head(decoder)
    f = forward(z)
    offset = likelihood.row_offset(f, x, link, mask)  # e.g. a count row's library size
    return likelihood.mean(f, link, offset), masked_sum(likelihood.nll(f, x, link, offset), mask)
