"""Autoencoders: the auto-decoders' baseline, with the same decoders and API.

An autoencoder trains an encoder and a decoder together; its representation
of a sample is the encoder's output, so :meth:`transform` is one forward
pass. Everything else (validation, settings, the training loop, decoding,
scoring, pickling) is the auto-decoders' code: the estimators differ only
in the representation hooks of :class:`._base.BaseRepresentationEstimator`.
"""

from functools import partial

import torch

from ._architectures import ConvDecoderMixin, MLPDecoderMixin, check_module_widths
from ._base import COMMON_SETTINGS, BaseRepresentationEstimator, Representation, make_weight_optimizer, nullable
from ._data import map_rows, output_dtype
from ._inference import frozen
from ._load import decoder_load, encoder_load, n_free_parameters
from .nn import EncoderRepresentation


class BaseAutoEncoder(BaseRepresentationEstimator):
    """Base class for autoencoders; not for direct use.

    The representation is an encoder (the decoder's mirror, from
    ``_build_encoder``), trained with the decoder's optimiser settings.
    """

    _torch_attributes = ("decoder_", "encoder_", "likelihood_")

    def _make_representation(self, decoder, data, settings, warm, generator, n_held_out):
        """The encoder, with the decoder's optimiser settings; it encodes held-out rows too."""
        if warm:
            encoder = self.encoder_.float().to(data.device)
        else:
            encoder = self._build_encoder(data.n_features, settings).to(data.device)
            check_module_widths(encoder, data.n_features, settings["n_components"], "encoder")
        optimizer = partial(
            make_weight_optimizer,
            name=settings["optimizer"],
            lr=settings["learning_rate"],
            weight_decay=settings["weight_decay"],
        )
        return Representation(EncoderRepresentation(encoder), optimizer)

    def _finish_fit(self, module, data, train, valid, generator, prior):
        self.encoder_ = module.encoder.eval()

    def _load_ratios(self, decoder, representation, settings, data):
        m, n_train = settings["n_components"], len(data)
        return {
            "decoder_load_": decoder_load(n_train, self._n_observed(data) / n_train, m, decoder),
            "encoder_load_": encoder_load(n_train, m, n_free_parameters(representation)),
        }

    def _latents_of(self, data, decoder):
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
        Z : ndarray of shape (n_samples, ``n_components_``)
            Latent vectors, float64 for float64 X and float32 otherwise.
        """
        return super().transform(X)


class AutoEncoder(MLPDecoderMixin, BaseAutoEncoder):
    """Autoencoder with an MLP decoder and its mirrored encoder.

    The baseline of :class:`AutoDecoder`: the same decoder (and training
    options), but each sample's latent is computed by an encoder trained
    jointly with it, instead of being a free vector. :meth:`transform` is
    the encoder's forward pass and :meth:`inverse_transform` the decoder.

    X may be an ndarray or ``np.memmap`` of uint8, other integers, float32 or
    float64: it is read in batches of rows, converted batch by batch, and
    never copied whole (other array-likes, such as lists or DataFrames, are
    converted once). A ``scipy.sparse`` matrix or array is sliced by rows
    and densified one batch at a time (formats other than CSR are converted
    to CSR once). NaN marks a missing entry: the loss ignores it in
    :meth:`fit` and :meth:`score`, and the encoder sees it as 0. Results are
    float64 for float64 X and float32 otherwise; float16 X is computed and
    returned as float32.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_components : int, default=2
        Size of the latent vectors.

    hidden_layer_sizes : int or tuple of int, default=(64,)
        Widths of the decoder's hidden layers, latent side first; an int is
        one hidden layer. The encoder uses them in reverse order. ``()``
        gives linear maps.

    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the hidden layers.

    connectivity : array-like of shape (n_components, n_features), default=None
        Fixed 0/1 mask of a sparse linear decoder: latent ``k`` may act on
        feature ``j`` only where ``connectivity[k, j]`` is 1. Needs
        ``hidden_layer_sizes=()``; the encoder stays dense. None gives dense
        layers.

    decoder : torch.nn.Module, default=None
        Your own decoder in place of the MLP: any module mapping latents of
        shape (n, n_components) to samples of shape (n, n_features). fit
        checks its output shape on a dummy batch, then trains a deep copy of
        it (``decoder_``); the module passed is never changed. With
        ``loss="bce"``, end it with an ``nn.Sigmoid`` (the loss then works
        from its logits). ``hidden_layer_sizes`` and ``activation`` then
        shape only an encoder the estimator builds. :meth:`save` stores it
        when its class can be imported by name (import that module before
        :func:`~sklearn_autodecoder.load`). None builds the MLP.

    encoder : torch.nn.Module, default=None
        Your own encoder in place of the MLP mirror of the decoder (the
        autoencoders' representation; the auto-decoders' amortised start of
        ``init="encoder"``): any module mapping samples of shape
        (n, n_features), missing entries set to 0, to latents of shape
        (n, n_components). fit checks its output shape on a dummy batch,
        then trains a deep copy of it (``encoder_``); the module passed is
        never changed. Stored by :meth:`save` as ``decoder`` is. None builds
        the MLP.

    loss : {"mse", "bce", "poisson", "negative_binomial"} or Likelihood, default="mse"
        Reconstruction loss, summed over a sample's observed features. "bce"
        needs X in [0, 1] and gives the decoder a logistic output layer.
        "poisson" and "negative_binomial" (NB2, with a dispersion per feature
        learned with the decoder) are count likelihoods for non-negative
        integer X, e.g. gene-expression counts: the decoder ends with a
        softmax and predicts each feature's proportion, which the sample's
        observed total count (its library size) scales; the loss is the exact
        negative log-likelihood (:meth:`score` is the mean log-likelihood per
        entry), and :meth:`inverse_transform` returns expected counts at
        ``library_size``. See the user guide's section on counts. A
        likelihood object (e.g. :class:`~sklearn_autodecoder.BernoulliLikelihood`)
        may be passed instead of its name; fit trains a copy of it
        (``likelihood_``).

    optimizer : {"adam", "sgd"}, default="adam"
        Optimiser of the encoder and decoder weights ("sgd" uses momentum
        0.9).

    learning_rate : float, default=1e-3
        Learning rate of the encoder and decoder weights.

    weight_decay : float, default=1e-5
        L2 penalty on the encoder and decoder weights (coupled, as in
        ``torch.optim.Adam``).

    max_iter : int, default=200
        Most training epochs (passes over the data); training stops sooner
        when its loss has converged (see ``tol``).

    batch_size : int, default=64
        Samples per training batch.

    tol : float, default=1e-4
        Convergence threshold of training: the relative improvement of the
        epoch's loss over the best one so far that resets the patience
        (``n_iter_no_change``); training stops when the patience runs out.
        The loss is the validation loss with ``early_stopping``, else the
        training loss (then a ``ConvergenceWarning`` says when ``max_iter``
        ends training first).

    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the samples and stop when their
        reconstruction loss (through the encoder) has not improved (see
        ``tol``) for ``n_iter_no_change`` epochs. The best encoder and decoder
        are restored; a fit stopped this way does not warn. "auto" turns it
        on for 2 to 10,000 training samples, where an MLP overfits soonest.

    validation_fraction : float, default=0.1
        Fraction of the samples held out when ``early_stopping`` is True or a
        callback monitors a validation quantity.

    n_iter_no_change : int, default=10
        Patience of the convergence test (see ``tol``), in epochs.

    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (e.g. ``LRScheduler``) run during training
        after the built-in ones; :class:`~sklearn_autodecoder.Checkpoint`
        makes an interrupted fit resumable. A callback that monitors a
        validation quantity (``monitor="valid_loss"``, as skorch's
        ``EarlyStopping`` does by default) gets the held-out samples of
        ``validation_fraction``.

    warm_start : bool, default=False
        Continue from the fitted encoder and decoder when :meth:`fit` is
        called again.

    device : str or torch.device, default="auto"
        Torch device for training and inference. "auto" picks CUDA, then MPS,
        then the CPU; the choice is stored in ``device_``.

    precision : {"float32", "bfloat16", "float16"}, default="float32"
        Precision of the networks' forward passes in fit and transform
        (``torch.autocast``): only matrix products and convolutions run in the
        lower precision, while parameters, optimiser states and losses stay
        float32. "bfloat16" runs on CPUs and recent GPUs; "float16" needs CUDA
        and adds a gradient scaler.

    compile : bool, default=False
        Train through ``torch.compile`` of the networks (the fitted modules
        stay plain, picklable ones). Where compiling fails (no C++ compiler,
        an unsupported operation) training warns once and runs eagerly.

    n_jobs : int, default=None
        CPU threads of torch (and of the BLAS libraries) during the
        estimator's own calls; the previous settings are restored after
        each call. None: as many as the model's batches pay for and the
        machine has free (small models use one thread; inside joblib
        workers, what the worker was given). A positive number: exactly
        that many; negative: counted from all the cores (-1: all). Set a
        number for bit-identical reruns whatever the machine's load.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar.

    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation of encoder and decoder, the held-out split
        and the shuffling, through local generators (torch's global RNG is
        left as it was). Pass an int for reproducible results.

    Attributes
    ----------
    decoder_ : torch.nn.Module
        The fitted decoder, on ``device_``, in eval mode. It maps latents of
        shape (n, ``n_components_``) to samples of shape (n, ``n_features_in_``).

    encoder_ : torch.nn.Module
        The fitted encoder, on ``device_``, in eval mode. It maps samples of
        shape (n, ``n_features_in_``) to latents of shape (n, ``n_components_``).

    n_components_ : int
        Size of the latent vectors in use.

    loss_ : str
        The loss in use (the likelihood's name).

    likelihood_ : Likelihood
        The fitted likelihood object of ``loss`` (a copy of a likelihood
        passed as ``loss``), with its trained parameters if it has any.

    settings_ : dict
        The training settings in use (``n_components``, ``loss`` and the
        optimisation settings), with the preset's values for those an image
        estimator left as None.

    decoder_load_ : float
        The load the decoder would have with free latents, N*n / (W + N*m)
        (see :func:`~sklearn_autodecoder.decoder_load`), for comparison with
        the auto-decoders; an autoencoder does not warn about it.

    encoder_load_ : float
        N*m / W_enc, the load of the encoder regarded as fitting fixed
        targets (see :func:`~sklearn_autodecoder.encoder_load`).

    device_ : torch.device
        Device the model lives and runs on.

    n_iter_ : int
        Number of epochs run, summed over the fits a ``warm_start``
        continues.

    loss_curve_ : list of float
        Mean training loss per sample, per epoch, over the fits a
        ``warm_start`` continues.

    history_ : skorch.history.History
        skorch's training history (losses, durations, validation loss) of
        the last fit.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    AutoDecoder : The same decoder with free latents and no encoder.
    ConvAutoEncoder : Autoencoder with a convolutional decoder.

    References
    ----------
    .. [1] G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality
       of data with neural networks", Science 313(5786), 504-507, 2006.

    .. [2] V. Schuster and A. Krogh, "A manifold learning perspective on
       representation learning: learning decoder and representations without
       an encoder", Entropy 23(11), 1403, 2021.

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
        decoder=None,
        encoder=None,
        loss="mse",
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-5,
        max_iter=200,
        batch_size=64,
        tol=1e-4,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        warm_start=False,
        device="auto",
        precision="float32",
        compile=False,
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.connectivity = connectivity
        self.decoder = decoder
        self.encoder = encoder
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
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state


class ConvAutoEncoder(ConvDecoderMixin, BaseAutoEncoder):
    """Autoencoder with a convolutional decoder and its mirrored encoder.

    The baseline of :class:`ConvAutoDecoder`: the same preset decoder and
    training settings, with the encoder of
    :func:`~sklearn_autodecoder.presets.make_encoder` (each transposed
    convolution mirrored by a convolution). Training settings left as None
    take the preset's published values (rescaled to the package's
    sum-over-features loss convention; see
    ``sklearn_autodecoder.presets.PRESETS[name].defaults``); the values in
    use are stored in ``settings_``.

    X stays a flat 2-D array: each row is an image of the preset's shape
    (C, H, W), flattened in channel-first order. It may be an ndarray or
    ``np.memmap`` of uint8, other integers, float32 or float64: it is read in
    batches of rows, converted batch by batch, and never copied whole (other
    array-likes, such as lists or DataFrames, are converted once). uint8 X
    holds 8-bit pixels, used as x / 255; other dtypes are used as they are.
    NaN marks a missing entry: the loss ignores it in :meth:`fit` and
    :meth:`score`, and the encoder sees it as 0. Results are float64 for
    float64 X and float32 otherwise; float16 X is computed and returned as
    float32.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    preset : {"mnist", "cifar10", "cifar10_4x4", "stl10"} or ConvDecoderSpec, default="mnist"
        Decoder architecture (the encoder mirrors it) and default training
        settings: a published architecture by name, or a custom
        :class:`~sklearn_autodecoder.presets.ConvDecoderSpec`.

    n_components : int, default=None
        Size of the latent vectors. None takes the preset's value (see
        ``settings_``).

    loss : {"mse", "bce"} or Likelihood, default=None
        Reconstruction loss, summed over a sample's observed features. "bce"
        needs pixel values in [0, 1]; the decoder ends in a sigmoid whatever
        the loss. A likelihood object may be passed instead of its name; fit
        trains a copy of it (``likelihood_``). None takes the preset's value
        (see ``settings_``).

    optimizer : {"adam", "sgd"}, default=None
        Optimiser of the encoder and decoder weights ("sgd" uses momentum
        0.9). None takes the preset's value (see ``settings_``).

    learning_rate : float, default=None
        Learning rate of the encoder and decoder weights. None takes the
        preset's value (see ``settings_``).

    weight_decay : float, default=None
        L2 penalty on the encoder and decoder weights (coupled, as in
        ``torch.optim.Adam``). None takes the preset's value (see
        ``settings_``).

    max_iter : int, default=None
        Most training epochs (passes over the data); training stops sooner
        when its loss has converged (see ``tol``). None takes the preset's value (see
        ``settings_``).

    batch_size : int, default=None
        Samples per training batch. None takes the preset's value (see
        ``settings_``).

    tol : float, default=1e-4
        Convergence threshold of training: the relative improvement of the
        epoch's loss over the best one so far that resets the patience
        (``n_iter_no_change``); training stops when the patience runs out.
        The loss is the validation loss with ``early_stopping``, else the
        training loss (then a ``ConvergenceWarning`` says when ``max_iter``
        ends training first).

    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the samples and stop when their
        reconstruction loss (through the encoder) has not improved (see
        ``tol``) for ``n_iter_no_change`` epochs. The best encoder and decoder
        are restored; a fit stopped this way does not warn. "auto" keeps it
        off for the convolutional presets (their published recipes).

    validation_fraction : float, default=0.1
        Fraction of the samples held out when ``early_stopping`` is True or a
        callback monitors a validation quantity.

    n_iter_no_change : int, default=10
        Patience of the convergence test (see ``tol``), in epochs.

    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (e.g. ``LRScheduler``) run during training
        after the built-in ones; :class:`~sklearn_autodecoder.Checkpoint`
        makes an interrupted fit resumable. A callback that monitors a
        validation quantity (``monitor="valid_loss"``, as skorch's
        ``EarlyStopping`` does by default) gets the held-out samples of
        ``validation_fraction``.

    warm_start : bool, default=False
        Continue from the fitted encoder and decoder when :meth:`fit` is
        called again.

    device : str or torch.device, default="auto"
        Torch device for training and inference. "auto" picks CUDA, then MPS,
        then the CPU; the choice is stored in ``device_``.

    precision : {"float32", "bfloat16", "float16"}, default="float32"
        Precision of the networks' forward passes in fit and transform
        (``torch.autocast``): only matrix products and convolutions run in the
        lower precision, while parameters, optimiser states and losses stay
        float32. "bfloat16" runs on CPUs and recent GPUs; "float16" needs CUDA
        and adds a gradient scaler.

    compile : bool, default=False
        Train through ``torch.compile`` of the networks (the fitted modules
        stay plain, picklable ones). Where compiling fails (no C++ compiler,
        an unsupported operation) training warns once and runs eagerly.

    n_jobs : int, default=None
        CPU threads of torch (and of the BLAS libraries) during the
        estimator's own calls; the previous settings are restored after
        each call. None: as many as the model's batches pay for and the
        machine has free (small models use one thread; inside joblib
        workers, what the worker was given). A positive number: exactly
        that many; negative: counted from all the cores (-1: all). Set a
        number for bit-identical reruns whatever the machine's load.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar.

    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation of encoder and decoder, the held-out split
        and the shuffling, through local generators (torch's global RNG is
        left as it was). Pass an int for reproducible results.

    Attributes
    ----------
    decoder_ : torch.nn.Module
        The fitted decoder, on ``device_``, in eval mode. It maps latents of
        shape (n, ``n_components_``) to samples of shape (n, ``n_features_in_``).

    encoder_ : torch.nn.Module
        The fitted encoder, on ``device_``, in eval mode. It maps samples of
        shape (n, ``n_features_in_``) to latents of shape (n, ``n_components_``).

    n_components_ : int
        Size of the latent vectors in use.

    image_shape_ : tuple of int
        (C, H, W) of the images.

    loss_ : str
        The loss in use (the likelihood's name).

    likelihood_ : Likelihood
        The fitted likelihood object of ``loss`` (a copy of a likelihood
        passed as ``loss``), with its trained parameters if it has any.

    settings_ : dict
        The training settings in use (``n_components``, ``loss`` and the
        optimisation settings), with the preset's values for those an image
        estimator left as None.

    decoder_load_ : float
        The load the decoder would have with free latents, N*n / (W + N*m)
        (see :func:`~sklearn_autodecoder.decoder_load`), for comparison with
        the auto-decoders; an autoencoder does not warn about it.

    encoder_load_ : float
        N*m / W_enc, the load of the encoder regarded as fitting fixed
        targets (see :func:`~sklearn_autodecoder.encoder_load`).

    device_ : torch.device
        Device the model lives and runs on.

    n_iter_ : int
        Number of epochs run, summed over the fits a ``warm_start``
        continues.

    loss_curve_ : list of float
        Mean training loss per sample, per epoch, over the fits a
        ``warm_start`` continues.

    history_ : skorch.history.History
        skorch's training history (losses, durations, validation loss) of
        the last fit.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    ConvAutoDecoder : The same decoder with free latents and no encoder.
    AutoEncoder : Autoencoder with an MLP decoder.
    sklearn_autodecoder.presets.make_encoder : The mirrored encoders as torch modules.

    References
    ----------
    .. [1] G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality
       of data with neural networks", Science 313(5786), 504-507, 2006.

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
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        warm_start=False,
        device="auto",
        precision="float32",
        compile=False,
        n_jobs=None,
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
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state
