"""The auto-decoder for images: :class:`ConvAutoDecoder`.

The latent-table family of :class:`._autodecoder.BaseAutoDecoder` with a
convolutional decoder from a preset or spec (:class:`._architectures.ConvDecoderMixin`);
every setting left as None takes the preset's value.
"""

from ._architectures import ConvDecoderMixin
from ._autodecoder import TRAINING_SETTINGS, BaseAutoDecoder
from ._base import nullable


class ConvAutoDecoder(ConvDecoderMixin, BaseAutoDecoder):
    """Auto-decoder with a convolutional image decoder.

    The same method as :class:`AutoDecoder`, with a transposed-convolution
    decoder: one of the published architectures (``preset``) or a custom
    :class:`~sklearn_autodecoder.presets.ConvDecoderSpec`. Training settings
    left as None take the preset's published values (rescaled to the
    package's sum-over-features loss convention; see
    ``sklearn_autodecoder.presets.PRESETS[name].defaults``); the values in
    use are stored in ``settings_``.

    X stays a flat 2-D array: each row is an image of the preset's shape
    (C, H, W), flattened in channel-first order. It may be an ndarray or
    ``np.memmap`` of uint8, other integers, float32 or float64: it is read in
    batches of rows, converted batch by batch, and never copied whole (other
    array-likes, such as lists or DataFrames, are converted once). uint8 X
    holds 8-bit pixels, used as x / 255; other dtypes are used as they are.
    NaN marks a missing entry, which the loss ignores in :meth:`fit`,
    :meth:`transform` and :meth:`score`. Results are float64 for float64 X
    and float32 otherwise; float16 X is computed and returned as float32.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    preset : {"mnist", "cifar10", "cifar10_4x4", "stl10"} or ConvDecoderSpec, default="mnist"
        Decoder architecture and default training settings: a published
        architecture by name, or a custom
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
        Optimiser of the decoder weights ("sgd" uses momentum 0.9). None takes
        the preset's value (see ``settings_``).

    learning_rate : float, default=None
        Learning rate of the decoder weights. None takes the preset's value
        (see ``settings_``).

    weight_decay : float, default=None
        L2 penalty on the decoder weights (coupled, as in
        ``torch.optim.Adam``). None takes the preset's value (see
        ``settings_``).

    latent_optimizer : {"sgd", "adam"}, default=None
        Optimiser of the training latents. Both update only the rows of the
        current batch, momentum included ("adam" is
        ``torch.optim.SparseAdam``). None takes the preset's value (see
        ``settings_``).

    latent_learning_rate : float, default=None
        Learning rate of the training latents. Losses are summed over features
        and samples, so this rate does not depend on the batch size. None
        takes the preset's value (see ``settings_``).

    latent_momentum : float, default=None
        Momentum of ``latent_optimizer="sgd"``. None takes the preset's value
        (see ``settings_``).

    latent_l2 : float, default=None
        Weight of an L2 (Gaussian) prior on the latents, in training and in
        inference. None takes the preset's value (see ``settings_``).

    max_iter : int, default=None
        Most training epochs (passes over the data); training stops sooner
        when its loss has converged (see ``tol``). None takes the preset's value (see
        ``settings_``).

    batch_size : int, default=None
        Samples per training batch. None takes the preset's value (see
        ``settings_``).

    inference_method : {"lbfgs", "lm", "adam"}, default="lbfgs"
        Optimiser of each sample's latent in inference (:meth:`transform`,
        :meth:`score` and every method that infers latents). "lbfgs": a
        quasi-Newton method per sample with a line search, one decoder pass
        per step; fast on every decoder. "lm": Levenberg-Marquardt, with the
        Jacobian by forward-mode AD (about ``n_components`` decoder passes
        per step); a few steps reach the exact projection on linear and
        smooth decoders. "adam": Adam with step cuts; slower, but on some
        small ReLU decoders it ends in slightly better local minima.

    inference_max_iter : int, default=100
        Most iterations per sample in inference.

    inference_learning_rate : float, default=1.0
        Length of inference's first step ("lbfgs": the gradient step's
        largest coordinate; "adam": the step size; "lm" does not use it),
        in units of the training latents' root mean square
        (``latent_scale_``), so that it does not depend on the latents'
        scale.

    inference_tol : float, default=2e-4
        Relative tolerance of inference: a sample stops when the loss gain
        that its quadratic model predicts for the next step ("lbfgs", "lm")
        falls below ``inference_tol`` times its loss; with "adam", a step
        that gains less counts as no progress, and a sample stops at its
        fourth step cut (each after 3 such steps).

    tol : float, default=1e-4
        Convergence threshold of training: the relative improvement of the
        epoch's loss over the best one so far that resets the patience
        (``n_iter_no_change``); training stops when the patience runs out.
        The loss is the validation loss with ``early_stopping``, else the
        training loss (then a ``ConvergenceWarning`` says when ``max_iter``
        ends training first).

    init : {"zeros", "mean", "nearest", "encoder"}, default="mean"
        Starting latent of inference, deterministic and computed for each
        sample from that sample alone: zeros; the mean training latent;
        "nearest", the training latent whose decoding has the lowest loss on
        the sample's observed entries (among at most 4,096 evenly spaced
        training rows); or "encoder", the output of an
        amortised encoder (``encoder_``) trained at the end of :meth:`fit` to
        map the training samples (clean and randomly masked) to their
        latents. "encoder" needs the fewest inference steps (see
        ``benchmarks/bench_inference.py``). "mean", the default here, with
        ``inference_learning_rate=1.0`` (a first step of one latent RMS):
        10.8-15.4x fewer decoder passes than Adam run to convergence at
        +0.04% to +0.18% loss on MNIST, upscaled digits, synthetic shapes
        and inverted MNIST (``--data`` of that benchmark); from zeros with a
        first step of 0.1, 8.3-15.3x at up to +0.20%.

    encoder_max_iter : int, default=20
        Epochs of the amortised encoder's training (``init="encoder"`` only).

    inference_batch_size : int, default=256
        Samples optimised together in inference and decoded together in
        :meth:`inverse_transform`; bounds device memory.

    latent_prior : {"none", "gmm"}, default="none"
        Prior on the latents. "none" keeps the L2 penalty ``latent_l2``
        alone. "gmm" learns a Gaussian mixture on the latents jointly with
        the decoder (the Deep Generative Decoder): training adds each
        latent's negative log-density under the mixture and hyper-priors on
        the mixture's own parameters (a soft ball on the means, a
        Dirichlet on the weights, a Gaussian on the log-variances); it makes
        the model generative (:meth:`sample`) and a clustering
        (:meth:`predict`). When the training latents start from PCA (MLP
        decoders), the mixture starts as the Gaussian mixture fitted by EM
        to those whitened PCA scores, with its hyper-priors centred on that
        fit and the latents' scale held at the start's, and training
        refines it (see :mod:`sklearn_autodecoder._priors`); otherwise its
        means start uniformly in a ball (the DGD code's start). With
        ``init`` "zeros", "mean" or "nearest", inference starts from the component
        mean or training latent (the rows of "nearest") with the lowest
        objective. See ``benchmarks/bench_prior.py``.
    n_prior_components : int, default=10
        Number of mixture components of ``latent_prior="gmm"``.
    prior_covariance_type : {"full", "diag", "spherical"}, default="full"
        Covariance of each mixture component: a full matrix, one variance
        per latent dimension, or one per component. "full" clusters far
        better (MNIST test ARI 0.62 against 0.31 for "diag", seed 0; see
        ``benchmarks/bench_prior.py``).
    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the samples, infer their latents
        with the decoder frozen after each epoch (a few steps from the
        previous epoch's values), and stop when the validation loss has not
        improved (see ``tol``) for ``n_iter_no_change`` epochs. The start
        counts as epoch 0 (the epoch with the lowest loss on half the
        held-out rows replaces it only if a paired t-test on the other half,
        at least 5 rows, finds it better at the 5% level). The
        kept decoder and training latents are restored, and the held-out
        samples' rows of ``embedding_`` are inferred against that decoder. A
        fit stopped this way does not warn. "auto" keeps it off for the
        convolutional presets (their published fixed-epoch recipes, on image
        sets where a validation pass by inference costs as much as a
        training epoch).

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
        Continue from the fitted decoder when :meth:`fit` is called again; the
        new samples' latents start from their projection on it.

    device : str or torch.device, default="auto"
        Torch device for training and inference. "auto" picks CUDA, then MPS,
        then the CPU; the choice is stored in ``device_``.

    precision : {"float32", "bfloat16", "float16"}, default="float32"
        Precision of the networks' forward passes in fit and
        ``inverse_transform`` (``torch.autocast``): only matrix products and
        convolutions run in the lower precision, while parameters, optimiser
        states and losses stay float32. The latent inference of ``transform``
        and ``score`` always runs in float32: its convergence tests compare
        losses at a resolution that bfloat16 products lack. "bfloat16" runs
        on CPUs and recent GPUs; "float16" needs CUDA and adds a gradient
        scaler.

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
        0 is silent; 1 prints a line per training epoch, and the progress
        of inference calls that run longer than a few seconds; 2 adds a
        progress bar to training.

    random_state : int, RandomState instance or None, default=None
        Seeds the decoder's initialisation, the training latents, the
        held-out split, the shuffling and the encoder of ``init="encoder"``,
        through local generators (torch's global RNG is left as it was). Pass
        an int for reproducible results.

    Attributes
    ----------
    decoder_ : torch.nn.Module
        The fitted decoder, on ``device_``, in eval mode. It maps latents of
        shape (n, ``n_components_``) to samples of shape (n, ``n_features_in_``).

    embedding_ : ndarray of shape (n_samples, ``n_components_``)
        Latent vectors of the training samples, learnt jointly with the
        decoder; float64 for float64 X and float32 otherwise. Under
        ``early_stopping`` the held-out samples' rows are inferred against the
        final decoder, as :meth:`transform` would.

    encoder_ : torch.nn.Module
        The amortised encoder of ``init="encoder"``, on ``device_``, in eval
        mode. It maps samples of shape (n, ``n_features_in_``) to starting latents
        of shape (n, ``n_components_``). Set only when ``init="encoder"``.

    encoder_loss_curve_ : list of float
        Mean objective per sample of the amortised encoder's training, per
        epoch (regression on the fitted latents plus the decoder's
        reconstruction loss). Set only when ``init="encoder"``.

    n_components_ : int
        Size of the latent vectors in use.

    image_shape_ : tuple of int
        (C, H, W) of the images.

    loss_ : str
        The loss in use (the likelihood's name).

    likelihood_ : Likelihood
        The fitted likelihood object of ``loss`` (a copy of a likelihood
        passed as ``loss``), with its trained parameters if it has any.

    noise_variance_ : float
        Variance of the Gaussian noise model of squared error (in
        :meth:`score_samples`, and the weight of a mixture prior in
        inference): the training rows' residual sum of squares over their
        observed entries less ``n_components`` per sample (probabilistic
        PCA's estimate). Only with ``loss="mse"``.
    prior_ : torch.nn.Module
        The fitted Gaussian mixture prior (``latent_prior="gmm"`` only).
    prior_weights_ : ndarray of shape (n_prior_components,)
        Mixture weights (``latent_prior="gmm"`` only).
    prior_means_ : ndarray of shape (n_prior_components, ``n_components_``)
        Component means (``latent_prior="gmm"`` only).
    prior_covariances_ : ndarray
        Component covariances in the shapes of
        :class:`sklearn.mixture.GaussianMixture`: (n_prior_components,
        ``n_components_``) for "diag", (n_prior_components,) for "spherical",
        (n_prior_components, ``n_components_``, ``n_components_``) for "full"
        (``latent_prior="gmm"`` only).
    settings_ : dict
        The training settings in use (``n_components``, ``loss`` and the
        optimisation settings), with the preset's values for those an image
        estimator left as None.

    latent_scale_ : float
        Root mean square of the trained latents; inference step sizes
        (``inference_learning_rate``) are in its units.

    decoder_load_ : float
        Observed training values per free parameter of decoder and latents,
        N*n / (W + N*m) (see :func:`~sklearn_autodecoder.decoder_load`); fit
        warns with a :class:`~sklearn_autodecoder.LowLoadWarning` when it is
        below 1.

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
    AutoDecoder : Auto-decoder with an MLP decoder.
    ConvAutoEncoder : The same decoder with an encoder instead of free latents.
    sklearn_autodecoder.presets.make_decoder : The preset decoders as torch modules.

    References
    ----------
    .. [1] V. Schuster and A. Krogh, "A manifold learning perspective on
       representation learning: learning decoder and representations without
       an encoder", Entropy 23(11), 1403, 2021.

    .. [2] P. Bojanowski, A. Joulin, D. Lopez-Paz and A. Szlam, "Optimizing
       the latent space of generative networks", ICML 2018.

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
        inference_method="lbfgs",
        inference_max_iter=100,
        inference_learning_rate=1.0,
        inference_tol=2e-4,
        tol=1e-4,
        init="mean",
        encoder_max_iter=20,
        inference_batch_size=256,
        latent_prior="none",
        n_prior_components=10,
        prior_covariance_type="full",
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
        self.latent_optimizer = latent_optimizer
        self.latent_learning_rate = latent_learning_rate
        self.latent_momentum = latent_momentum
        self.latent_l2 = latent_l2
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.inference_method = inference_method
        self.inference_max_iter = inference_max_iter
        self.inference_learning_rate = inference_learning_rate
        self.inference_tol = inference_tol
        self.tol = tol
        self.init = init
        self.encoder_max_iter = encoder_max_iter
        self.inference_batch_size = inference_batch_size
        self.latent_prior = latent_prior
        self.n_prior_components = n_prior_components
        self.prior_covariance_type = prior_covariance_type
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
