"""Architectures shared by the auto-decoders and the autoencoders.

Two mixins, one per decoder family (MLP, convolutional), each giving the
architecture hooks of :class:`._base.BaseRepresentationEstimator`:
``_build_decoder``, ``_build_encoder`` (the mirrored encoder), the width
check, the default settings and the parameter constraints. A public
estimator is one of these mixins plus a representation family
(:class:`._autodecoder.BaseAutoDecoder` or
:class:`._autoencoder.BaseAutoEncoder`).
"""

import copy
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_array
from torch import nn

from . import presets
from ._compat import StrOptions
from ._likelihoods import get_likelihood
from .nn import ACTIVATIONS, MLPDecoder, MLPEncoder

def check_module_widths(module, n_in, n_out, name):
    """Raise a clear ValueError unless ``module`` maps (2, n_in) to (2, n_out).

    Run on a dummy batch of zeros before training, without gradients and in
    eval mode (each submodule's mode is put back; BatchNorm statistics stay
    untouched), so that a wrongly shaped user module fails at once, naming
    the shapes.
    """
    expected = (2, n_out)
    tensor = next(iter(module.state_dict().values()), None)
    dummy = torch.zeros(2, n_in, device=None if tensor is None else tensor.device)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            out = module(dummy)
    except Exception as exc:  # any failure of the user's forward on the wrong input width
        raise ValueError(
            f"{name} must map inputs of shape (n, {n_in}) to (n, {n_out}); on a batch of shape "
            f"{tuple(dummy.shape)} it raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for m, training in modes:
            m.training = training
    shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
    if shape != expected:
        raise ValueError(
            f"{name} must map inputs of shape (n, {n_in}) to (n, {n_out}); it maps a batch of "
            f"shape {tuple(dummy.shape)} to {shape}, expected {expected}."
        )


class MLPDecoderMixin:
    """An MLP decoder (``hidden_layer_sizes``, ``activation``), optionally sparse linear,
    or the user's own modules (``decoder=``, ``encoder=``)."""

    _decoder_constraints = {
        "hidden_layer_sizes": [tuple, list, Integral],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "connectivity": ["array-like", None],
        "decoder": [nn.Module, None],
        "encoder": [nn.Module, None],
    }

    def _decoder_is_pca_linear(self):
        """Whether a linear decoder is the package's dense one, which PCA solves under MSE."""
        return self.decoder is None and self.connectivity is None

    def _hidden_sizes(self):
        # An int is one hidden layer, as in scikit-learn's MLPs.
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, Integral) else tuple(sizes)
        if not all(isinstance(s, Integral) and s > 0 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}."
            )
        return sizes

    def _connectivity(self, n_components, n_features):
        """The validated 0/1 mask, or None for a dense decoder."""
        if self.connectivity is None:
            return None
        mask = check_array(self.connectivity, dtype=None, input_name="connectivity")
        if mask.shape != (n_components, n_features):
            raise ValueError(
                f"connectivity has shape {mask.shape}, expected (n_components, n_features) = "
                f"({n_components}, {n_features})."
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("connectivity must hold only 0/1 (or boolean) values.")
        if self._hidden_sizes():
            raise ValueError(
                "connectivity sets a sparse *linear* decoder: pass hidden_layer_sizes=()."
            )
        return mask.astype(bool)

    def _build_decoder(self, n_features, settings):
        if self.decoder is not None:
            if self.connectivity is not None:
                raise ValueError("connectivity shapes the package's own decoder: pass it or decoder=, not both.")
            # A copy: fit never trains (or moves) the user's module itself.
            return copy.deepcopy(self.decoder)
        m = settings["n_components"]
        return MLPDecoder(
            m,
            n_features,
            self._hidden_sizes(),
            activation=self.activation,
            output_activation=get_likelihood(settings["loss"]).output_activation,
            connectivity=self._connectivity(m, n_features),
        )

    def _build_encoder(self, n_features, settings):
        if self.encoder is not None:
            return copy.deepcopy(self.encoder)
        # Dense even when the decoder is sparse: a masked encoder could not
        # invert the decoder in general.
        return MLPEncoder(
            n_features, settings["n_components"], self._hidden_sizes(), activation=self.activation
        )


class ConvDecoderMixin:
    """A convolutional decoder from a preset or spec; X holds flattened images."""

    def _decoder_is_pca_linear(self):
        return False  # a conv decoder's linear layer is not the whole decoder

    _decoder_constraints = {
        "preset": [StrOptions(set(presets.PRESETS)), presets.ConvDecoderSpec],
    }
    # uint8 input holds 8-bit pixels: x / 255, per batch.
    _uint8_scale = 1.0 / 255.0
    # The published presets start their latents small and random.
    _random_latent_start = True

    def _spec(self):
        return presets.get_preset(self.preset)

    def _image_shape(self):
        return tuple(self._spec().image_shape)

    def _default_settings(self):
        return self._spec().settings

    def _check_n_features(self, n_features):
        shape = tuple(self._spec().image_shape)
        expected = shape[0] * shape[1] * shape[2]
        if n_features != expected:
            name = self.preset if isinstance(self.preset, str) else "the custom spec"
            raise ValueError(
                f"X has {n_features} features, but preset {name!r} decodes images of shape "
                f"{shape} (C, H, W), i.e. {expected} features per row in channel-first order."
            )
        self.image_shape_ = shape

    def _build_decoder(self, n_features, settings):
        return nn.Sequential(
            presets.make_decoder(self._spec(), settings["n_components"]), nn.Flatten()
        )

    def _build_encoder(self, n_features, settings):
        spec = self._spec()
        return nn.Sequential(
            nn.Unflatten(1, tuple(spec.image_shape)),
            presets.make_encoder(spec, settings["n_components"]),
        )
