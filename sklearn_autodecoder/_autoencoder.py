"""Autoencoders: the auto-decoders' baseline, with the same decoders and API.

An autoencoder trains an encoder and a decoder together; its representation
of a sample is the encoder's output, so :meth:`transform` is one forward
pass. Everything else (validation, settings, the training loop, decoding,
scoring, pickling) is the auto-decoders' code: the estimators differ only
in the representation hooks of :class:`._base.BaseRepresentationEstimator`.
"""

from functools import partial

import torch

from ._architectures import _SPEC_FALLBACK as MLP_DEFAULTS
from ._architectures import ConvDecoderMixin, MLPDecoderMixin
from ._base import COMMON_SETTINGS, BaseRepresentationEstimator, make_weight_optimizer, nullable
from ._data import map_rows, output_dtype
from ._inference import frozen
from ._docs import ATTRIBUTES, COMMON_PARAMS, TRAINING_PARAMS, indent, select
from ._load import decoder_load, encoder_load, n_free_parameters
from .nn import EncoderRepresentation

_TRAINING_DOCS = ("optimizer", "learning_rate", "weight_decay", "max_iter", "batch_size")
_COMMON_DOCS = ("n_iter_no_change", "callbacks", "device", "verbose")
_FIT_DOCS = """\
tol : float, default=1e-4
    With ``early_stopping``, the relative improvement of the validation
    loss that resets the patience.
early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the samples and stop when their
    reconstruction loss (through the encoder) has not improved for
    ``n_iter_no_change`` epochs; the best weights are restored.
validation_fraction : float, default=0.1
    Fraction of the samples held out when ``early_stopping`` is True."""
_STATE_DOCS = """\
warm_start : bool, default=False
    Continue from the fitted encoder and decoder when ``fit`` is called
    again.
random_state : int, RandomState instance or None, default=None
    Seeds the initialisation of encoder and decoder and the shuffling,
    through local generators (torch's global RNG is left as it was). Pass
    an int for reproducible results."""
_ATTRIBUTES = """\
encoder_ : torch.nn.Module
    The fitted encoder, on ``device_``, in eval mode. It maps samples of
    shape (n, n_features_in_) to latents of shape (n, n_components_).
encoder_load_ : float
    N*m / W_enc, the load of the encoder regarded as fitting fixed targets
    (see :func:`~sklearn_autodecoder.encoder_load`). ``decoder_load_`` is
    the load the decoder would have with free latents, for comparison with
    :class:`AutoDecoder`; an autoencoder does not warn about it."""


def _docs(training_defaults):
    """Parameter and attribute sections shared by the two autoencoders."""
    training = select(TRAINING_PARAMS.format(**training_defaults), _TRAINING_DOCS)
    common = select(COMMON_PARAMS, _COMMON_DOCS)
    names = [line.split(" : ")[0] for line in ATTRIBUTES.splitlines() if line and not line[0].isspace()]
    attributes = select(ATTRIBUTES, [name for name in names if name != "embedding_"])
    return dict(
        params=indent(f"{training}\n{_FIT_DOCS}\n{common}\n{_STATE_DOCS}"),
        attributes=indent(f"{_ATTRIBUTES}\n{attributes}"),
    )


class BaseAutoEncoder(BaseRepresentationEstimator):
    """Base class for autoencoders; not for direct use.

    The representation is an encoder (the decoder's mirror, from
    ``_build_encoder``), trained with the decoder's optimiser settings.
    """

    _torch_attributes = ("decoder_", "encoder_")

    def _make_representation(self, decoder, data, settings, warm, generator, n_held_out):
        """The encoder, with the decoder's optimiser settings; it encodes held-out rows too."""
        if warm:
            encoder = self.encoder_.float().to(data.device)
        else:
            encoder = self._build_encoder(data.n_features, settings).to(data.device)
        optimizer = partial(
            make_weight_optimizer,
            name=settings["optimizer"],
            lr=settings["learning_rate"],
            weight_decay=settings["weight_decay"],
        )
        return EncoderRepresentation(encoder), optimizer, None

    def _store_representation(self, module, data, train, valid, generator):
        self.encoder_ = module.encoder.eval()

    def _loads(self, decoder, representation, settings, data):
        m, n_train = settings["n_components"], len(data)
        return {
            "decoder_load_": decoder_load(n_train, self._n_observed(data) / n_train, m, decoder),
            "encoder_load_": encoder_load(n_train, m, n_free_parameters(representation)),
        }

    def _encode(self, data, decoder):
        """The encoder's output, batch by batch (missing entries reach it as zeros)."""
        encoder = self._module_for(self.encoder_, data.dtype)
        with torch.no_grad(), frozen(encoder):
            return map_rows(
                data,
                lambda x, _: encoder(x).to(x.dtype),
                width=self.n_components_,
                out_dtype=output_dtype(data.X),
                batch_size=self._transform_batch_size(),
            )

    def transform(self, X):
        """Encode each sample: one forward pass of the encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode. NaN entries are fed to the encoder as 0.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
            Latent vectors, float64 for float64 X and float32 otherwise.
        """
        return super().transform(X)


