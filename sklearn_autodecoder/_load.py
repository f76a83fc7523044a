"""Decoder and encoder *load*: how many data values constrain each free parameter.

Schuster and Krogh (2021) call the ratio of the number of values a network
must explain to the number of its free parameters its load. An auto-decoder
explains the N*n values of N samples with n features using W decoder weights
and N*m free latent values, so its load is N*n / (W + N*m); below 1 the
problem is under-determined. An encoder trained on fixed targets (the m
latents of each of N samples) with W_enc weights has load N*m / W_enc, for
equal architectures usually far below the decoder's: that is why a decoder
generalises better than an autoencoder's encoder on small data.
"""

from numbers import Real

import torch

from .presets import n_parameters

__all__ = ["LowLoadWarning", "decoder_load", "encoder_load", "n_free_parameters"]


class LowLoadWarning(UserWarning):
    """Warning issued when a fit's decoder load is below 1 (under-determined)."""


def n_free_parameters(module):
    """Number of trainable scalar parameters of a torch module.

    Weights that a fixed connectivity mask holds at zero (see
    :class:`sklearn_autodecoder.nn.MaskedLinear`) are not free and are not
    counted.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    count : int

    Examples
    --------
    >>> from torch import nn
    >>> from sklearn_autodecoder import n_free_parameters
    >>> n_free_parameters(nn.Linear(3, 2))
    8
    """
    count = n_parameters(module)
    for sub in module.modules():
        mask = getattr(sub, "mask", None)
        if isinstance(mask, torch.Tensor) and sub.weight.requires_grad:
            count -= int((~mask.bool()).sum())
    return count


def _weights(n_weights):
    if isinstance(n_weights, torch.nn.Module):
        return n_free_parameters(n_weights)
    return n_weights


def _check(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, Real) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")


def decoder_load(n_samples, n_features, n_components, n_weights):
    """Load of an auto-decoder: N*n / (W + N*m).

    Parameters
    ----------
    n_samples : int
        N, the number of training samples (each has a free latent vector).
    n_features : float
        n, the values per sample. With missing entries, pass the mean number
        of observed entries per sample.
    n_components : int
        m, the latent size.
    n_weights : int or torch.nn.Module
        W, the decoder's free parameters, or the decoder itself (counted by
        :func:`n_free_parameters`).

    Returns
    -------
    load : float
        Data values per free parameter; below 1 the decoder and latents are
        under-determined by the data.

    See Also
    --------
    encoder_load : The load of an encoder trained on fixed targets.

    Examples
    --------
    >>> from sklearn_autodecoder import decoder_load
    >>> round(decoder_load(500, 784, 20, 263873), 3)  # MNIST preset, 500 images
    1.431
    """
    W = _weights(n_weights)
    for name, value in [("n_samples", n_samples), ("n_features", n_features), ("n_components", n_components)]:
        _check(name, value)
    _check("n_weights", W, allow_zero=True)
    return n_samples * n_features / (W + n_samples * n_components)


def encoder_load(n_samples, n_components, n_weights):
    """Load of an encoder trained on fixed targets: N*m / W_enc.

    Parameters
    ----------
    n_samples : int
        N, the number of training samples.
    n_components : int
        m, the size of each sample's target latent vector.
    n_weights : int or torch.nn.Module
        W_enc, the encoder's free parameters, or the encoder itself.

    Returns
    -------
    load : float

    See Also
    --------
    decoder_load : The load of an auto-decoder.

    Examples
    --------
    >>> from sklearn_autodecoder import encoder_load
    >>> round(encoder_load(1000, 100, 100_100), 3)
    0.999
    """
    W = _weights(n_weights)
    for name, value in [("n_samples", n_samples), ("n_components", n_components), ("n_weights", W)]:
        _check(name, value)
    return n_samples * n_components / W
