"""The auto-decoder family: a free latent vector per training sample.

:class:`BaseAutoDecoder` gives the representation hooks of
:class:`._base.BaseRepresentationEstimator`: a latent table trained jointly
with the decoder by a row-sparse optimiser, and latent inference (with the
decoder frozen) for held-out and new samples. Its concepts have rooms of
their own, joined here as mixins: where latents start (:mod:`._starts`),
the latent prior's estimator API (:mod:`._prior_api`) and the Laplace
likelihood (:mod:`._laplace`). :class:`AutoDecoder` adds the MLP
architecture and its parameters; :class:`~._conv_autodecoder.ConvAutoDecoder`
the image decoders.
"""

import time
from functools import partial
from numbers import Real

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from . import _distributed as distributed
from ._amortized import fit_encoder
from ._architectures import MLPDecoderMixin, check_module_widths
from ._base import (
    COMMON_SETTINGS,
    BaseRepresentationEstimator,
    Representation,
    at_least_one,
    positive,
    seeded_cpu_rng,
)
from ._compat import Interval, StrOptions
from ._data import map_rows, output_dtype
from ._inference import METHODS, decode_in_chunks, infer_latents
from ._laplace import LaplaceMixin
from ._prior_api import PriorMixin
from ._priors import COVARIANCE_TYPES, LATENT_PRIORS
from ._sparse_optim import make_latent_optimizer
from ._information_criteria import InformationCriteriaMixin
from ._warnings import warn
from ._starts import INIT_STRATEGIES, LatentStartsMixin
from ._tensors import tensors_in_out
from ._training import format_duration
from .nn import LatentTable

# Inference steps per epoch on the held-out latents when early stopping; they
# restart from the previous epoch's values, so a few steps track the decoder.
VALID_STEPS_PER_EPOCH = 10
# With verbose >= 1, inference reports its progress when it has run this many
# seconds, then at most once per interval (short calls stay silent).
PROGRESS_INTERVAL = 5.0

LATENT_SETTINGS = (
    "latent_optimizer",
    "latent_learning_rate",
    "latent_momentum",
    "latent_l2",
)
TRAINING_SETTINGS = COMMON_SETTINGS + LATENT_SETTINGS


def _rms(latents):
    """Root mean square of latents (tensor or array); 1 for an all-zero table.

    Inference step sizes are multiples of the training latents' RMS, so that
    ``inference_learning_rate`` does not depend on the scale the latents
    happened to take in training.
    """
    rms = float((latents**2).mean() ** 0.5)
    return rms if rms > 0 else 1.0


class _InferenceProgress:
    """Progress lines of a long inference (``verbose >= 1``), at most one per interval.

    Each line gives the samples done, the time elapsed and an estimate of
    the time left (from the mean rate so far).
    """

    # The clock, a class attribute so that tests can replace it.
    clock = staticmethod(time.perf_counter)

    def __init__(self, n_samples, verbose):
        self.n_samples, self.verbose = n_samples, verbose
        self.done, self.start = 0, self.clock()
        self.next_report = self.start + PROGRESS_INTERVAL
        self.reported = False

    def update(self, n_rows):
        """Count ``n_rows`` more inferred samples; print a line when one is due."""
        self.done += n_rows
        now = self.clock()
        if self.verbose >= 1 and now >= self.next_report and self.done < self.n_samples:
            self._print(now)
            self.next_report = now + PROGRESS_INTERVAL

    def close(self):
        """A last line when progress was reported."""
        if self.reported:
            self._print(self.clock())

    def _print(self, now):
        self.reported = True
        elapsed = now - self.start
        line = (
            f"inference: {self.done:,}/{self.n_samples:,} samples "
            f"({self.done / self.n_samples:.0%}), {format_duration(elapsed)}"
        )
        if 0 < self.done < self.n_samples:
            line += f", ETA {format_duration(elapsed / self.done * (self.n_samples - self.done))}"
        print(line, flush=True)