_AE_DOCS = _docs(MLP_DEFAULTS)


class AutoEncoder(MLPDecoderMixin, BaseAutoEncoder):
    __doc__ = f"""Autoencoder with an MLP decoder and its mirrored encoder.

    The baseline of :class:`AutoDecoder`: the same decoder (and training
    options), but each sample's latent is computed by an encoder trained
    jointly with it, instead of being a free vector. :meth:`transform` is
    the encoder's forward pass and :meth:`inverse_transform` the decoder.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_components : int, default=2
        Size of the latent vectors.
    hidden_layer_sizes : tuple of int, default=(64,)
        Widths of the decoder's hidden layers, latent side first; the
        encoder uses them in reverse order. ``()`` gives linear maps.
    activation : {{"relu", "tanh", "logistic", "identity"}}, default="relu"
        Activation of the hidden layers.
    connectivity : array-like of shape (n_components, n_features), default=None
        Fixed 0/1 mask of a sparse linear decoder (needs
        ``hidden_layer_sizes=()``); the encoder stays dense.
    loss : {{"mse", "bce"}}, default="mse"
        Reconstruction loss, summed over a sample's observed features. "bce"
        needs X in [0, 1] and gives the decoder a logistic output layer.
{_AE_DOCS["params"]}

    Attributes
    ----------
{_AE_DOCS["attributes"]}

    See Also
    --------
    AutoDecoder : The same decoder with free latents and no encoder.
    ConvAutoEncoder : Autoencoder with a convolutional decoder.

    References
    ----------
    .. [1] V. Schuster and A. Krogh, "A manifold learning perspective on
       representation learning: learning decoder and representations without
       an encoder", Entropy 23(11), 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_autodecoder import AutoEncoder
    >>> X = load_digits().data[:200] / 16
    >>> ae = AutoEncoder(n_components=4, max_iter=5, random_state=0).fit(X)
    >>> ae.transform(X[:3]).shape
    (3, 4)
    """

    _parameter_constraints = {
        **BaseAutoEncoder._parameter_constraints,
        **MLPDecoderMixin._decoder_constraints,
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(64,),
        activation="relu",
        connectivity=None,
        loss="mse",
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-5,
        max_iter=200,
        batch_size=64,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        warm_start=False,
        device="auto",
        precision="float32",
        compile=False,
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.connectivity = connectivity
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.precision = precision
        self.compile = compile
        self.verbose = verbose
        self.random_state = random_state


_CONV_AE_DOCS = _docs({name: "None" for name in MLP_DEFAULTS})


class ConvAutoEncoder(ConvDecoderMixin, BaseAutoEncoder):
    __doc__ = f"""Autoencoder with a convolutional decoder and its mirrored encoder.

    The baseline of :class:`ConvAutoDecoder`: the same preset decoder and
    training settings, with the encoder of
    :func:`~sklearn_autodecoder.presets.make_encoder` (each transposed
    convolution mirrored by a convolution). X stays a flat 2-D array, each
    row an image of shape ``image_shape`` (C, H, W) flattened channel-first,
    with values in [0, 1].

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    preset : {{"mnist", "cifar10", "cifar10_4x4", "stl10"}} or ConvDecoderSpec, default="mnist"
        Decoder architecture (the encoder mirrors it) and default training
        settings.
    n_components : int, default=None
        Size of the latent vectors; None takes the preset's.
    loss : {{"mse", "bce"}}, default=None
        Reconstruction loss, summed over a sample's observed features; None
        takes the preset's.
{_CONV_AE_DOCS["params"]}

    Attributes
    ----------
    image_shape_ : tuple of int
        (C, H, W) of the images.
{_CONV_AE_DOCS["attributes"]}

    See Also
    --------
    ConvAutoDecoder : The same decoder with free latents and no encoder.
    sklearn_autodecoder.presets.make_encoder : The mirrored encoders as torch modules.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder import ConvAutoEncoder
    >>> X = np.random.RandomState(0).rand(20, 784)
    >>> cae = ConvAutoEncoder(preset="mnist", max_iter=1, random_state=0).fit(X)
    >>> cae.transform(X[:2]).shape
    (2, 20)
    """

    _parameter_constraints = {
        **nullable(BaseAutoEncoder._parameter_constraints, COMMON_SETTINGS),
        **ConvDecoderMixin._decoder_constraints,
    }

    def __init__(
        self,
        preset="mnist",
        *,
        n_components=None,
        loss=None,
        optimizer=None,
        learning_rate=None,
        weight_decay=None,
        max_iter=None,
        batch_size=None,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        warm_start=False,
        device="auto",
        precision="float32",
        compile=False,
        verbose=0,
        random_state=None,
    ):
        self.preset = preset
        self.n_components = n_components
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.precision = precision
        self.compile = compile
        self.verbose = verbose
        self.random_state = random_state
