"""The auto-decoder family: a free latent vector per training sample.

:class:`BaseAutoDecoder` gives the representation hooks of
:class:`._base.BaseRepresentationEstimator`: a latent table trained jointly
with the decoder by a row-sparse optimiser, and latent inference (with the
decoder frozen) for held-out and new samples, from a deterministic start
(``init``). :class:`AutoDecoder` and :class:`ConvAutoDecoder` add the
architecture and their parameters.
"""

import time
import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if

from . import _distributed as distributed
from ._amortized import encode, fit_encoder
from ._architectures import ConvDecoderMixin, MLPDecoderMixin
from ._base import (
    COMMON_SETTINGS,
    BaseRepresentationEstimator,
    at_least_one,
    nullable,
    positive,
    seeded_cpu_rng,
)
from ._compat import Interval, StrOptions, check_is_fitted
from ._data import map_rows, output_dtype, slices
from ._devices import autocast
from ._inference import METHODS, decode_in_chunks, frozen, infer_latents, nearest_latents
from ._losses import sample_losses
from ._model_selection import gaussian_neg_log_prior, laplace_log_likelihood
from ._pca_init import linear_layer, pca_project, pca_start, set_linear_decoder
from ._priors import (
    COVARIANCE_TYPES,
    GaussianMixturePrior,
    best_prior_starts,
    prior_penalty,
)
from ._sparse_optim import make_latent_optimizer
from .nn import LatentTable

# Training latents start as N(0, LATENT_INIT_STD^2): small, so that the decoder
# starts near its mean output, but not zero, so that samples differ at once.
LATENT_INIT_STD = 0.01
# Inference steps per epoch on the held-out latents when early stopping; they
# restart from the previous epoch's values, so a few steps track the decoder.
VALID_STEPS_PER_EPOCH = 10
INIT_STRATEGIES = ("zeros", "mean", "nearest", "encoder")
# init="nearest" compares a sample with at most this many decoded training
# values (rows x features; 128 MiB in float32), on evenly spaced rows.
NEAREST_MAX_VALUES = 2**25

# The PCA start's SVD runs on the whole training set up to this many values
# (rows x features; 128 MiB in float64), on evenly spaced rows holding
# PCA_SUBSAMPLE_VALUES above it (16 MiB: out-of-core data stays small in memory).
PCA_START_MAX_VALUES = 2**24
PCA_SUBSAMPLE_VALUES = 2**21
# Dirichlet concentration on the mixture weights (bulkDGD's): discourages
# components that lose all their samples. Counted with every sample (the DGD
# weighting), it holds the weights near uniform; a flat one (1) let them drift
# and clustered MNIST worse even when the mixture starts from EM (test ARI
# 0.527 against 0.559, seed 0, latent learning rate 0.1, batch size 128).
PRIOR_WEIGHT_CONCENTRATION = 5.0
# With verbose >= 1, inference reports its progress when it has run this many
# seconds, then at most once per interval (short calls stay silent).
PROGRESS_INTERVAL = 5.0
# Floor of the estimated noise variance (a perfect fit must not give -inf).
MIN_NOISE_VARIANCE = 1e-12

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
    """Progress lines of a long inference (``verbose >= 1``), at most one per interval."""

    def __init__(self, n_samples, verbose):
        self.n_samples, self.verbose = n_samples, verbose
        self.done, self.start = 0, time.perf_counter()
        self.next_report = self.start + PROGRESS_INTERVAL
        self.reported = False

    def update(self, n_rows):
        """Count ``n_rows`` more inferred samples; print a line when one is due."""
        self.done += n_rows
        now = time.perf_counter()
        if self.verbose >= 1 and now >= self.next_report and self.done < self.n_samples:
            self._print(now)
            self.next_report = now + PROGRESS_INTERVAL

    def close(self):
        """A last line when progress was reported."""
        if self.reported:
            self._print(time.perf_counter())

    def _print(self, now):
        self.reported = True
        print(
            f"inference: {self.done:,}/{self.n_samples:,} samples "
            f"({self.done / self.n_samples:.0%}), {now - self.start:.1f} s",
            flush=True,
        )


