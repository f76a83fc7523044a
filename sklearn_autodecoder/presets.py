"""Published convolutional architectures, stored as data.

Each preset is a :class:`ConvDecoderSpec`: the image shape, the latent size,
how the latent vector becomes a feature map (a reshape, or a linear head), a
table of transposed-convolution layers and the published training settings.
:func:`make_decoder` and :func:`make_encoder` turn a spec into torch modules,
so a new architecture is a new table, not a new class.

The layer tables reproduce the reference implementations' parameter counts
exactly (see ``PRESETS``).
"""

import math
import numbers
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
from torch import nn

from ._compat import IntegerInterval, Interval
from ._likelihoods import LIKELIHOODS

__all__ = [
    "DEFAULT_SETTINGS",
    "PRESETS",
    "ConvDecoderSpec",
    "ConvLayer",
    "get_preset",
    "make_decoder",
    "make_encoder",
    "n_parameters",
]


class _ReadOnlyDict(dict):
    """A dict that refuses changes, yet deep-copies and pickles (unlike a mappingproxy)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("A preset's defaults are read-only; pass settings to the estimator.")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return type(self), (dict(self),)


# The package's training settings: what a spec's ``defaults`` leaves out
# falls back to these (the MLP estimators' defaults). "mse" is the loss that
# needs nothing of the data; the MNIST preset's published "bce" is its own.
DEFAULT_SETTINGS = _ReadOnlyDict(
    loss="mse",
    optimizer="adam",
    learning_rate=1e-3,
    weight_decay=1e-5,
    latent_optimizer="adam",
    latent_learning_rate=1e-2,
    latent_momentum=0.9,
    latent_l2=0.0,
    max_iter=200,
    batch_size=64,
)
"""Fallback training settings for the keys a :class:`ConvDecoderSpec`'s
``defaults`` leaves out (read-only)."""

# The allowed values of the settings that take a name.
_CHOICES = {
    "loss": tuple(LIKELIHOODS),
    "optimizer": ("adam", "sgd"),
    "latent_optimizer": ("adam", "sgd"),
}

# The allowed ranges of the numeric settings (those of the estimators' parameters).
_RANGES = {
    "learning_rate": Interval(numbers.Real, 0, None, closed="neither"),
    "weight_decay": Interval(numbers.Real, 0, None, closed="left"),
    "latent_learning_rate": Interval(numbers.Real, 0, None, closed="neither"),
    "latent_momentum": Interval(numbers.Real, 0, 1, closed="left"),
    "latent_l2": Interval(numbers.Real, 0, None, closed="left"),
    "max_iter": IntegerInterval(1, None, closed="left"),
    "batch_size": IntegerInterval(1, None, closed="left"),
}


class ConvLayer(NamedTuple):
    """One transposed-convolution block of a decoder.

    Parameters
    ----------
    out_channels : int
        Channels produced by the block.
    kernel : int
        Kernel size (square).
    stride : int
        Stride.
    padding : int
        Padding.
    batchnorm : bool, default=False
        Whether a ``BatchNorm2d`` follows the convolution. Ignored for the
        last block, which is always followed by a sigmoid only.
    """

    out_channels: int
    kernel: int
    stride: int
    padding: int
    batchnorm: bool = False


def _convt_size(size, layer):
    # Output size of ConvTranspose2d (no output_padding, no dilation).
    return (size - 1) * layer.stride - 2 * layer.padding + layer.kernel


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class ConvDecoderSpec:
    """Description of a convolutional decoder and its training settings.

    The decoder maps a latent vector of size ``n_components`` to an image:
    either the vector is reshaped to ``latent_shape`` (a ``(C0, H0, W0)``
    feature map) or it goes through ``Linear(n_components, prod(linear_head))``
    and a ReLU, then is reshaped to ``linear_head``. The ``layers`` are then
    applied in order as ``ConvTranspose2d`` blocks, each hidden block followed
    by an optional ``BatchNorm2d`` and a ReLU, the last by a sigmoid (pixel
    values in (0, 1)).

    Parameters
    ----------
    image_shape : tuple of int
        Output image shape ``(C, H, W)``.
    n_components : int
        Default latent size.
    layers : tuple of ConvLayer or tuple of tuples
        Transposed-convolution blocks ``(out_channels, kernel, stride,
        padding, batchnorm)``, latent side first. Plain tuples are converted
        to :class:`ConvLayer`.
    latent_shape : tuple of int, default=None
        ``(C0, H0, W0)`` the latent vector is reshaped to before the first
        block; ``C0 * H0 * W0`` must equal ``n_components``. Exactly one of
        ``latent_shape`` and ``linear_head`` must be given.
    linear_head : tuple of int, default=None
        ``(C0, H0, W0)`` produced by a linear layer from the latent vector.
    defaults : mapping, default={}
        Published training settings, any subset of the keys of
        :data:`DEFAULT_SETTINGS` (``loss``, ``optimizer``,
        ``learning_rate``, ``weight_decay``, ``latent_optimizer``,
        ``latent_learning_rate``, ``latent_momentum``, ``latent_l2``,
        ``max_iter``, ``batch_size``); the keys left out take the package's
        values there (``loss="mse"`` among them). Stored as given, as a
        read-only copy; :attr:`settings` holds the complete set. Learning
        rates assume a loss summed over pixels and samples, as in the
        reference code.

    Attributes
    ----------
    n_features : int
        ``C * H * W``, the width of a flattened image.
    settings : dict
        Every training setting: ``n_components``, then :data:`DEFAULT_SETTINGS`
        updated with ``defaults``.

    Raises
    ------
    ValueError
        If a layer is malformed, the layers do not produce ``image_shape``
        (the message traces the shape through every layer), the latent shape
        does not match ``n_components``, or ``defaults`` has an unknown key,
        an unknown loss or optimiser name, or a number out of its range
        (e.g. ``max_iter=0``).

    See Also
    --------
    make_decoder : Build the decoder module.
    make_encoder : Build the mirrored encoder module.

    Examples
    --------
    >>> import torch
    >>> from sklearn_autodecoder.presets import ConvDecoderSpec, make_decoder
    >>> spec = ConvDecoderSpec(
    ...     image_shape=(1, 8, 8), n_components=16, latent_shape=(16, 1, 1),
    ...     layers=((8, 4, 1, 0, True), (1, 4, 2, 1)))
    >>> make_decoder(spec)(torch.zeros(2, 16)).shape
    torch.Size([2, 1, 8, 8])
    """

    image_shape: tuple
    n_components: int
    layers: tuple
    latent_shape: tuple = None
    linear_head: tuple = None
    # hash=False: a dict is not hashable, the spec still is.
    defaults: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        # frozen=True forbids plain assignment; normalise through object.__setattr__.
        set_ = object.__setattr__
        set_(self, "image_shape", tuple(int(v) for v in self.image_shape))
        set_(self, "n_components", _check_positive_int(self.n_components, "n_components"))
        set_(self, "layers", tuple(_check_layer(i, layer) for i, layer in enumerate(self.layers)))
        set_(self, "defaults", _check_defaults(self.defaults))
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape}.")
        if not self.layers:
            raise ValueError("layers must hold at least one block.")
        if (self.latent_shape is None) == (self.linear_head is None):
            raise ValueError("Give exactly one of latent_shape and linear_head.")
        start = self.latent_shape if self.linear_head is None else self.linear_head
        start = tuple(int(v) for v in start)
        if len(start) != 3:
            raise ValueError(f"latent_shape/linear_head must be (C0, H0, W0), got {start}.")
        if self.linear_head is None:
            set_(self, "latent_shape", start)
            if math.prod(start) != self.n_components:
                raise ValueError(
                    f"latent_shape {start} holds {math.prod(start)} values but "
                    f"n_components is {self.n_components}."
                )
        else:
            set_(self, "linear_head", start)
        shapes = _shapes(start, self.layers)
        empty = [i for i, (_, h, w) in enumerate(shapes[1:]) if min(h, w) < 1]
        if empty or shapes[-1] != self.image_shape:
            trace = " -> ".join(
                [str(shapes[0])]
                + [f"layer {i}: {shape}" for i, shape in enumerate(shapes[1:])]
            )
            problem = (
                f"Layer {empty[0]} produces a feature map smaller than 1x1"
                if empty
                else f"The layers produce images of shape {shapes[-1]}, not image_shape "
                f"{self.image_shape} (C, H, W)"
            )
            raise ValueError(f"{problem}. Shapes through the layers: {trace}.")

    @property
    def n_features(self):
        return math.prod(self.image_shape)

    @property
    def settings(self):
        return {"n_components": self.n_components, **DEFAULT_SETTINGS, **self.defaults}


def _check_layer(i, layer):
    layer = ConvLayer(*layer)
    minimum = {"out_channels": 1, "kernel": 1, "stride": 1, "padding": 0}
    for name, low in minimum.items():
        value = getattr(layer, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(
                f"layers[{i}].{name} must be an integer >= {low}, got {value!r} in {layer}."
            )
    return layer


def _check_defaults(defaults):
    unknown = sorted(set(defaults) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in defaults; expected some of {list(DEFAULT_SETTINGS)}."
        )
    for name, choices in _CHOICES.items():
        if name in defaults and defaults[name] not in choices:
            raise ValueError(
                f"defaults[{name!r}] must be one of {choices}, got {defaults[name]!r}."
            )
    for name, constraint in _RANGES.items():
        if name not in defaults:
            continue
        value = defaults[name]
        if isinstance(value, (bool, np.bool_)) or not constraint.is_satisfied_by(value):
            raise ValueError(f"defaults[{name!r}] must be {constraint}, got {value!r}.")
    return _ReadOnlyDict(defaults)


def _shapes(start, layers):
    """The feature map's (C, H, W) before the first layer and after each."""
    shapes = [tuple(start)]
    for layer in layers:
        _, h, w = shapes[-1]
        shapes.append((layer.out_channels, _convt_size(h, layer), _convt_size(w, layer)))
    return shapes


