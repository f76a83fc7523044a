"""The public auto-decoders: they only choose the decoder and the defaults."""

from ._base import TRAINING_SETTINGS, BaseAutoDecoder
from ._decoders import MLP_DEFAULTS as _MLP_DEFAULTS
from ._decoders import ConvDecoderMixin, MLPDecoderMixin, nullable
from ._docs import ATTRIBUTES, COMMON_PARAMS, TRAINING_PARAMS, indent


class AutoDecoder(MLPDecoderMixin, BaseAutoDecoder):
    __doc__ = f"""Auto-decoder with a fully connected (MLP) decoder.

    Learns a decoder network and one free latent vector per training sample
    jointly, by gradient descent, with no encoder. :meth:`transform` finds a
    new sample's latent by a second optimisation with the decoder frozen:
    the projection of the sample onto the m-dimensional manifold the decoder
    defines. With ``hidden_layer_sizes=()`` the decoder is linear and spans
    the PCA subspace.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_components : int, default=2
        Size of the latent vectors.
    hidden_layer_sizes : tuple of int, default=(64,)
        Widths of the decoder's hidden layers, latent side first. ``()``
        gives a linear decoder.
    activation : {{"relu", "tanh", "logistic", "identity"}}, default="relu"
        Activation of the hidden layers.
    connectivity : array-like of shape (n_components, n_features), default=None
        Fixed 0/1 mask of a sparse linear decoder: latent ``k`` may act on
        feature ``j`` only where ``connectivity[k, j]`` is 1 (e.g. the known
        regulator-gene graph of
        :func:`~sklearn_autodecoder.datasets.make_regulatory_data`). Needs
        ``hidden_layer_sizes=()``. None gives dense layers.
    loss : {{"mse", "bce"}}, default="mse"
        Reconstruction loss, summed over a sample's observed features. "bce"
        needs X in [0, 1] and gives the decoder a logistic output layer.
{indent(TRAINING_PARAMS.format(**_MLP_DEFAULTS))}
{indent(COMMON_PARAMS)}

    Attributes
    ----------
{indent(ATTRIBUTES)}

    See Also
    --------
    ConvAutoDecoder : Auto-decoder with a convolutional image decoder.
    sklearn.decomposition.PCA : The linear special case, in closed form.

    References
    ----------
    .. [1] V. Schuster and A. Krogh, "A manifold learning perspective on
       representation learning: learning decoder and representations without
       an encoder", Entropy 23(11), 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_autodecoder import AutoDecoder
    >>> X = load_digits().data[:200] / 16
    >>> ad = AutoDecoder(n_components=4, max_iter=5, random_state=0).fit(X)
    >>> ad.transform(X[:3]).shape
    (3, 4)
    """

    _parameter_constraints = {
        **BaseAutoDecoder._parameter_constraints,
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
        latent_optimizer="adam",
        latent_learning_rate=1e-2,
        latent_momentum=0.9,
        latent_l2=0.0,
        max_iter=200,
        batch_size=64,
        inference_max_iter=100,
        inference_learning_rate=0.1,
        tol=1e-4,
        init="zeros",
        encoder_max_iter=20,
        inference_batch_size=256,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        warm_start=False,
        device="auto",
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
        self.latent_optimizer = latent_optimizer
        self.latent_learning_rate = latent_learning_rate
        self.latent_momentum = latent_momentum
        self.latent_l2 = latent_l2
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.inference_max_iter = inference_max_iter
        self.inference_learning_rate = inference_learning_rate
        self.tol = tol
        self.init = init
        self.encoder_max_iter = encoder_max_iter
        self.inference_batch_size = inference_batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state


class ConvAutoDecoder(ConvDecoderMixin, BaseAutoDecoder):
    __doc__ = f"""Auto-decoder with a convolutional image decoder.

    The same method as :class:`AutoDecoder`, with a transposed-convolution
    decoder: one of the published architectures (``preset``) or a custom
    :class:`~sklearn_autodecoder.presets.ConvDecoderSpec`. X stays a flat 2-D
    array, each row an image of shape ``image_shape`` (C, H, W) flattened in
    channel-first (C, H, W) order, with values in [0, 1].

    Training settings left as None take the preset's published values
    (rescaled to the package's sum-over-features loss convention); see
    ``sklearn_autodecoder.presets.PRESETS[name].defaults``.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    preset : {{"mnist", "cifar10", "cifar10_4x4", "stl10"}} or ConvDecoderSpec, default="mnist"
        Decoder architecture and default training settings.
    n_components : int, default=None
        Size of the latent vectors; None takes the preset's.
    loss : {{"mse", "bce"}}, default=None
        Reconstruction loss, summed over a sample's observed features; None
        takes the preset's.
{indent(TRAINING_PARAMS.format(**{name: "None" for name in _MLP_DEFAULTS}))}
{indent(COMMON_PARAMS)}

    Attributes
    ----------
    image_shape_ : tuple of int
        (C, H, W) of the images.
{indent(ATTRIBUTES)}

    See Also
    --------
    AutoDecoder : Auto-decoder with an MLP decoder.
    sklearn_autodecoder.presets.make_decoder : The preset decoders as torch modules.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder import ConvAutoDecoder
    >>> X = np.random.RandomState(0).rand(20, 784)
    >>> cad = ConvAutoDecoder(preset="mnist", max_iter=1, random_state=0).fit(X)
    >>> cad.transform(X[:2]).shape
    (2, 20)
    """

    _parameter_constraints = {
        **nullable(BaseAutoDecoder._parameter_constraints, TRAINING_SETTINGS),
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
        latent_optimizer=None,
        latent_learning_rate=None,
        latent_momentum=None,
        latent_l2=None,
        max_iter=None,
        batch_size=None,
        inference_max_iter=100,
        inference_learning_rate=0.1,
        tol=1e-4,
        init="zeros",
        encoder_max_iter=20,
        inference_batch_size=256,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        warm_start=False,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.preset = preset
        self.n_components = n_components
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.latent_optimizer = latent_optimizer
        self.latent_learning_rate = latent_learning_rate
        self.latent_momentum = latent_momentum
        self.latent_l2 = latent_l2
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.inference_max_iter = inference_max_iter
        self.inference_learning_rate = inference_learning_rate
        self.tol = tol
        self.init = init
        self.encoder_max_iter = encoder_max_iter
        self.inference_batch_size = inference_batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.verbose = verbose
        self.random_state = random_state
