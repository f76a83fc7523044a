"""What every estimator of the package shares: the scikit-learn glue.

:class:`BaseRepresentationEstimator` holds the parameters common to the
auto-decoders and the autoencoders, validates input (through :mod:`._data`,
without copying large arrays), resolves settings, device and seed, runs the
fit skeleton (build, train with :mod:`._training`, store), decodes, scores
and pickles. What differs is asked of two kinds of hooks:

* the architecture (a mixin of :mod:`._architectures`): ``_default_settings``,
  ``_check_n_features``, ``_build_decoder``, ``_build_encoder``;
* the representation family (:mod:`._autodecoder` or :mod:`._autoencoder`):
  ``_make_representation`` (what is trained with the decoder),
  ``_make_prior`` (a trainable prior on the latents), ``_finish_fit`` (what
  ``transform`` needs of the fitted representation), ``_latents_of`` (the
  latents of new samples) and ``_load_ratios`` (the fitted load attributes).

See ``docs/architecture.md`` for every hook, who overrides and who calls it.
"""

import copy
import gc
import math
import warnings
from contextlib import contextmanager
from functools import partial
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils.metaestimators import available_if

from ._architectures import check_module_widths
from ._checkpoint import resume as resume_from_checkpoint
from ._compat import IntegerInterval, Interval, StrOptions, _fit_context, check_is_fitted
from ._doc_link import DOC_LINK_MODULE, DOC_LINK_TEMPLATE
from ._data import RowData, check_rows, map_rows, output_dtype, slices, validate_rows
from . import _distributed as distributed
from ._devices import (
    PRECISIONS,
    CompiledModule,
    autocast,
    check_precision,
    compute_dtype,
    prefer_channels_last,
    resolve_device,
)
from ._inference import frozen
from ._persistence import SaveMixin, runnable_device
from ._random import local_random_draws
from ._sync_batchnorm import global_batch_norm
from ._priors import LATENT_PRIORS, GaussianPrior, combine_priors
from ._load import LowLoadWarning, decoder_load, n_free_parameters
from ._likelihoods import LIKELIHOODS, Likelihood, get_likelihood, wrap_keeping_logits
from ._losses import decoded_losses
from ._tensors import tensors_in, tensors_in_out
from ._warnings import warn
from ._threads import forward_flops, resolve_n_threads, torch_threads
from ._training import RepresentationNet, above_start, make_callbacks, needs_validation
from .nn import RepresentationModel

# Samples decoded (or encoded) together when no inference batch size applies.
TRANSFORM_BATCH_SIZE = 256

# Settings a subclass may leave as None, to be resolved from its defaults.
COMMON_SETTINGS = (
    "n_components",
    "loss",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "max_iter",
    "batch_size",
)


class Representation(NamedTuple):
    """What ``_make_representation`` returns."""

    module: torch.nn.Module
    """``module(index, x)``: a batch's latents (the latent table, or an encoder)."""
    optimizer: object
    """``optimizer(params)``: the representation's optimiser."""
    held_out: object = None
    """``held_out(index, x, mask)``: held-out rows' latents for early stopping (None: ``module``)."""
    prior_start: object = None
    """Latents a prior may start from (a data-driven start), or None."""
    start_is_pca: bool = False
    """Whether the start is PCA's own model (decoder and latents), refittable on all rows."""


def positive(kind):
    """Constraint: a number > 0."""
    return Interval(kind, 0, None, closed="neither")


def at_least_one():
    """Constraint: an integer >= 1 (not a bool)."""
    return IntegerInterval(1, None, closed="left")


def nullable(constraints, names):
    """``constraints`` with None allowed for ``names`` (resolved from defaults)."""
    return {
        name: [*rule, None] if name in names else rule for name, rule in constraints.items()
    }