PRESETS = MappingProxyType(
    {
        # Linear(20 -> 128x7x7)-ReLU, 7 -> 14 -> 28: 263,873 parameters.
        "mnist": ConvDecoderSpec(
            image_shape=(1, 28, 28),
            n_components=20,
            linear_head=(128, 7, 7),
            layers=(
                ConvLayer(64, 4, 2, 1),
                ConvLayer(1, 4, 2, 1),
            ),
            defaults={
                "loss": "bce",
                "learning_rate": 1e-3,
                "weight_decay": 1e-5,
                "latent_optimizer": "sgd",
                # The code uses 1e-2; the paper's text says 2e-2.
                "latent_learning_rate": 1e-2,
                "latent_momentum": 0.9,
                "max_iter": 200,
                "batch_size": 128,
            },
        ),
        # 256x1x1 -> 4 -> 8 -> 16 -> 32, then a 1x1 conv to RGB: 984,387 parameters.
        "cifar10": ConvDecoderSpec(
            image_shape=(3, 32, 32),
            n_components=256,
            latent_shape=(256, 1, 1),
            layers=(
                ConvLayer(128, 4, 2, 0, True),
                ConvLayer(128, 4, 2, 1, True),
                ConvLayer(64, 4, 2, 1, True),
                ConvLayer(64, 4, 2, 1, True),
                ConvLayer(3, 1, 1, 0),
            ),
            defaults={
                "loss": "mse",
                "learning_rate": 1e-4,
                "weight_decay": 1e-5,
                "latent_optimizer": "sgd",
                "latent_learning_rate": 0.1,
                "latent_momentum": 0.9,
                # Published runs used 100 to 400 epochs.
                "max_iter": 400,
                "batch_size": 128,
            },
        ),
        # "Capacity 16": 64x4x4 -> 8 -> 16 -> 32, then a 1x1 conv to RGB:
        # 106,883 parameters.
        "cifar10_4x4": ConvDecoderSpec(
            image_shape=(3, 32, 32),
            n_components=1024,
            latent_shape=(64, 4, 4),
            layers=(
                ConvLayer(64, 4, 2, 1, True),
                ConvLayer(32, 4, 2, 1, True),
                ConvLayer(16, 4, 2, 1, True),
                ConvLayer(3, 1, 1, 0),
            ),
            defaults={
                "loss": "mse",
                "learning_rate": 1e-4,
                "weight_decay": 1e-5,
                "latent_optimizer": "sgd",
                "latent_learning_rate": 0.1,
                "latent_momentum": 0.9,
                "max_iter": 400,
                "batch_size": 128,
            },
        ),
        # 256x1x1 -> 3 -> 6 -> 12 -> 24 -> 48 -> 96, then a 1x1 conv to RGB:
        # 1,837,507 parameters.
        "stl10": ConvDecoderSpec(
            image_shape=(3, 96, 96),
            n_components=256,
            latent_shape=(256, 1, 1),
            layers=(
                ConvLayer(256, 3, 2, 0, True),
                ConvLayer(128, 4, 2, 1, True),
                ConvLayer(128, 4, 2, 1, True),
                ConvLayer(128, 4, 2, 1, True),
                ConvLayer(64, 4, 2, 1, True),
                ConvLayer(64, 4, 2, 1, True),
                ConvLayer(3, 1, 1, 0),
            ),
            defaults={
                "loss": "mse",
                "learning_rate": 1e-4,
                "weight_decay": 1e-5,
                "latent_optimizer": "sgd",
                "latent_learning_rate": 0.1,
                "latent_momentum": 0.9,
                "max_iter": 400,
                # 96x96 images: a smaller batch keeps memory modest.
                "batch_size": 64,
            },
        ),
    }
)
"""Published architectures by name: ``"mnist"``, ``"cifar10"``,
``"cifar10_4x4"`` and ``"stl10"`` (read-only mapping of
:class:`ConvDecoderSpec`)."""


