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

import weakref

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("mse", "bce")

# Modules that only reshape: a Sigmoid followed by these is still the
# decoder's output activation (sigmoid commutes with a reshape).
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)

# decoder -> its logit view (or None): built once per decoder object, since
# building an nn.Sequential costs about as much as a small decoder's forward.
_LOGIT_VIEWS = weakref.WeakKeyDictionary()


def _check_loss(loss):
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; expected one of {LOSSES}.")


def elementwise_loss(x_hat, x, loss):
    """Element-wise loss between reconstructions ``x_hat`` and targets ``x``.

    For "bce", ``x_hat`` holds probabilities (logs clamped at -100 by torch);
    prefer :func:`decoded_losses`, which works from logits.
    """
    _check_loss(loss)
    if loss == "mse":
        return (x_hat - x) ** 2
    return F.binary_cross_entropy(x_hat, x, reduction="none")


def masked_sum(elements, mask=None):
    """Sum each row of ``elements`` over its observed (``mask`` True) entries."""
    if mask is not None:
        # torch.where (not a product) so that a NaN/inf in a hidden entry's
        # loss cannot leak into the sum or its gradient.
        elements = torch.where(mask, elements, torch.zeros((), dtype=elements.dtype, device=elements.device))
    return elements.sum(dim=1)


def sample_losses(x_hat, x, loss, mask=None):
    """Loss of each sample, summed over its observed features.

    Parameters
    ----------
    x_hat, x : torch.Tensor of shape (n_samples, n_features)
        Reconstructions and targets. Where ``mask`` is False, ``x`` may hold
        any finite placeholder: those entries get no weight and no gradient.
        For "bce", ``x_hat`` holds probabilities.
    loss : {"mse", "bce"}
        Element-wise loss.
    mask : torch.Tensor of bool, shape (n_samples, n_features), default=None
        True where an entry is observed. None means all are observed.

    Returns
    -------
    losses : torch.Tensor of shape (n_samples,)
    """
    return masked_sum(elementwise_loss(x_hat, x, loss), mask)


def _without_sigmoid(module):
    """``module`` minus its trailing Sigmoid, sharing the other modules; or None."""
    if isinstance(module, nn.Sigmoid):
        return nn.Identity()
    if not isinstance(module, nn.Sequential):
        return None
    children = list(module)
    for i in range(len(children) - 1, -1, -1):
        if isinstance(children[i], _RESHAPES):
            continue
        inner = _without_sigmoid(children[i])
        if inner is None:
            return None
        return nn.Sequential(*children[:i], inner, *children[i + 1 :])
    return None


def split_output_activation(decoder):
    """The decoder's logits: ``decoder`` without its final ``nn.Sigmoid``.

    The Sigmoid may be the last module of an ``nn.Sequential`` (at any
    nesting depth), followed only by reshaping modules (``Flatten``,
    ``Unflatten``, ``Identity``), as in the MLP decoders and the conv presets.

    Parameters
    ----------
    decoder : torch.nn.Module

    Returns
    -------
    logits : torch.nn.Module or None
        A module sharing ``decoder``'s submodules (and so its parameters and
        train/eval modes) that stops before the Sigmoid; None when
        ``decoder`` has no such trailing Sigmoid. It is cached per decoder
        object: replacing a submodule of ``decoder`` afterwards is not seen.
    """
    try:
        return _LOGIT_VIEWS[decoder]
    except KeyError:
        view = _without_sigmoid(decoder)
        _LOGIT_VIEWS[decoder] = view
        return view