class BaseAutoDecoder(
    InformationCriteriaMixin, LatentStartsMixin, PriorMixin, LaplaceMixin, BaseRepresentationEstimator
):
    """Base class for auto-decoders; not for direct use.

    The representation is a table of free latent vectors, one per training
    sample; new samples get theirs by inference with the decoder frozen.
    """

    _parameter_constraints = {
        **BaseRepresentationEstimator._parameter_constraints,
        "latent_optimizer": [StrOptions({"sgd", "adam"})],
        "latent_learning_rate": [positive(Real)],
        "latent_momentum": [Interval(Real, 0, 1, closed="left")],
        "latent_l2": [Interval(Real, 0, None, closed="left")],
        "inference_method": [StrOptions(set(METHODS))],
        "inference_max_iter": [at_least_one()],
        "inference_learning_rate": [positive(Real)],
        "inference_tol": [Interval(Real, 0, 1, closed="left")],
        "init": [StrOptions(set(INIT_STRATEGIES))],
        "encoder_max_iter": [at_least_one()],
        "inference_batch_size": [at_least_one()],
        "latent_prior": [StrOptions(set(LATENT_PRIORS))],
        "n_prior_components": [at_least_one()],
        "prior_covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
    }
    _training_settings = TRAINING_SETTINGS
    _torch_attributes = ("decoder_", "encoder_", "likelihood_")

    # ---- training: the latent table --------------------------------------------

    def _make_representation(self, decoder, data, settings, warm, generator, n_held_out):
        """A latent table with a row-sparse optimiser, held-out inference, and its start.

        A data-driven start is returned as the prior's start (see ``_make_prior``).
        """
        start = self._training_start(decoder, data, settings, warm, generator)
        table = LatentTable(len(data), settings["n_components"], init=start.latents).to(data.device)
        optimizer = partial(
            make_latent_optimizer,
            name=settings["latent_optimizer"],
            lr=settings["latent_learning_rate"],
            momentum=settings["latent_momentum"],
        )
        held_out = None
        if n_held_out:
            held_out = self._held_out_inference(decoder, table, settings, n_held_out, data.device)
        return Representation(
            table, optimizer, held_out, start.latents if start.data_driven else None, start.is_pca
        )

    def _held_out_inference(self, decoder, table, settings, n_held_out, device):
        """``held_out(index, x, mask)``: held-out latents, tracked across epochs.

        A few inference steps per epoch, from the previous epoch's values,
        with the decoder frozen.
        """
        reference = table.weight.detach()
        state = self._held_out_start(reference, n_held_out)

        def held_out(index, x, mask):
            z = infer_latents(
                decoder,
                x,
                lambda *_: state[index],
                loss=settings["loss"],
                mask=mask,
                method=self.inference_method,
                max_iter=VALID_STEPS_PER_EPOCH,
                learning_rate=self.inference_learning_rate * _rms(reference),
                tol=self.inference_tol,
                latent_l2=settings["latent_l2"],
                batch_size=len(x),
                device=device,
            ).latents
            state[index] = z
            return z

        held_out.latents = state  # carried from epoch to epoch: a Checkpoint stores it
        return held_out

    def _finish_fit(self, module, data, train, valid, generator, prior):
        """Store the training latents, fit the inference aids, infer the held-out rows.

        Held-out rows are inferred against the final decoder (the best one
        when early stopping restored it), like any new sample. Under
        ``torch.distributed`` each rank contributes its shard's rows.
        """
        dtype = output_dtype(data.X)
        self._store_prior(prior)
        # Each rank trained its own rows of the table; merged, every rank has them all.
        latents = distributed.merge_owned_rows(module.weight).numpy().astype(dtype)
        self.embedding_ = latents
        self.latent_scale_ = _rms(latents)
        self.__dict__.pop("noise_variance_", None)
        # The noise model's variance, if the likelihood has one (the Gaussian's):
        # score_samples and the prior's weight use it.
        variance = self._likelihood().fit_noise_variance(
            self.decoder_, data.take(train), latents, self.inference_batch_size
        )
        if variance is not None:
            self.noise_variance_ = variance
        for name in ("_references_", "encoder_", "encoder_loss_curve_"):
            self.__dict__.pop(name, None)  # from a previous fit with another init
        if self.init == "encoder":
            self._fit_encoder(data.take(train), generator)
        if valid is not None:
            # Each rank infers its share of the held-out rows.
            inferred = self._latents_of(data.take(distributed.shard(valid)), self._decoder_for(data.dtype))
            valid, inferred = distributed.all_gather_rows(distributed.shard(valid), torch.from_numpy(inferred))
            embedding = np.empty((len(train) + len(valid), self.n_components_), dtype=dtype)
            embedding[train] = latents
            embedding[valid] = inferred.numpy()
            self.embedding_ = embedding
        if self.init == "nearest":
            latents = torch.as_tensor(self.embedding_, dtype=torch.float32)
            self._references_ = decode_in_chunks(
                self.decoder_, latents[self._nearest_rows(len(latents))], self.inference_batch_size, self.device_
            ).cpu()

    def _fit_encoder(self, data, generator):
        """Train the amortised encoder of init="encoder" on the training rows.

        It regresses the fitted latents from the samples (targets fixed), on
        clean and randomly masked copies, plus the frozen decoder's
        reconstruction loss of its output.
        """
        with seeded_cpu_rng(generator):
            encoder = self._build_encoder(data.n_features, self.settings_)
        check_module_widths(encoder, data.n_features, self.n_components_, "encoder")
        self.encoder_loss_curve_ = fit_encoder(
            encoder,
            data,
            torch.as_tensor(self.embedding_, dtype=torch.float32),
            max_iter=self.encoder_max_iter,
            batch_size=self.settings_["batch_size"],
            generator=generator,
            decoder=self.decoder_,
            loss=self._likelihood(),
        )
        self.encoder_ = encoder

    # ---- inference ----------------------------------------------------------------

    def _latents_of(self, data, decoder):
        """Inferred latents of ``data``, chunk by chunk (the transform hook)."""
        init = self._init_function(decoder, data.dtype, data.device)
        likelihood = self._module_for(self._likelihood(), data.dtype)
        unconverged, overshot = [], []
        progress = _InferenceProgress(len(data), self.verbose)

        def infer(x, mask):
            result = self._infer_tensor(decoder, x, mask, likelihood, data.device, init=init)
            if hasattr(result, "converged"):
                unconverged.append(int((~result.converged).sum()))
            if getattr(result, "overshot", None) is not None:
                overshot.append(int(result.overshot.sum()))
            progress.update(len(x))
            return result[0]

        Z = map_rows(
            data,
            infer,
            width=self.n_components_,
            out_dtype=output_dtype(data.X),
            batch_size=self.inference_batch_size,
        )
        progress.close()
        if sum(unconverged):
            warn(
                f"{sum(unconverged)} of {len(data)} samples ({sum(unconverged) / len(data):.1%}) "
                f"reached inference_max_iter={self.inference_max_iter} before their latent "
                "converged; increase inference_max_iter or inference_tol.",
                ConvergenceWarning,
            )
        if sum(overshot):
            warn(
                f"{sum(overshot)} of {len(data)} samples ({sum(overshot) / len(data):.1%}) kept "
                "their starting latent: every inference step tried raised their loss far above "
                f"the start's. inference_learning_rate={self.inference_learning_rate} is too "
                "large for this decoder; lower it (or use inference_method='lbfgs').",
                ConvergenceWarning,
            )
        return Z

    def _infer_tensor(self, decoder, X_t, mask, loss, device, init=None):
        """Latents of the tensor ``X_t`` under ``decoder`` (same dtype as X_t).

        ``init``, a tensor of starting latents or a start function, overrides
        the ``init`` strategy.
        """
        if init is None:
            init = self._init_function(decoder, X_t.dtype, device)
        return infer_latents(
            decoder,
            X_t,
            init,
            loss=loss,
            mask=mask,
            method=self.inference_method,
            max_iter=self.inference_max_iter,
            learning_rate=self.inference_learning_rate * self.latent_scale_,
            tol=self.inference_tol,
            penalty=self._prior_penalty(X_t.dtype),
            batch_size=self.inference_batch_size,
            device=device,
        )

    def _transform_batch_size(self):
        return self.inference_batch_size

    @tensors_in_out
    def fit_transform(self, X, y=None):
        """Fit the model and return the latent vectors it learnt for X.

        The training latents come with the fit: no second inference runs.
        They are ``embedding_`` (a copy): the latents trained jointly with
        the decoder, and for the samples held out by early stopping, latents
        inferred against the final decoder. ``fit(X).transform(X)`` instead
        projects every sample onto the final decoder's manifold from that
        start, so its result is close to these latents, not equal to them
        (equal up to ``inference_tol`` once both have converged).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training samples; NaN marks a missing entry.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        Z : ndarray of shape (n_samples, ``n_components_``)
            Latent vectors, float64 for float64 X and float32 otherwise.
        """
        return self.fit(X).embedding_.copy()

    def transform(self, X):
        """Infer the latent vector of each sample with the decoder frozen.

        Each sample's latent minimises its reconstruction loss over its
        observed (non-NaN) entries, by ``inference_method`` (L-BFGS by
        default) from a deterministic start (``init``); the rows are
        independent of each other.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples to project onto the decoder's manifold. Numeric arrays,
            ``np.memmap`` and ``scipy.sparse`` matrices are read in batches,
            never copied whole.

        Returns
        -------
        Z : ndarray of shape (n_samples, ``n_components_``)
            Latent vectors, float64 for float64 X and float32 otherwise.
        """
        return super().transform(X)