class BaseAutoDecoder(BaseRepresentationEstimator):
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
        "latent_prior": [StrOptions({"none", "gmm"})],
        "n_prior_components": [at_least_one()],
        "prior_covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
    }
    _training_settings = TRAINING_SETTINGS
    _torch_attributes = ("decoder_", "encoder_", "likelihood_")

    # ---- training: the latent table --------------------------------------------

    def _make_representation(self, decoder, data, settings, warm, generator, n_held_out):
        """A latent table with a row-sparse optimiser, and held-out inference."""
        if warm:
            # Project the data on the current manifold: a start as good as the
            # decoder, whether or not X is the previous fit's data.
            init = torch.as_tensor(self._encode(data, decoder), dtype=torch.float32)
        elif self._pca_start_applies(data):
            init = self._pca_start(decoder, data, settings["n_components"], settings["loss"])
        else:
            init = LATENT_INIT_STD * torch.randn(len(data), settings["n_components"], generator=generator)
        # A data-driven start for the latent prior to fit (see _make_prior).
        self._prior_start = init if warm or self._pca_start_applies(data) else None
        table = LatentTable(len(data), settings["n_components"], init=init).to(data.device)
        optimizer = partial(
            make_latent_optimizer,
            name=settings["latent_optimizer"],
            lr=settings["latent_learning_rate"],
            momentum=settings["latent_momentum"],
        )
        held_out = None
        if n_held_out:
            held_out = self._held_out_inference(decoder, table, settings, n_held_out, data.device)
        return table, optimizer, held_out

    def _pca_start_applies(self, data):
        """PCA starts for MLP decoders, and for conv decoders with a mixture prior.

        The conv presets keep the published small random start, except with a
        mixture prior, which needs a data-driven start to cluster (from the
        DGD ball start it does not; see :mod:`._priors`). Under
        ``torch.distributed`` each rank sees only its shard (the ranks' PCA
        bases would differ).
        """
        return (not self._random_latent_start or self.latent_prior == "gmm") and not distributed.is_active()

    def _pca_start(self, decoder, data, n_components, likelihood):
        """Whitened PCA latents of the training rows; a linear decoder starts at PCA itself.

        A linear decoder then begins at the least-squares optimum that
        training would otherwise approach over many epochs, and a nonlinear
        one from the best linear coordinates (as GLO does). The SVD sees at
        most PCA_START_MAX_VALUES values; on larger data it runs on evenly
        spaced rows (PCA_SUBSAMPLE_VALUES values), and every row then gets its
        projection on their basis, batch by batch.
        """
        n_features = data.n_features

        def values(rows):  # what the likelihood starts from (log-normalised counts, say)
            return likelihood.start_values(data.host_array(rows, np.float64))

        if len(data) * n_features <= PCA_START_MAX_VALUES:
            latents, weight, bias = pca_start(values(slice(None)), n_components)
        else:
            n_fit = min(max(PCA_SUBSAMPLE_VALUES // n_features, n_components + 1), len(data))
            subset = np.unique(np.linspace(0, len(data) - 1, n_fit).round().astype(np.int64))
            _, weight, bias = pca_start(values(subset), n_components)
            latents = np.empty((len(data), n_components))
            for rows in slices(len(data), max(PCA_SUBSAMPLE_VALUES // n_features, 1)):
                latents[rows] = pca_project(values(rows), weight, bias)
        # PCA is the optimum of a dense linear decoder under MSE only.
        dense = getattr(self, "connectivity", None) is None  # conv estimators have none
        if linear_layer(decoder) is not None and likelihood.pca_is_optimum and dense:
            set_linear_decoder(decoder, weight, bias)
        return torch.as_tensor(latents, dtype=torch.float32)

    def _held_out_inference(self, decoder, table, settings, n_held_out, device):
        """``held_out(index, x, mask)``: held-out latents, tracked across epochs.

        A few inference steps per epoch, from the previous epoch's values,
        with the decoder frozen.
        """
        reference = table.weight.detach()
        if self.init == "zeros":
            state = torch.zeros(n_held_out, settings["n_components"], device=device)
        else:  # "nearest" and "encoder" have nothing to start from yet: the mean
            state = reference.mean(dim=0, keepdim=True).expand(n_held_out, -1).clone()

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

        return held_out

    def _store_representation(self, module, data, train, valid, generator, prior):
        """Training latents, the inference aids, then the held-out rows' latents.

        Held-out rows are inferred against the final decoder (the best one
        when early stopping restored it), like any new sample. Under
        ``torch.distributed`` each rank contributes its shard's rows.
        """
        dtype = output_dtype(data.X)
        self._store_prior(prior)
        train, latents = distributed.all_gather_rows(train, module.weight)
        latents = latents.numpy().astype(dtype)
        self.embedding_ = latents
        self.latent_scale_ = _rms(latents)
        self.__dict__.pop("noise_variance_", None)
        if self._likelihood().fits_noise_variance:  # score_samples, the prior's weight
            self.noise_variance_ = self._fit_noise_variance(data.take(train), latents)
        for name in ("_references_", "encoder_", "encoder_loss_curve_"):
            self.__dict__.pop(name, None)  # from a previous fit with another init
        if self.init == "encoder":
            self._fit_encoder(data.take(train), generator)
        if valid is not None:
            with autocast(self.precision, self.device_):
                inferred = self._encode(data.take(valid), self._decoder_for(data.dtype))
            valid, inferred = distributed.all_gather_rows(valid, torch.from_numpy(inferred))
            embedding = np.empty((len(train) + len(valid), self.n_components_), dtype=dtype)
            embedding[train] = latents
            embedding[valid] = inferred.numpy()
            self.embedding_ = embedding
        if self.init == "nearest":
            latents = torch.as_tensor(self.embedding_, dtype=torch.float32)
            self._references_ = decode_in_chunks(
                self.decoder_, latents[self._nearest_rows(len(latents))], self.inference_batch_size, self.device_
            ).cpu()

    # ---- the latent prior ----------------------------------------------------------

    def _make_prior(self, settings, generator):
        """A Gaussian mixture on the latents for ``latent_prior="gmm"``, else None.

        When the training latents have a data-driven start (whitened PCA
        scores, or a warm start's projections), the mixture is fitted to
        that start by EM and its hyper-priors centred on it
        (:meth:`~._priors.GaussianMixturePrior.init_from`): training then
        begins at the Gaussian mixture of the PCA scores, a good clustering
        already, and refines it jointly with the decoder (as DEC and VaDE
        start from a fitted mixture). Otherwise (small random latents) the
        means start uniformly in the softball, as in the DGD code.
        """
        start = self.__dict__.pop("_prior_start", None)  # set by _make_representation
        if self.latent_prior == "none":
            return None
        prior = GaussianMixturePrior(
            settings["n_components"],
            self.n_prior_components,
            covariance_type=self.prior_covariance_type,
            weight_concentration=PRIOR_WEIGHT_CONCENTRATION,
            generator=generator,
        )
        if start is not None and len(start) >= self.n_prior_components:
            prior.init_from(start, generator=generator)
        return prior

    def _store_prior(self, prior):
        """``prior_`` and its parameters in scikit-learn's GaussianMixture shapes."""
        for name in ("prior_", "prior_weights_", "prior_means_", "prior_covariances_"):
            self.__dict__.pop(name, None)
        if prior is None:
            return
        self.prior_ = prior.eval()
        self.prior_weights_ = prior.weights.cpu().numpy().astype(np.float64)
        self.prior_means_ = prior.means.cpu().numpy().astype(np.float64)
        self.prior_covariances_ = prior.covariances.cpu().numpy().astype(np.float64)

    def _has_prior(self):
        """Whether the prior's methods exist: ``latent_prior="gmm"``."""
        return self.latent_prior == "gmm"

    def _check_prior(self, method):
        check_is_fitted(self)
        if getattr(self, "prior_", None) is None:
            raise AttributeError(
                f"{method} needs a fitted latent prior: refit with latent_prior='gmm'."
            )

    def _prior_for(self, dtype):
        return self._module_for(self.prior_, dtype)

    @available_if(_has_prior)
    def predict_proba(self, X):
        """Posterior probability of each mixture component for each sample.

        The samples' latents are inferred with :meth:`transform`; the
        probabilities are the prior's responsibilities at those latents.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_prior_components)
        """
        self._check_prior("predict_proba")
        Z = self.transform(X)
        prior = self._prior_for(torch.float64)
        with torch.no_grad():
            return prior.responsibilities(torch.as_tensor(Z, dtype=torch.float64)).numpy()

    @available_if(_has_prior)
    def predict(self, X):
        """Most likely mixture component of each sample (a clustering).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.predict_proba(X).argmax(axis=1)

    @available_if(_has_prior)
    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted generative model.

        Latents are drawn from the mixture prior and decoded.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            Seeds the draw (a local generator; global RNG untouched).

        Returns
        -------
        X : ndarray of shape (n_samples, ``n_features_in_``)
            Decoded samples, in the data's space (pixels in [0, 1] for the
            image estimators, probabilities for ``loss="bce"``).
        y : ndarray of shape (n_samples,)
            Component of each sample.
        """
        self._check_prior("sample")
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        z, y = self.prior_.sample(int(n_samples), generator=torch.Generator().manual_seed(seed))
        X = self.inverse_transform(z.detach().cpu().numpy().astype(np.float32))
        return X, y.cpu().numpy()

    def score_samples(self, X):
        """Log-likelihood of each sample, its latent integrated out (Laplace).

        ``log p(x) = log integral p(x | z) p(z) dz`` over the sample's
        observed entries, by Laplace's method around the most likely latent
        ``z*`` (reached from the :meth:`transform` latent by a few
        Levenberg-Marquardt steps): ``log p(x | z*) + log p(z*) +
        m/2 log(2 pi) - 1/2 log det H``, with ``H`` the Gauss-Newton Hessian
        of the negative log-posterior. ``p(x | z)`` is Bernoulli for
        ``loss="bce"`` and Gaussian with variance ``noise_variance_`` for
        ``loss="mse"``; ``p(z)`` is the mixture prior with
        ``latent_prior="gmm"``, else a Gaussian fitted to the training
        latents. For a linear decoder under MSE this is probabilistic PCA's
        log-likelihood. Unlike :meth:`score`, its mean on held-out data does
        not keep rising with ``n_components``: use it to choose the latent
        size without labels (:func:`~sklearn_autodecoder.log_likelihood_scorer`).
        Each Levenberg-Marquardt step costs about ``n_components`` decoder
        passes per sample (forward-mode Jacobian): with large latents it is
        much slower than :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        data = self._rows(X, reset=False)
        decoder = self._decoder_for(data.dtype)
        with self._threads(), autocast(self.precision, self.device_):
            Z = self._encode(data, decoder)
        neg_log_prior = self._neg_log_prior(data.dtype, data.device)
        variance = getattr(self, "noise_variance_", None)
        likelihood = self._module_for(self._likelihood(), data.dtype)
        out = np.empty(len(data), dtype=np.float64)
        with self._threads(), frozen(decoder):
            for rows, x, mask in data.batches(slices(len(data), self.inference_batch_size)):
                z = torch.as_tensor(Z[rows], dtype=data.dtype, device=data.device)
                out[rows] = laplace_log_likelihood(
                    decoder, x, mask, z, loss=likelihood,
                    neg_log_prior=neg_log_prior, noise_variance=variance,
                ).cpu().numpy()
        return out

    def _neg_log_prior(self, dtype, device):
        """``-log p(z)``: the mixture prior, else a Gaussian fitted to the training latents."""
        if getattr(self, "prior_", None) is not None:
            prior = self._prior_for(dtype)
            return lambda z: prior_penalty(prior, z)
        return gaussian_neg_log_prior(torch.as_tensor(self.embedding_, dtype=dtype, device=device))

    def _fit_noise_variance(self, data, latents):
        """Variance of the Gaussian noise of MSE, as probabilistic PCA estimates it.

        The residual sum of squares of the training rows ``data`` at their
        fitted ``latents``, over the observed entries, divided by their
        number less the latents' degrees of freedom (``n_components`` per
        sample).
        """
        decoder, likelihood = self.decoder_, self._likelihood()
        total, count = 0.0, 0
        Z = torch.as_tensor(latents, dtype=torch.float32)
        with torch.no_grad(), frozen(decoder):
            for rows, x, mask in data.batches(slices(len(data), self.inference_batch_size)):
                z = Z[rows].to(data.device)
                total += float(sample_losses(decoder(z).float(), x, likelihood, mask).sum())
                count += x.numel() if mask is None else int(mask.sum())
        dof = max(count - Z.numel(), 1)
        return max(total / dof, MIN_NOISE_VARIANCE)

    def _fit_encoder(self, data, generator):
        """Train the amortised encoder of init="encoder" on the training rows.

        It regresses the fitted latents from the samples (targets fixed), on
        clean and randomly masked copies, plus the frozen decoder's
        reconstruction loss of its output.
        """
        with seeded_cpu_rng(generator):
            encoder = self._build_encoder(data.n_features, self.settings_)
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

    def _encode(self, data, decoder):
        """Inferred latents of ``data``, chunk by chunk (the transform hook)."""
        init = self._init_function(decoder, data.dtype, data.device)
        likelihood = self._module_for(self._likelihood(), data.dtype)
        unconverged = []
        progress = _InferenceProgress(len(data), self.verbose)

        def infer(x, mask):
            result = self._infer_tensor(decoder, x, mask, likelihood, data.device, init=init)
            if hasattr(result, "converged"):
                unconverged.append(int((~result.converged).sum()))
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
            warnings.warn(
                f"{sum(unconverged)} of {len(data)} samples ({sum(unconverged) / len(data):.1%}) "
                f"reached inference_max_iter={self.inference_max_iter} before their latent "
                "converged; increase inference_max_iter or inference_tol.",
                ConvergenceWarning,
                stacklevel=3,
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
            latent_l2=self.settings_["latent_l2"],
            penalty=self._prior_penalty(X_t.dtype),
            batch_size=self.inference_batch_size,
            device=device,
        )

    def _prior_penalty(self, dtype):
        """``-log p(z)`` under the fitted mixture prior, in the loss's units (or None)."""
        if getattr(self, "prior_", None) is None:
            return None
        prior, weight = self._prior_for(dtype), self._prior_weight()
        return lambda z: weight * prior_penalty(prior, z)

    def _prior_weight(self):
        """The prior's nats in the units of the reconstruction loss (fitted noise variance)."""
        return self._likelihood().units_per_nat(getattr(self, "noise_variance_", None))

    def _init_function(self, decoder, dtype, device):
        """``init(x, mask) -> z0`` of ``self.init``: each row from its own sample."""
        latents = torch.as_tensor(self.embedding_, dtype=dtype, device=device)
        likelihood = self._module_for(self._likelihood(), dtype)
        if getattr(self, "prior_", None) is not None and self.init in ("zeros", "mean"):
            # With a mixture prior, start at the component mean or training
            # latent (the rows of init="nearest") with the lowest objective,
            # reconstruction plus prior: more often in the right cluster than
            # the best mean (benchmarks/bench_prior.py, seed 0: test ARI 0.617
            # against 0.594 from the means alone; predict 4.5 s against 2.4 s).
            prior = self._prior_for(dtype)
            candidates = torch.cat([prior.loc.detach().to(device), latents[self._nearest_rows(len(latents))]])
            references = decode_in_chunks(decoder, candidates, self.inference_batch_size, device).to(dtype)

            def best_start(x, m):
                _, z0 = best_prior_starts(
                    x, m, prior, candidates, references, loss=likelihood, prior_weight=self._prior_weight()
                )
                return z0[:, 0].clone()

            return best_start
        if self.init == "mean":
            mean = latents.mean(dim=0, keepdim=True)
            return lambda x, m: mean.expand(len(x), -1).clone()
        if self.init == "nearest":
            rows = self._nearest_rows(len(latents))
            references = getattr(self, "_references_", None)
            if references is None or len(references) != len(rows):  # init set after fit
                references = decode_in_chunks(decoder, latents[rows], self.inference_batch_size, device)
            references = torch.as_tensor(references, dtype=dtype, device=device)
            return lambda x, m: nearest_latents(x, m, references, latents[rows], likelihood)
        if self.init == "encoder":
            if getattr(self, "encoder_", None) is None:
                raise ValueError(
                    "init='encoder' needs the encoder trained at the end of fit; "
                    "refit with init='encoder'."
                )
            encoder = self._module_for(self.encoder_, dtype)
            return lambda x, m: encode(encoder, x, m)
        return lambda x, m: torch.zeros(len(x), latents.shape[1], dtype=dtype, device=x.device)

    def _nearest_rows(self, n_train):
        """Training rows that init="nearest" compares with (evenly spaced)."""
        n_rows = min(n_train, max(1, NEAREST_MAX_VALUES // self.n_features_in_))
        return torch.linspace(0, n_train - 1, n_rows).round().long()

    def _transform_batch_size(self):
        return self.inference_batch_size

    def transform(self, X):
        """Infer the latent vector of each sample with the decoder frozen.

        Each sample's latent minimises its reconstruction loss over its
        observed (non-NaN) entries, by Adam from a deterministic start; the
        rows are independent of each other.

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

    max_iter : int, default=200
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

    init : {"zeros", "mean", "nearest", "encoder"}, default="zeros"
        Starting latent of inference, deterministic and computed for each
        sample from that sample alone: zeros; the mean training latent;
        "nearest", the training latent whose decoding has the lowest loss on
        the sample's observed entries; or "encoder", the output of an
        amortised encoder (``encoder_``) trained at the end of :meth:`fit` to
        map the training samples (clean and randomly masked) to their
        latents. "encoder" needs the fewest inference steps (see
        ``benchmarks/bench_inference.py``).

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
        ``init`` "zeros" or "mean", inference starts from the component
        mean or training latent (the rows of "nearest") with the lowest
        objective. See ``benchmarks/bench_prior.py``.
    n_prior_components : int, default=10
        Number of mixture components of ``latent_prior="gmm"``.
    prior_covariance_type : {"full", "diag", "spherical"}, default="full"
        Covariance of each mixture component: a full matrix, one variance
        per latent dimension, or one per component. "full" clusters far
        better (MNIST test ARI 0.62 against 0.31 for "diag", seed 0; see
        ``benchmarks/bench_prior.py``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the samples, infer their latents
        with the decoder frozen after each epoch (a few steps from the
        previous epoch's values), and stop when the validation loss has not
        improved (see ``tol``) for ``n_iter_no_change`` epochs. The best
        decoder and training latents are restored, and the held-out samples'
        rows of ``embedding_`` are inferred against that decoder.

    validation_fraction : float, default=0.1
        Fraction of the samples held out when ``early_stopping`` is True or a
        callback monitors a validation quantity.

    n_iter_no_change : int, default=10
        Patience of the convergence test (see ``tol``), in epochs.

    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (e.g. ``LRScheduler``, ``Checkpoint``) run
        during training after the built-in ones. A callback that monitors a
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
        Number of epochs run.

    loss_curve_ : list of float
        Mean training loss per sample, per epoch.

    history_ : skorch.history.History
        skorch's training history (losses, durations, validation loss).

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
        inference_method="lbfgs",
        inference_max_iter=100,
        inference_learning_rate=0.1,
        inference_tol=2e-4,
        tol=1e-4,
        init="zeros",
        encoder_max_iter=20,
        inference_batch_size=256,
        latent_prior="none",
        n_prior_components=10,
        prior_covariance_type="full",
        early_stopping=False,
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

    init : {"zeros", "mean", "nearest", "encoder"}, default="zeros"
        Starting latent of inference, deterministic and computed for each
        sample from that sample alone: zeros; the mean training latent;
        "nearest", the training latent whose decoding has the lowest loss on
        the sample's observed entries; or "encoder", the output of an
        amortised encoder (``encoder_``) trained at the end of :meth:`fit` to
        map the training samples (clean and randomly masked) to their
        latents. "encoder" needs the fewest inference steps (see
        ``benchmarks/bench_inference.py``).

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
        ``init`` "zeros" or "mean", inference starts from the component
        mean or training latent (the rows of "nearest") with the lowest
        objective. See ``benchmarks/bench_prior.py``.
    n_prior_components : int, default=10
        Number of mixture components of ``latent_prior="gmm"``.
    prior_covariance_type : {"full", "diag", "spherical"}, default="full"
        Covariance of each mixture component: a full matrix, one variance
        per latent dimension, or one per component. "full" clusters far
        better (MNIST test ARI 0.62 against 0.31 for "diag", seed 0; see
        ``benchmarks/bench_prior.py``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the samples, infer their latents
        with the decoder frozen after each epoch (a few steps from the
        previous epoch's values), and stop when the validation loss has not
        improved (see ``tol``) for ``n_iter_no_change`` epochs. The best
        decoder and training latents are restored, and the held-out samples'
        rows of ``embedding_`` are inferred against that decoder.

    validation_fraction : float, default=0.1
        Fraction of the samples held out when ``early_stopping`` is True or a
        callback monitors a validation quantity.

    n_iter_no_change : int, default=10
        Patience of the convergence test (see ``tol``), in epochs.

    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (e.g. ``LRScheduler``, ``Checkpoint``) run
        during training after the built-in ones. A callback that monitors a
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
        Number of epochs run.

    loss_curve_ : list of float
        Mean training loss per sample, per epoch.

    history_ : skorch.history.History
        skorch's training history (losses, durations, validation loss).

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
        inference_learning_rate=0.1,
        inference_tol=2e-4,
        tol=1e-4,
        init="zeros",
        encoder_max_iter=20,
        inference_batch_size=256,
        latent_prior="none",
        n_prior_components=10,
        prior_covariance_type="full",
        early_stopping=False,
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