def make_weight_optimizer(params, name, lr, weight_decay):
    """The optimiser of network weights: Adam, or SGD with momentum 0.9."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


@contextmanager
def seeded_cpu_rng(generator):
    """The block's random draws (module constructors') from a CPU generator seeded from ``generator``.

    The modules are built on the CPU, then moved. A local generator, not
    torch's global one (see :mod:`._random`): fits in threads each get their
    own weights and the caller's global state is never touched. It draws
    what the global generator seeded alike would.
    """
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with local_random_draws(torch.Generator().manual_seed(seed)):
        yield


def _without_latent_prior(estimator):
    """partial_fit's condition: no latent prior (its mixture needs the whole training set)."""
    return LATENT_PRIORS.get(getattr(estimator, "latent_prior", None)) is None


def check_callbacks(callbacks):
    """Raise a clear error naming an element of ``callbacks`` skorch cannot use.

    skorch takes a ``Callback`` instance or class, or a ``(name, callback)``
    pair; anything else would fail deep inside its initialisation.
    """
    from skorch.callbacks import Callback

    for i, item in enumerate(callbacks or []):
        callback = item[1] if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) else item
        if not (isinstance(callback, Callback) or (isinstance(callback, type) and issubclass(callback, Callback))):
            raise TypeError(
                f"callbacks[{i}] is {item!r}; each callback must be a skorch Callback "
                "(an instance or a class) or a (name, callback) pair."
            )