class AutoDecoder(MLPDecoderMixin, BaseAutoDecoder):
    """Auto-decoder with a fully connected (MLP) decoder.

    Learns a decoder network and one free latent vector per training sample
    jointly, by gradient descent, with no encoder. :meth:`transform` finds a
    new sample's latent by a second optimisation with the decoder frozen:
    the projection of the sample onto the m-dimensional manifold the decoder
    defines. With ``hidden_layer_sizes=()`` the decoder is linear and spans
    the PCA subspace.

    X may be an ndarray or ``np.memmap`` of uint8, other integers, float32 or
    float64: it is read in batches of rows, converted batch by batch, and
    never copied whole (other array-likes, such as lists or DataFrames, are
    converted once). A ``scipy.sparse`` matrix or array (e.g. AnnData's
    ``adata.X``) is sliced by rows and densified one batch at a time; CSR is
    used as it is, other formats are converted to CSR once (a copy of the
    stored values). NaN marks a missing entry, which the loss ignores in
    :meth:`fit`, :meth:`transform` and :meth:`score`. Results are float64
    for float64 X and float32 otherwise; float16 X is computed and returned
    as float32.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_components : int, default=2
        Size of the latent vectors.

    hidden_layer_sizes : int or tuple of int, default=(64,)
        Widths of the decoder's hidden layers, latent side first; an int is
        one hidden layer. ``()`` gives a linear decoder.

    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the hidden layers.

    connectivity : array-like of shape (n_components, n_features), default=None
        Fixed 0/1 mask of a sparse linear decoder: latent ``k`` may act on
        feature ``j`` only where ``connectivity[k, j]`` is 1 (e.g. the known
        regulator-gene graph of
        :func:`~sklearn_autodecoder.datasets.make_regulatory_data`). Needs
        ``hidden_layer_sizes=()``. None gives dense layers.

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
        Optimiser of the decoder weights ("sgd" uses momentum 0.9).

    learning_rate : float, default=1e-3
        Learning rate of the decoder weights.

    weight_decay : float, default=1e-5
        L2 penalty on the decoder weights (coupled, as in ``torch.optim.Adam``).

    latent_optimizer : {"sgd", "adam"}, default="adam"
        Optimiser of the training latents. Both update only the rows of the
        current batch, momentum included ("adam" is ``torch.optim.SparseAdam``).

    latent_learning_rate : float, default=1e-2
        Learning rate of the training latents. Losses are summed over features
        and samples, so this rate does not depend on the batch size.

    latent_momentum : float, default=0.9
        Momentum of ``latent_optimizer="sgd"``.

    latent_l2 : float, default=0.0
        Weight of an L2 (Gaussian) prior on the latents, in training and in
        inference.

    max_iter : int, default=500
        Most training epochs (passes over the data); training stops sooner
        when its loss has converged (see ``tol``).

    batch_size : int, default=64
        Samples per training batch.

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

    inference_learning_rate : float, default=0.1
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

    init : {"zeros", "mean", "nearest", "encoder"}, default="nearest"
        Starting latent of inference, deterministic and computed for each
        sample from that sample alone: zeros; the mean training latent;
        "nearest", the training latent whose decoding has the lowest loss on
        the sample's observed entries (among at most 4,096 evenly spaced
        training rows); or "encoder", the output of an
        amortised encoder (``encoder_``) trained at the end of :meth:`fit` to
        map the training samples (clean and randomly masked) to their
        latents. "encoder" needs the fewest inference steps (see
        ``benchmarks/bench_inference.py``). "nearest", the default here,
        starts each sample in the right basin of a nonlinear decoder: from
        zeros, inference can end in a poor local minimum (on unseen tables,
        worse than PCA's projection; see ``benchmarks/bench_defaults.py``).

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
        counts as epoch 0: the epoch with the lowest loss on half the
        held-out rows replaces it only if a paired t-test on the other half
        (at least 5 rows) finds it better at the 5% level (choosing and
        testing on the same rows would accept lucky epochs), so a decoder
        that cannot beat its PCA start stays there (then refitted on all
        samples). The kept decoder and training latents are restored,
        and the held-out samples' rows of ``embedding_`` are inferred against
        that decoder. A fit stopped this way does not warn. "auto" turns it
        on for 2 to 10,000 training samples: on small tables an MLP decoder
        overfits within ``max_iter`` (held-out error up to 4x PCA's before,
        see ``benchmarks/bench_defaults.py``), while a fit with its
        validation passes still takes seconds.

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
    ConvAutoDecoder : Auto-decoder with a convolutional image decoder.
    AutoEncoder : The same decoder with an encoder instead of free latents.
    sklearn.decomposition.PCA : The linear special case, in closed form.

    References
    ----------
    .. [1] V. Schuster and A. Krogh, "A manifold learning perspective on
       representation learning: learning decoder and representations without
       an encoder", Entropy 23(11), 1403, 2021.

    .. [2] J. J. Park, P. Florence, J. Straub, R. Newcombe and S. Lovegrove,
       "DeepSDF: learning continuous signed distance functions for shape
       representation", CVPR 2019.

    .. [3] P. Bojanowski, A. Joulin, D. Lopez-Paz and A. Szlam, "Optimizing
       the latent space of generative networks", ICML 2018.

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
        decoder=None,
        encoder=None,
        loss="mse",
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-5,
        latent_optimizer="adam",
        latent_learning_rate=1e-2,
        latent_momentum=0.9,
        latent_l2=0.0,
        max_iter=500,
        batch_size=64,
        inference_method="lbfgs",
        inference_max_iter=100,
        inference_learning_rate=0.1,
        inference_tol=2e-4,
        tol=1e-4,
        init="nearest",
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