def get_preset(preset):
    """Return the :class:`ConvDecoderSpec` for a preset name or spec.

    Parameters
    ----------
    preset : str or ConvDecoderSpec
        A key of :data:`PRESETS`, or a spec (returned unchanged).

    Returns
    -------
    spec : ConvDecoderSpec

    Raises
    ------
    ValueError
        If ``preset`` is an unknown name or neither a string nor a spec.
    """
    if isinstance(preset, ConvDecoderSpec):
        return preset
    if isinstance(preset, str):
        try:
            return PRESETS[preset]
        except KeyError:
            pass
    raise ValueError(
        f"Unknown preset {preset!r}; expected a ConvDecoderSpec or one of "
        f"{sorted(PRESETS)}."
    )


def _resolve(preset, n_components):
    """Spec, latent size and the shape of the first feature map."""
    spec = get_preset(preset)
    if n_components is None:
        n_components = spec.n_components
    n_components = _check_positive_int(n_components, "n_components")
    if spec.linear_head is not None:
        return spec, n_components, spec.linear_head
    _, h0, w0 = spec.latent_shape
    if n_components % (h0 * w0):
        raise ValueError(
            f"n_components={n_components} is not divisible by the latent map's "
            f"{h0}x{w0}={h0 * w0} positions (latent_shape={spec.latent_shape})."
        )
    return spec, n_components, (n_components // (h0 * w0), h0, w0)


def make_decoder(preset, n_components=None):
    """Build a convolutional decoder from a preset.

    Parameters
    ----------
    preset : str or ConvDecoderSpec
        A key of :data:`PRESETS` (``"mnist"``, ``"cifar10"``,
        ``"cifar10_4x4"``, ``"stl10"``) or a custom spec.
    n_components : int, default=None
        Latent size; None uses the spec's. Only the first layer changes: the
        linear head's input size, or the first transposed convolution's input
        channels (``n_components // (H0 * W0)`` for a ``latent_shape``
        ``(C0, H0, W0)``).

    Returns
    -------
    decoder : torch.nn.Sequential
        Maps a float tensor of shape ``(n, n_components)`` to images of shape
        ``(n, C, H, W)`` in (0, 1). Weights are drawn from torch's global RNG
        (seed it, or fork it, for reproducible builds).

    Raises
    ------
    ValueError
        If the preset is unknown, or ``n_components`` is not a positive
        integer divisible by ``H0 * W0``.

    See Also
    --------
    make_encoder : The mirrored encoder.

    Examples
    --------
    >>> import torch
    >>> from sklearn_autodecoder.presets import make_decoder, n_parameters
    >>> decoder = make_decoder("mnist")
    >>> n_parameters(decoder)
    263873
    >>> decoder(torch.zeros(2, 20)).shape
    torch.Size([2, 1, 28, 28])
    """
    spec, n_components, start = _resolve(preset, n_components)
    modules = []
    if spec.linear_head is not None:
        modules += [nn.Linear(n_components, math.prod(start)), nn.ReLU()]
    modules.append(nn.Unflatten(1, start))
    in_channels = start[0]
    for i, layer in enumerate(spec.layers):
        modules.append(
            nn.ConvTranspose2d(
                in_channels, layer.out_channels, layer.kernel, layer.stride, layer.padding
            )
        )
        if i == len(spec.layers) - 1:
            modules.append(nn.Sigmoid())
        else:
            if layer.batchnorm:
                modules.append(nn.BatchNorm2d(layer.out_channels))
            modules.append(nn.ReLU())
        in_channels = layer.out_channels
    return nn.Sequential(*modules)


def make_encoder(preset, n_components=None):
    """Build the encoder mirroring a preset's decoder.

    Each transposed convolution of the decoder becomes a ``Conv2d`` with the
    same kernel, stride and padding, taken in reverse order (these exactly
    invert the spatial sizes). A convolution producing a feature map that the
    decoder batch-normalised gets a ``BatchNorm2d``; every hidden convolution
    is followed by a ReLU. The latent is then a ``Linear`` layer on the
    flattened map (linear-head presets) or the last convolution's output,
    flattened, with no activation (``latent_shape`` presets).

    Parameters
    ----------
    preset : str or ConvDecoderSpec
        A key of :data:`PRESETS` or a custom spec.
    n_components : int, default=None
        Latent size; None uses the spec's.

    Returns
    -------
    encoder : torch.nn.Sequential
        Maps images of shape ``(n, C, H, W)`` to latents of shape
        ``(n, n_components)``.

    Raises
    ------
    ValueError
        As :func:`make_decoder`.

    See Also
    --------
    make_decoder : The decoder it mirrors.

    Examples
    --------
    >>> import torch
    >>> from sklearn_autodecoder.presets import make_encoder
    >>> make_encoder("cifar10")(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 256])
    """
    spec, n_components, start = _resolve(preset, n_components)
    linear = spec.linear_head is not None
    # channels[i] is the input of decoder block i, channels[i + 1] its output.
    channels = [start[0]] + [layer.out_channels for layer in spec.layers]
    # Whether the decoder batch-normalised the map entering block i (the
    # latent map and the linear head's output are not normalised).
    normalised = [False] + [layer.batchnorm for layer in spec.layers[:-1]]
    modules = []
    for i in reversed(range(len(spec.layers))):
        layer = spec.layers[i]
        modules.append(
            nn.Conv2d(channels[i + 1], channels[i], layer.kernel, layer.stride, layer.padding)
        )
        if i > 0 or linear:
            if normalised[i]:
                modules.append(nn.BatchNorm2d(channels[i]))
            modules.append(nn.ReLU())
    modules.append(nn.Flatten())
    if linear:
        modules.append(nn.Linear(math.prod(start), n_components))
    return nn.Sequential(*modules)


def n_parameters(module):
    """Count the trainable parameters of a module.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    count : int
        Number of scalar parameters with ``requires_grad=True``.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