def _library_sizes(library_size, n_samples, dtype):
    """``library_size`` of ``inverse_transform`` as an array of ``n_samples`` (or None)."""
    if library_size is None:
        return None
    values = np.asarray(library_size, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(n_samples, float(values))
    if values.shape != (n_samples,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(
            "library_size must be a positive number or an array of one positive number per "
            f"latent vector ({n_samples}); got {library_size!r}."
        )
    return values.astype(dtype)


class BaseRepresentationEstimator(
    SaveMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Base of the auto-decoders and autoencoders; not for direct use."""

    # The HTML repr's "?" link to the API page.
    _doc_link_module = DOC_LINK_MODULE
    _doc_link_template = DOC_LINK_TEMPLATE

    _parameter_constraints = {
        "n_components": [at_least_one()],
        "loss": [StrOptions(set(LIKELIHOODS)), Likelihood],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "learning_rate": [positive(Real)],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_iter": [at_least_one()],
        "batch_size": [at_least_one()],
        "tol": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [at_least_one()],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "compile": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }
    _training_settings = COMMON_SETTINGS
    # Fitted torch modules, moved to the CPU when pickled.
    _torch_attributes = ("decoder_", "likelihood_")
    # Factor applied to uint8 input (image estimators: 1/255), None to take values as they are.
    _uint8_scale = None
    # Whether the architecture keeps small random training latents where the
    # data would allow a PCA start (see BaseAutoDecoder._pca_start_applies).
    _random_latent_start = False

    # ---- architecture hooks (see ._architectures) -------------------------------

    def _default_settings(self):
        """Values for the settings a user left as None."""
        return {}

    def _check_n_features(self, n_features):
        """Raise a ValueError if the decoder cannot produce this width."""

    def _build_decoder(self, n_features, settings):
        """A torch module mapping (n, n_components) to (n, n_features)."""
        raise NotImplementedError

    def _build_encoder(self, n_features, settings):
        """A torch module mapping (n, n_features) to (n, n_components)."""
        raise NotImplementedError

    def _auto_early_stopping(self, n_samples):
        """What ``early_stopping="auto"`` means for ``n_samples`` training samples."""
        return False

    def _decoder_is_pca_linear(self):
        """Whether PCA solves the decoder when it is linear (sets it in the PCA start)."""
        return False

    # ---- representation hooks (see ._autodecoder, ._autoencoder) ---------------

    def _make_representation(self, decoder, data, settings, warm, generator, n_held_out):
        """What is trained jointly with ``decoder`` on the training rows ``data``.

        Returns a :class:`Representation`: ``module(index, x)`` gives a
        batch's latents, ``optimizer(params)`` its optimiser,
        ``held_out(index, x, mask)`` the latents of the ``n_held_out``
        held-out rows for early stopping (None: use ``module``), and
        ``prior_start`` the latents a prior may start from (or None).
        """
        raise NotImplementedError

    def _make_prior(self, settings, generator, start=None):
        """A trainable prior on the latents (a :class:`~._priors.LatentPrior`), or None (the default)."""
        return None

    def _latent_prior(self, settings, prior):
        """The latents' whole prior: ``latent_l2``'s Gaussian (if positive) and ``prior``, or None."""
        strength = settings.get("latent_l2", 0.0)
        return combine_priors(GaussianPrior(strength) if strength else None, prior)

    def _finish_fit(self, module, data, train, valid, generator, prior):
        """Finish the fit after training: keep what ``transform`` needs of the representation and prior."""
        raise NotImplementedError

    def _latents_of(self, data, decoder):
        """Latents of ``data`` (a :class:`~._data.RowData`) as an array in its output dtype."""
        raise NotImplementedError

    def _make_likelihood(self, loss):
        """A likelihood object of its own for ``loss`` (a name, or a copy of the user's object)."""
        return copy.deepcopy(loss) if isinstance(loss, Likelihood) else get_likelihood(loss)

    def _likelihood(self):
        """The fitted likelihood (a fresh one of ``loss_`` for models saved without it)."""
        likelihood = self.__dict__.get("likelihood_")
        return get_likelihood(self.loss_) if likelihood is None else likelihood

    def _build_fitted_module(self, name):
        """An untrained module shaped like the fitted module ``name`` (for ``load``)."""
        if name == "likelihood_":
            likelihood = self._make_likelihood(self.loss if isinstance(self.loss, Likelihood) else self.loss_)
            likelihood.setup(self.n_features_in_)
            return likelihood
        settings = {**self.settings_, "n_components": self.n_components_, "loss": self._likelihood()}
        if name == "prior_":
            return self._make_prior(settings, generator=None)
        build = getattr(self, {"decoder_": "_build_decoder", "encoder_": "_build_encoder"}[name])
        return build(self.n_features_in_, settings)

    # ---- settings and data --------------------------------------------------------

    def _settings(self):
        """The training settings, None values resolved from the defaults."""
        defaults = self._default_settings()
        return {
            name: defaults[name] if getattr(self, name) is None else getattr(self, name)
            for name in self._training_settings
        }

    def _image_shape(self):
        """(C, H, W) for image estimators, else None."""
        return None

    def _rows(self, X, *, reset, likelihood=None):
        """Validated X as :class:`~._data.RowData` on the estimator's device.

        Large numeric arrays and memmaps are checked chunk by chunk, never
        copied; a ``likelihood`` also checks the values it needs (in [0, 1]
        for ``loss="bce"``).
        """
        X = validate_rows(self, X, reset=reset, image_shape=self._image_shape())
        if reset:
            self._check_n_features(X.shape[1])
        scale = self._uint8_scale if X.dtype == np.uint8 else None
        if likelihood is None and not reset and self._likelihood().checks_new_samples:
            likelihood = self._likelihood()
        if likelihood is None:
            has_nan = check_rows(X, scale=scale)
        else:
            has_nan = likelihood.check_rows(X, scale=scale)
        if reset:  # training runs in float32 (master weights and latents)
            device = resolve_device(self.device)
            dtype = torch.float32
        else:
            device = self.device_
            dtype = compute_dtype(X.dtype, device)
        return RowData(X, dtype, device, scale=scale, has_nan=has_nan)

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ---- fit --------------------------------------------------------------------

    @distributed.agreeing  # under torchrun: a rank's early failure stops every rank
    @_fit_context(prefer_skip_nested_validation=True)
    @tensors_in
    def fit(self, X, y=None):
        """Fit the decoder and the representation jointly.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training samples; NaN marks a missing entry, which the loss
            ignores. Numeric arrays, ``np.memmap`` and ``scipy.sparse``
            matrices are read in batches, never copied whole (nor densified
            whole).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit_rows(X, incremental=False)

    def _fit_rows(self, X, *, incremental):
        """``fit`` (``incremental=False``) or one ``partial_fit`` call."""
        # Under torchrun the ranks fit alike: their warnings too, shown once (rank 0's).
        with distributed.warnings_from_rank_zero(), self._all_or_nothing(incremental):
            return self._fit_rows_once(X, incremental)

    @contextmanager
    def _all_or_nothing(self, incremental):
        """A fit that raises (an error, a divergence, Ctrl-C) leaves the estimator as it was.

        Validation resets attributes (``n_features_in_``...) before a value
        is refused, and a continued fit (``warm_start``, ``partial_fit``)
        would train the fitted modules in place: it trains copies of every
        fitted module and tensor instead, and on any exception the previous
        ``__dict__`` comes back, its objects untouched.
        """
        before = dict(self.__dict__)
        if self.warm_start or incremental:
            for name, value in before.items():
                if isinstance(value, (torch.nn.Module, torch.Tensor)):  # arrays are replaced, never updated
                    self.__dict__[name] = copy.deepcopy(value)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_rows_once(self, X, partial):
        check_callbacks(self.callbacks)
        settings = self._settings()
        warm = (self.warm_start or partial) and hasattr(self, "decoder_")
        previous_width = getattr(self, "n_features_in_", None)
        # The training's own likelihood object (trainable parameters continue on a warm start).
        likelihood = self._likelihood() if warm else self._make_likelihood(settings["loss"])
        settings["loss"] = likelihood
        data = self._rows(X, reset=True, likelihood=likelihood)
        check_precision(self.precision, data.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # The ranks' first collective: stop every rank if one failed so far or
        # their parameters (or data shapes) differ.
        distributed.agree(
            {**distributed.fingerprint(self.get_params(deep=False)), "X.shape": repr((len(data), data.n_features))}
        )
        # Under torch.distributed every rank builds the same starts, split and
        # shuffles from rank 0's seed (random_state=None draws differ per process).
        seed = distributed.broadcast_seed(seed)
        # A Checkpoint callback resumes an interrupted fit, with its seed (see _checkpoint).
        seed = resume_from_checkpoint(self, data, seed, partial)
        generator = torch.Generator().manual_seed(seed)
        if warm and previous_width != data.n_features:
            raise ValueError(
                f"warm_start=True continues the fitted decoder, which produces {previous_width} "
                f"features; X has {data.n_features}. Set warm_start=False to fit a new model."
            )
        if warm and self.n_components_ != settings["n_components"]:
            raise ValueError(
                "warm_start=True needs the same n_components as the previous fit "
                f"({self.n_components_}), got {settings['n_components']}."
            )
        # partial_fit: one epoch over the chunk, no held-out split.
        early_stopping = not partial and self._resolve_early_stopping(len(data))
        validate = early_stopping or (not partial and needs_validation(self.callbacks))
        train, valid = self._split(len(data), generator, validate)
        # Under torch.distributed every rank holds all rows and trains its own
        # share of each global batch (see _distributed): same steps on every rank.
        train_data = data.take(train)
        if not warm:
            # The likelihood's own parameters, sized and started from the training
            # rows (under torch.distributed every rank holds them all: alike).
            likelihood.setup(data.n_features, train_data)
        with seeded_cpu_rng(generator):
            if warm:
                decoder = self.decoder_.float().to(data.device)
            else:
                decoder = self._build_decoder(data.n_features, settings).to(data.device)
                check_module_widths(decoder, settings["n_components"], data.n_features, "decoder")
            decoder = prefer_channels_last(decoder, data.device)
            # Multiply-adds of a training batch's forward pass: what the default
            # thread count (n_jobs=None) scales with.
            self._batch_flops_ = forward_flops(
                decoder, torch.zeros(1, settings["n_components"], device=data.device)
            ) * settings["batch_size"]
            # The representation's start (PCA's SVD) and the prior's (EM) run
            # BLAS and torch code too: under the same thread limit as training.
            with self._threads():
                representation = self._make_representation(
                    decoder, train_data, settings, warm, generator, 0 if valid is None else len(valid)
                )
                module = representation.module
                prior = self._make_prior(settings, generator, representation.prior_start)
        with self._threads():
            with warnings.catch_warnings():
                if partial:  # one chunk is not the decoder's whole training set
                    warnings.simplefilter("ignore", LowLoadWarning)
                loads = self._load_ratios(decoder, module, settings, train_data)
            model = RepresentationModel(
                distributed.wrap(self._compiled(module), data.device),
                wrap_keeping_logits(decoder, lambda m: distributed.wrap(self._compiled(m), data.device)),
                self._latent_prior(settings, None if prior is None else prior.to(data.device)),
                likelihood.to(data.device),
            )
            net = self._make_net(model, representation, settings, data, generator, early_stopping, partial)
            if partial:  # the divergence check's reference: the first call's start
                net.reference_loss_ = self.__dict__.get("_reference_loss_")
            # Under torchrun, batch-norm layers normalise over the global batch (as one process).
            with global_batch_norm(decoder, module):
                net.fit((train_data, None if valid is None else data.take(valid)))
            if not partial:
                self._warn_unconverged(net, settings)
            self._warn_worse_than_start(net, data.n_features)
            if self._kept_start(net, representation, prior, valid, warm):
                # Early stopping kept the start, PCA of the training rows: the
                # same start computed on every row is the better model.
                train, valid = np.arange(len(data)), None
                with seeded_cpu_rng(generator):
                    module = self._make_representation(decoder, data, settings, False, generator, 0).module

            self.device_ = data.device
            self.decoder_ = decoder.eval()
            self.n_components_ = settings["n_components"]
            self.loss_ = likelihood.name
            self.likelihood_ = likelihood.eval()
            self.settings_ = {**settings, "loss": likelihood.name}
            self._record_history(net.history, warm)
            if partial:
                self._reference_loss_ = net.start_loss_
            else:
                self.__dict__.pop("_reference_loss_", None)
            for name, value in loads.items():
                setattr(self, name, value)
            # A fresh generator for what is fitted after the loop.
            after = torch.Generator().manual_seed(seed + 1)
            self._finish_fit(module, data, train, valid, after, prior)
        if distributed.is_active():
            # The training net holds the DDP wrappers in reference cycles: free them now, not at
            # interpreter exit, where gloo's threads releasing their work can abort the process.
            del net, model
            gc.collect()
        return self

    def _record_history(self, history, warm):
        """``history_`` of this fit; ``n_iter_`` and ``loss_curve_`` continued by a warm start.

        As in scikit-learn's ``MLPRegressor``, a warm-started fit adds its
        epochs to the previous fits' count and curve.
        """
        previous = warm and hasattr(self, "loss_curve_")
        curve = [float(v) for v in history[:, "train_loss"]]
        self.history_ = history
        self.n_iter_ = (self.n_iter_ if previous else 0) + len(history)
        self.loss_curve_ = (self.loss_curve_ if previous else []) + curve

    @available_if(_without_latent_prior)
    @distributed.agreeing
    @_fit_context(prefer_skip_nested_validation=True)
    @tensors_in
    def partial_fit(self, X, y=None):
        """Update the decoder on one chunk of samples (one pass over it).

        As in scikit-learn's ``MiniBatchNMF``: the chunk's latents are first
        inferred with the decoder as it is (the first call starts them as
        :meth:`fit` does), then the decoder and those latents are trained
        jointly for one epoch over the chunk in mini-batches of
        ``batch_size``. Only the decoder (and an autoencoder's encoder)
        persists from call to call; ``embedding_`` holds the last chunk's
        latents and serves :meth:`transform`'s start. ``n_iter_`` grows by
        one per call (an epoch over the chunk) and ``loss_curve_`` by its loss.

        ``early_stopping``, ``max_iter`` and ``warm_start`` do not apply; the
        optimisers' state (e.g. Adam's moments) starts afresh at each call.
        Not available with a latent prior (``latent_prior="gmm"``), whose
        mixture is fitted on the whole training set.
        Use it to stream a dataset too large for one array, chunk by chunk
        (e.g. row blocks of a ``np.memmap``), over several passes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training samples; NaN marks a missing entry.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if hasattr(self, "decoder_"):  # the width and names of the first chunk
            validate_rows(self, X, reset=False, image_shape=self._image_shape())
        return self._fit_rows(X, incremental=True)

    def _kept_start(self, net, representation, prior, valid, warm):
        """Whether early stopping kept a start computed in closed form (PCA) from the rows.

        Only fits without a prior: the start is then a function of the
        training rows alone, and refitting it on all rows costs one SVD.
        Under ``torch.distributed`` every rank holds every row and computes
        the same start, so data-parallel fits refit it alike.
        """
        stopping = dict(net.callbacks_).get("early_stopping")
        return (
            representation.start_is_pca
            and stopping is not None
            and stopping.best_epoch_ == 0
            and valid is not None
            and prior is None
            and not warm
        )

    def _resolve_early_stopping(self, n_samples):
        """``early_stopping`` as a bool; "auto" asks the architecture (``_auto_early_stopping``)."""
        if self.early_stopping == "auto":
            return bool(self._auto_early_stopping(n_samples))
        return bool(self.early_stopping)

    def _warn_unconverged(self, net, settings):
        """ConvergenceWarning when max_iter ended a fit that was still improving.

        With early stopping: the held-out loss had improved (by more than
        ``tol``) within the last ``n_iter_no_change`` epochs, so more epochs
        would likely help. Without: the training loss was still improving;
        more epochs may then overfit, so the advice names early stopping too.
        A fit stopped by its stopping rule does not warn.
        """
        callbacks = dict(net.callbacks_)
        if len(net.history) < settings["max_iter"]:
            return
        stopping = callbacks.get("early_stopping")
        if stopping is not None:
            if stopping.stopped_ or stopping.misses_ >= self.n_iter_no_change:
                return
            message = (
                f"Training stopped at max_iter={settings['max_iter']} epochs while the held-out "
                f"loss was still improving (by more than tol={self.tol} within the last "
                f"{self.n_iter_no_change} epochs); the best state, from epoch "
                f"{stopping.best_epoch_}, was kept. Increase max_iter to train longer."
            )
        else:
            convergence = callbacks.get("training_convergence")
            if convergence is None or convergence.converged_:
                return
            message = (
                f"Training stopped at max_iter={settings['max_iter']} epochs before the training "
                f"loss converged (relative improvement below tol={self.tol} for "
                f"{self.n_iter_no_change} epochs). More epochs can overfit: set "
                "early_stopping=True to stop where the loss on held-out samples is lowest, or "
                "increase max_iter."
            )
        warn(message, ConvergenceWarning)

    def _warn_worse_than_start(self, net, n_features):
        """ConvergenceWarning when the fitted state has a higher training loss than the start.

        Steps far too large do not always blow the loss up (the divergence
        error): bounded outputs (a sigmoid) saturate, and the loss settles
        above where training began. Compared as the divergence check is,
        with a threshold of one start (or 1% of a unit per feature), and only
        when the last epoch's state is the one kept (early stopping may have
        restored an earlier one).
        """
        start = getattr(net, "start_loss_", None)
        if start is None or not len(net.history):
            return
        stopping = dict(net.callbacks_).get("early_stopping")
        if stopping is not None and stopping.best_epoch_ != len(net.history):
            return
        final = net.history[-1].get("train_loss")
        if final is not None and above_start(final, start, n_features, 1.0, unit=0.01):
            warn(
                f"Training ended with a higher loss ({final:.4g}) than it started with "
                f"({start:.4g}): the steps are too large for this model and data. Lower "
                "learning_rate (an auto-decoder's latent_learning_rate too) or rescale the data.",
                ConvergenceWarning,
            )

    def _threads(self):
        """Context limiting torch (and BLAS) threads for the estimator's own work.

        ``n_jobs`` threads, or with None as many as the model's batches pay
        for and the machine has free (see :mod:`._threads`); what was set
        before is restored on exit.
        """
        return torch_threads(resolve_n_threads(self.n_jobs, flops=getattr(self, "_batch_flops_", None)))

    def _compiled(self, module):
        """``module`` compiled for training when ``compile=True`` (the fitted one stays plain)."""
        if not self.compile or not any(p.requires_grad for p in module.parameters()):
            return module
        if getattr(module, "rank_local", False):  # the latent table: a lookup, nothing to gain
            return module
        return CompiledModule(module)

    def _split(self, n_samples, generator, validate):
        """Sorted training and held-out rows (the latter None without validation)."""
        if not validate:
            return np.arange(n_samples), None
        n_valid = math.ceil(self.validation_fraction * n_samples)
        if n_valid >= n_samples:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training "
                f"sample out of {n_samples}."
            )
        order = torch.randperm(n_samples, generator=generator).numpy()
        return np.sort(order[n_valid:]), np.sort(order[:n_valid])

    def _n_observed(self, data):
        """Observed entries of ``data`` (NaN excluded), counted chunk by chunk."""
        if not data.has_nan:
            return len(data) * data.n_features
        batches = data.batches(slices(len(data), TRANSFORM_BATCH_SIZE), prefetch=False)
        return sum(x.numel() if mask is None else int(mask.sum()) for _, x, mask in batches)

    def _load_ratios(self, decoder, representation, settings, data):
        """Fitted load attributes, warning when the decoder's is below 1.

        Missing entries are not counted as data, so they do not inflate the
        load.
        """
        n_train, n_values = len(data), self._n_observed(data)
        n_weights = n_free_parameters(decoder)
        load = decoder_load(n_train, n_values / n_train, settings["n_components"], n_weights)
        if load < 1:
            warn(
                f"The decoder load N*n/(W + N*m) is {load:.3g} < 1: {n_values} data values "
                f"for {n_weights} decoder weights and {n_train * settings['n_components']} "
                "latent values, so the fit is under-determined. Use more samples, a smaller "
                "decoder or fewer components.",
                LowLoadWarning,
            )
        return {"decoder_load_": load}

    def _make_net(self, model, representation, settings, data, generator, early_stopping, partial_epoch):
        verbose = int(self.verbose) if distributed.rank() == 0 else 0  # one log, rank 0's
        return RepresentationNet(
            model,
            weight_optimizer=partial(
                make_weight_optimizer,
                name=settings["optimizer"],
                lr=settings["learning_rate"],
                weight_decay=settings["weight_decay"],
            ),
            representation_optimizer=representation.optimizer,
            held_out=representation.held_out,
            generator=generator,
            precision=self.precision,
            batch_losses=bool(self.callbacks),
            # partial_fit: one pass over the chunk.
            max_epochs=1 if partial_epoch else settings["max_iter"],
            batch_size=settings["batch_size"],
            callbacks=make_callbacks(
                self.callbacks,
                verbose=verbose,
                early_stopping=early_stopping,
                n_iter_no_change=self.n_iter_no_change,
                tol=self.tol,
            ),
            verbose=verbose,
            device=str(data.device),
        )

    # ---- transform, decode, score --------------------------------------------------

    def _module_for(self, module, dtype):
        """A fitted module in the torch ``dtype`` (a copy unless float32)."""
        if dtype == torch.float32:
            return module
        return copy.deepcopy(module).to(dtype)

    def _decoder_for(self, dtype):
        """The fitted decoder in a torch dtype, or in the one numpy ``dtype`` calls for."""
        if not isinstance(dtype, torch.dtype):
            dtype = compute_dtype(np.dtype(dtype), self.device_)
        return self._module_for(self.decoder_, dtype)

    def _transform_batch_size(self):
        """Samples encoded or decoded together (bounds device memory)."""
        return TRANSFORM_BATCH_SIZE

    @tensors_in_out
    def transform(self, X):
        """Latent vectors of the samples in X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples; NaN marks a missing entry. Numeric arrays,
            ``np.memmap`` and ``scipy.sparse`` matrices are read in batches,
            never copied whole.

        Returns
        -------
        Z : ndarray of shape (n_samples, ``n_components_``)
            Latent vectors, float64 for float64 X and float32 otherwise.
        """
        check_is_fitted(self)
        data = self._rows(X, reset=False)
        with self._threads():  # latent inference runs in float32 (see infer_latents)
            return self._latents_of(data, self._decoder_for(data.dtype))

    @tensors_in_out
    def inverse_transform(self, X, library_size=None):
        """Decode latent vectors into samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, ``n_components_``)
            Latent vectors.
        library_size : float or array-like of shape (n_samples,), default=None
            Count likelihoods (``loss="poisson"``, ``"negative_binomial"``)
            only: the total count each decoded sample is scaled to. None
            takes the training samples' median total count
            (``likelihood_.library_size``). Other likelihoods take None only.

        Returns
        -------
        X_original : ndarray of shape (n_samples, ``n_features_in_``)
            Reconstructions, float64 for float64 latents and float32
            otherwise; for the image estimators, pixel values in [0, 1];
            for the count likelihoods, expected counts (the decoded
            proportions times ``library_size``).
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but {type(self).__name__} decodes latent "
                f"vectors of width n_components_={self.n_components_}."
            )
        library = _library_sizes(library_size, len(Z), Z.dtype)
        width = self.n_components_
        if library is not None:  # decoded with its latent row: one more column
            Z = np.hstack([Z, library[:, None]])
        data = RowData(Z, compute_dtype(Z.dtype, self.device_), self.device_)
        decoder = self._decoder_for(data.dtype)
        likelihood = self._module_for(self._likelihood(), data.dtype)

        def decode(z, _):
            scale = None if library is None else z[:, width:]
            return likelihood.expected(decoder(z[:, :width]), scale).to(z.dtype)

        with self._threads(), torch.no_grad(), frozen(decoder), autocast(self.precision, self.device_):
            return map_rows(
                data,
                decode,
                width=self.n_features_in_,
                out_dtype=output_dtype(Z),
                batch_size=self._transform_batch_size(),
            )

    @tensors_in
    def score(self, X, y=None):
        """Negative mean reconstruction loss per observed entry (higher is better).

        The samples are projected with :meth:`transform`, decoded, and the
        loss (``loss_``) is averaged over their observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        data = self._rows(X, reset=False)
        decoder = self._decoder_for(data.dtype)
        likelihood = self._module_for(self._likelihood(), data.dtype)
        # Inference and the loss in float32, whatever the precision: a score is compared.
        with self._threads():
            Z = self._latents_of(data, decoder)
        total, n_observed = 0.0, 0
        with self._threads(), torch.no_grad(), frozen(decoder):
            for rows, x, mask in data.batches(slices(len(data), self._transform_batch_size())):
                z = torch.as_tensor(Z[rows], dtype=data.dtype, device=data.device)
                total += float(decoded_losses(decoder, z, x, likelihood, mask).sum())
                n_observed += x.numel() if mask is None else int(mask.sum())
        return -total / n_observed

    # ---- pickling ---------------------------------------------------------------

    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__ itself.
        state = dict(super().__getstate__())
        for name, value in state.items():
            # CPU tensors for every torch module and tensor, whatever its name
            # (prior_ included), so that a model fitted on a GPU loads anywhere.
            if isinstance(value, torch.nn.Module):
                state[name] = copy.deepcopy(value).cpu()
            elif isinstance(value, torch.Tensor):
                state[name] = value.detach().cpu()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "decoder_" in state:
            self.device_ = runnable_device(self.device_)
            for name, value in state.items():
                if isinstance(value, torch.nn.Module):
                    setattr(self, name, getattr(self, name).to(self.device_))