def wrap_keeping_logits(decoder, wrap):
    """``wrap(decoder)``, with the trailing Sigmoid kept outside the wrapper.

    A wrapper (``torch.compile``, DistributedDataParallel) hides the
    decoder's layers, so :func:`split_output_activation` would no longer find
    its logits and BCE would fall back to the clamped probability form.
    Wrapping the logit view instead and applying the Sigmoid after it keeps
    the exact logit form.

    Parameters
    ----------
    decoder : torch.nn.Module
    wrap : callable
        ``module -> module``; may return its argument unchanged.

    Returns
    -------
    module : torch.nn.Module
        Computes what ``decoder`` computes, with the same parameters.
    """
    logits = split_output_activation(decoder)
    if logits is None:
        return wrap(decoder)
    wrapped = wrap(logits)
    if wrapped is logits:  # nothing to see through
        return wrap(decoder)
    return nn.Sequential(wrapped, nn.Sigmoid())


def decode_logits(decoder, z):
    """Pre-sigmoid outputs of ``decoder`` at ``z``.

    Raises
    ------
    ValueError
        If the decoder does not end with a Sigmoid (see
        :func:`split_output_activation`).
    """
    logits = split_output_activation(decoder)
    if logits is None:
        raise ValueError(
            f"{type(decoder).__name__} does not end with an nn.Sigmoid (optionally followed "
            "by Flatten/Unflatten), so it has no logits."
        )
    return logits(z)


def output_and_loss(decoder, loss):
    """How to compute ``loss`` from a decoder's last differentiable output.

    Parameters
    ----------
    decoder : torch.nn.Module
    loss : {"mse", "bce"}

    Returns
    -------
    forward : torch.nn.Module
        ``decoder`` itself, or its logit view for "bce".
    link : {"identity", "logit", "probability"}
        What ``forward`` outputs: values compared by MSE, logits, or
        probabilities (BCE on a decoder with no trailing Sigmoid: the
        clamped probability form, as before logits were used).
    """
    _check_loss(loss)
    if loss == "mse":
        return decoder, "identity"
    logits = split_output_activation(decoder)
    return (decoder, "probability") if logits is None else (logits, "logit")


def loss_units_per_nat(loss, noise_variance=None):
    """Factor that turns a negative log-likelihood in nats into ``loss``'s units.

    BCE is a Bernoulli negative log-likelihood (1); squared error is
    ``2 sigma^2`` times a Gaussian's, sigma^2 its noise variance. A prior's
    nats times this factor weigh against the reconstruction loss as the
    likelihood would, whatever the data's scale.

    Parameters
    ----------
    loss : {"mse", "bce"}
    noise_variance : float or torch.Tensor, default=None
        Required for "mse".

    Returns
    -------
    factor : float or torch.Tensor
    """
    _check_loss(loss)
    return 2.0 * noise_variance if loss == "mse" else 1.0


def link_losses(f, x, link):
    """Element-wise loss of the output ``f`` (see :func:`output_and_loss`)."""
    if link == "identity":
        return (f - x) ** 2
    if link == "logit":
        return F.binary_cross_entropy_with_logits(f, x, reduction="none")
    return F.binary_cross_entropy(f, x, reduction="none")


def link_derivatives(f, x, link):
    """First derivative and Gauss-Newton weight of :func:`link_losses` in ``f``.

    The Gauss-Newton (Fisher) approximation of a sample's Hessian in its
    latent z is ``J^T diag(weight) J`` with ``J = df/dz``; its gradient is
    ``J^T slope``.

    Returns
    -------
    slope, weight : torch.Tensor, each of f's shape
    """
    if link == "identity":
        return 2 * (f - x), torch.full_like(f, 2.0)
    if link == "logit":
        p = torch.sigmoid(f)
        return p - x, p * (1 - p)
    # Probabilities: d/dp of -x log p - (1 - x) log(1 - p), and its Fisher weight.
    tiny = torch.finfo(f.dtype).eps
    p = f.clamp(tiny, 1 - tiny)
    var = p * (1 - p)
    return (p - x) / var, 1 / var


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
    loss : {"mse", "bce"}
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
    forward, link = output_and_loss(decoder, loss)
    f = forward(z)
    x_hat = torch.sigmoid(f) if link == "logit" else f
    return x_hat, masked_sum(link_losses(f, x, link), mask)
