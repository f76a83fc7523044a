"""Missing-value imputation with an auto-decoder."""

import warnings
from numbers import Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._missing import is_scalar_nan

from ._autodecoder import AutoDecoder
from ._data import RowData
from ._doc_link import DOC_LINK_MODULE, DOC_LINK_TEMPLATE
from ._compat import HasMethods, IntegerInterval, _fit_context, check_is_fitted, validate_data
from ._inference import _chunks, decode_in_chunks, pairwise_losses
from ._persistence import SaveMixin
from ._load import LowLoadWarning
from ._pca_init import n_parameters, ppca, set_linear_decoder
from ._threads import resolve_n_threads, torch_threads

# The default model's EM. Candidates are scanned with a loose tolerance on the
# mean log-likelihood per observed entry (each warm-started from the previous
# size); the scan of a noise model stops when the AIC has not improved for
# SCAN_PATIENCE sizes in a row, and the winner is refitted more tightly.
SCAN_TOL, SCAN_MAX_ITER, SCAN_PATIENCE = 1e-3, 100, 3
# Sparse X: rows with a missing entry are made dense in blocks of about this many values.
DENSE_BLOCK_VALUES = 2**22
FINAL_TOL, FINAL_MAX_ITER = 1e-4, 500
NOISE_MODELS = ("isotropic", "diagonal")


def _aicc(log_likelihood, n_params, n_values):
    """Small-sample corrected AIC, the sample size being the observed entries.

    The correction ``2 k (k + 1) / (N - k - 1)`` keeps a model with nearly
    as many parameters as data values (few rows, many latents) from winning
    on a degenerate likelihood; it is small for a few hundred rows.
    """
    if n_values - n_params - 1 <= 0:
        return np.inf
    return -2 * log_likelihood + 2 * n_params + 2 * n_params * (n_params + 1) / (n_values - n_params - 1)


def select_linear_gaussian(X, *, max_components=None, noise_models=NOISE_MODELS):
    """The linear Gaussian latent model of X with the lowest (corrected) AIC.

    Fits probabilistic PCA (isotropic noise) and factor analysis (one noise
    variance per feature) with 1, 2, ... latents by EM on the observed
    entries, each size warm-started from the previous one, and keeps the
    fit with the lowest corrected Akaike information criterion
    ``AICc = -2 log L + 2 k + 2 k (k + 1) / (N - k - 1)`` (``log L``
    integrates the latents and the missing entries out, ``k`` counts free
    parameters, ``N`` the observed entries). A noise model's scan stops when
    its AICc has not improved for 3 sizes in a row.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data with NaN for missing entries, on comparable scales
        (standardised).
    max_components : int, default=None
        Largest latent size tried; None tries up to ``n_features - 1`` (and
        below ``n_samples``).
    noise_models : tuple of {"isotropic", "diagonal"}
        Noise models tried.

    Returns
    -------
    result : PPCAResult or None
        The selected fit (refitted with a tighter tolerance); None when X
        has a single feature or sample (no latent model to fit).
    noise_model : str or None
        Its noise model.
    aic : dict
        ``{(noise_model, n_components): AICc}`` of every candidate scanned.
    """
    n, d = X.shape
    n_values = int((~np.isnan(X)).sum())
    top = min(d - 1, n - 1) if max_components is None else min(max_components, d - 1, n - 1)
    best, scores = None, {}
    for noise_model in noise_models:
        start, stalled, best_here = None, 0, np.inf
        for m in range(1, top + 1):
            result = ppca(X, m, noise_model=noise_model, tol=SCAN_TOL, max_iter=SCAN_MAX_ITER, start=start)
            start = (result.weight, result.bias, result.noise_variance)
            aic = _aicc(n * result.log_likelihood, n_parameters(d, m, noise_model), n_values)
            scores[(noise_model, m)] = aic
            if best is None or aic < best[0]:
                best = (aic, result, noise_model)
            stalled = 0 if aic < best_here else stalled + 1
            best_here = min(best_here, aic)
            if stalled >= SCAN_PATIENCE:
                break
    if best is None:
        return None, None, scores
    _, result, noise_model = best
    result = ppca(
        X, result.weight.shape[1], noise_model=noise_model, tol=FINAL_TOL, max_iter=FINAL_MAX_ITER,
        start=(result.weight, result.bias, result.noise_variance),
    )
    return result, noise_model, scores


def linear_gaussian_latents(model, X):
    """Exact inferred latents of a linear auto-decoder with ``latent_l2`` (the default model).

    For a linear decoder ``x = W z + b`` the inference objective
    ``||x_o - W_o z - b_o||^2 + latent_l2 ||z||^2`` is quadratic; its
    minimiser ``(W_o^T W_o + latent_l2 I)^-1 W_o^T (x_o - b_o)`` is one
    m x m solve per sample, where iterative inference needs several steps
    when the problem is ill-conditioned. Rows stay independent.

    Parameters
    ----------
    model : AutoDecoder
        A fitted auto-decoder with a linear decoder.
    X : ndarray of shape (n_samples, n_features)
        Samples in the model's units, NaN for missing entries.

    Returns
    -------
    Z : ndarray of shape (n_samples, ``n_components_``), in X's dtype
    """
    decoder = model._decoder_for(X.dtype)
    layer = next(m for m in decoder.modules() if isinstance(m, torch.nn.Linear))
    X_t, mask = RowData(X, layer.weight.dtype, "cpu", has_nan=True).host_batch(slice(None))
    device = model.device_
    W, b = layer.weight.detach().to(device), layer.bias.detach().to(device)
    eye = torch.eye(W.shape[1], dtype=W.dtype, device=device)
    parts = []
    with model._threads():
        for x, m in _chunks(X_t, mask, model.inference_batch_size, device):
            w = torch.ones_like(x) if m is None else m.to(x.dtype)
            r = (x - b) * w  # missing entries contribute nothing
            A = torch.einsum("nd,dk,dl->nkl", w, W, W) + model.latent_l2 * eye
            parts.append(torch.linalg.solve(A, (r @ W).unsqueeze(-1)).squeeze(-1).cpu())
    return torch.cat(parts).numpy().astype(X.dtype, copy=False)


def _missing_per_feature(X):
    """The number of missing (NaN) entries of each feature; a sparse X's are its stored NaN."""
    if sp.issparse(X):
        return np.bincount(X.indices[np.isnan(X.data)], minlength=X.shape[1])
    return np.isnan(X).sum(axis=0)


def _completion(model, X_hat, X):
    """What fills X's missing entries: the likelihood's expectation given each row's observed
    entries (for counts, the decoded proportions at the row's own library size)."""
    likelihood = getattr(model, "likelihood_", None)
    if likelihood is None:  # not one of the package's estimators: the decoding itself
        return X_hat
    x = torch.as_tensor(X)
    x_hat = torch.as_tensor(X_hat, dtype=x.dtype)
    with torch.no_grad():
        return likelihood.completion(x_hat, x, ~torch.isnan(x)).numpy().astype(X.dtype, copy=False)


class AutoDecoderImputer(SaveMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill in missing values with an auto-decoder's reconstruction.

    The auto-decoder is fitted on X with its NaN entries masked out of the
    loss. To impute a sample, its latent vector is inferred from its
    observed entries only (the decoder frozen), decoded, and the decoding
    fills the missing entries; observed entries are returned unchanged.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    estimator : AutoDecoder or ConvAutoDecoder, default=None
        The (unfitted) auto-decoder to use; it is cloned in :meth:`fit` and
        sees X as given. A missing entry gets its likelihood's expectation
        given the sample's observed entries: the decoding, or for the count
        likelihoods (``loss="poisson"``, ``"negative_binomial"``) the decoded
        proportion at the sample's own library size, estimated from its
        observed counts. For features on different scales, put a
        :class:`~sklearn.preprocessing.StandardScaler` (which keeps NaN)
        before the imputer, or use ``loss="bce"`` on data in [0, 1].

        None (the default, made for tabular data) fits a linear
        auto-decoder with a standard Gaussian prior on the latents and a
        Gaussian noise model, chosen from the data:

        - each feature is standardised with its observed mean and
          standard deviation;
        - probabilistic PCA (one noise variance) and factor analysis (one
          per feature) with 1 to ``n_features - 1`` latents are fitted by
          EM on the observed entries (missing entries and latents
          integrated out), and the one with the lowest AIC (corrected for
          small samples, counting observed entries) is kept;
        - the auto-decoder works in noise-whitened units (each feature also
          divided by the square root of its noise variance), so that its
          inference objective, squared error plus ``latent_l2=1`` times
          ``||z||^2``, is the negative log posterior: a sample's inferred
          latent is its posterior mean, and the decoding its conditional
          mean given the observed entries;
        - imputed values are clipped to each feature's range observed in
          :meth:`fit`, which guards against extrapolation from samples
          that break a near-exact linear relation between features.

        The fit is deterministic and takes no ``random_state``. Its latents
        are solved exactly (one small linear system per sample).
    missing_values : int, float or np.nan, default=np.nan
        The placeholder of the missing entries (e.g. a ``-999`` sentinel),
        as in scikit-learn's imputers; all its occurrences are imputed.
        With a value other than NaN, X must not hold NaN.
    n_candidates : int, default=1
        Completions averaged per sample. 1 decodes the estimator's own
        inferred latent. With k > 1, inference starts from each of the k
        training latents whose decodings best fit the sample's observed
        entries, and the k refined decodings are averaged: an approximation
        of the conditional mean, which lowers the squared error when much is
        missing (e.g. a whole image region), at k times the cost. Needs an
        auto-decoder (a model with ``embedding_``). The default model's
        posterior has a single mode: it ignores k.
    add_indicator : bool, default=False
        Append one 0/1 column per feature that had missing entries in
        :meth:`fit`, 1 where the entry was missing (scikit-learn's
        :class:`~sklearn.impute.MissingIndicator` with
        ``features="missing-only"``), so that a downstream model can use
        the missingness itself.
    keep_empty_features : bool, default=False
        Whether the features with no observed entry in :meth:`fit` are kept
        in the output of :meth:`transform`, filled with 0 where missing; by
        default they are dropped (as by scikit-learn's imputers).

    Attributes
    ----------
    estimator_ : AutoDecoder or ConvAutoDecoder
        The fitted auto-decoder. It works on ``(X - center_) / scale_``.
    center_ : ndarray of shape (``n_features_in_``,)
        Subtracted from X before the auto-decoder (zeros when ``estimator``
        is given).
    scale_ : ndarray of shape (``n_features_in_``,)
        Divides the centred X (ones when ``estimator`` is given).
    data_min_, data_max_ : ndarray of shape (``n_features_in_``,)
        Range that imputed values are clipped to: each feature's observed
        range in :meth:`fit` with the default model (infinite for a feature
        never observed), infinite when ``estimator`` is given.
    noise_model_ : {"isotropic", "diagonal"} or None
        Noise model of the default auto-decoder; None when ``estimator``
        is given.
    aic_ : dict or None
        Corrected AIC of every candidate of the default model, keyed by
        ``(noise_model, n_components)``; None when ``estimator`` is given.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` has
        feature names that are all strings.
    empty_features_ : ndarray of bool of shape (``n_features_in_``,)
        The features with no observed entry in :meth:`fit` (dropped by
        :meth:`transform` unless ``keep_empty_features=True``).
    indicator_features_ : ndarray of int or None
        The features that had missing entries in :meth:`fit`, whose
        indicator columns :meth:`transform` appends (in this order) when
        ``add_indicator=True``; None otherwise.

    See Also
    --------
    sklearn.impute.SimpleImputer : Per-feature constants.
    sklearn.impute.KNNImputer : Averages of the nearest complete neighbours.
    sklearn.impute.IterativeImputer : Round-robin regressions of each feature.

    Notes
    -----
    A sample with no observed entry gets the decoding of the mean training
    latent (with the default model: each feature's mean).

    The default model is probabilistic PCA (Tipping and Bishop, 1999) or
    factor analysis written as an auto-decoder; on standardised real tabular
    data (a few hundred rows, 7 to 30 features, 10 to 50% of the entries
    missing at random) its imputations were as good as or better than those
    of ``IterativeImputer`` and ``KNNImputer`` (see
    ``benchmarks/bench_tabular.py``). Nonlinear decoders need more samples
    than such tables hold to do better.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder import AutoDecoder, AutoDecoderImputer
    >>> X = np.random.RandomState(0).rand(200, 5)
    >>> X[0, 1] = np.nan
    >>> model = AutoDecoder(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    >>> X_filled = AutoDecoderImputer(model).fit_transform(X)
    >>> bool(np.isnan(X_filled).any()), bool(X_filled[0, 0] == X[0, 0])
    (False, True)
    """

    # The HTML repr's "?" link to the API page.
    _doc_link_module = DOC_LINK_MODULE
    _doc_link_template = DOC_LINK_TEMPLATE

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "missing_values": [Real],
        "n_candidates": [IntegerInterval(1, None, closed="left")],
        "add_indicator": ["boolean"],
        "keep_empty_features": ["boolean"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        missing_values=np.nan,
        n_candidates=1,
        add_indicator=False,
        keep_empty_features=False,
    ):
        self.estimator = estimator
        self.missing_values = missing_values
        self.n_candidates = n_candidates
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features

    def _validate(self, X, reset):
        """X as a float array with NaN for the missing entries (a copy if a sentinel was replaced).

        A sparse X comes back as CSR; its missing entries are its stored NaN.
        """
        if sp.issparse(X):
            self._check_sparse_input()
        if is_scalar_nan(self.missing_values):
            return validate_data(
                self, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan",
                accept_sparse="csr",
            )
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], copy=True)
        X[X == self.missing_values] = np.nan
        return X

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the auto-decoder on X, ignoring its missing (NaN) entries.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data with NaN for the missing entries. A sparse X's missing
            entries are its stored NaN (its other entries, zeros included,
            are observed); it needs an ``estimator`` that takes sparse input
            (the default model centres the features).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        X = self._validate(X, reset=True)
        missing_per_feature = _missing_per_feature(X)
        if (missing_per_feature == X.shape[0]).all():
            raise ValueError(
                f"Every entry of X (shape {X.shape}) is missing: there is nothing to learn "
                "the imputations from."
            )
        self.empty_features_ = missing_per_feature == X.shape[0]
        self.indicator_features_ = np.flatnonzero(missing_per_feature > 0) if self.add_indicator else None
        if self.estimator is None:
            self._fit_linear_gaussian(X)
        else:
            self.center_ = np.zeros(X.shape[1])
            self.scale_ = np.ones(X.shape[1])
            self.data_min_ = np.full(X.shape[1], -np.inf)
            self.data_max_ = np.full(X.shape[1], np.inf)
            self.noise_model_, self.aic_ = None, None
            self.estimator_ = clone(self.estimator).fit(X)
        return self

    def _fit_linear_gaussian(self, X):
        """The default model: the linear Gaussian latent model with the lowest AICc."""
        X64 = X.astype(np.float64)
        observed = ~np.isnan(X64)
        seen = observed.any(axis=0)
        # Moments of X / 2**k, k per feature from its largest magnitude: exact
        # (powers of two), and their squares neither overflow (X near 1e200)
        # nor underflow (near 1e-200), so the imputations do not depend on X's units.
        magnitude = np.ones(X.shape[1])
        magnitude[seen] = np.nanmax(np.abs(X64[:, seen]), axis=0)
        unit = np.ldexp(1.0, np.frexp(np.where(magnitude > 0, magnitude, 1.0))[1])
        center = np.zeros(X.shape[1])
        std = np.ones(X.shape[1])
        center[seen] = np.nanmean(X64[:, seen] / unit[seen], axis=0) * unit[seen]
        std[seen] = np.nanstd(X64[:, seen] / unit[seen], axis=0) * unit[seen]
        self.data_min_ = np.full(X.shape[1], -np.inf)
        self.data_max_ = np.full(X.shape[1], np.inf)
        self.data_min_[seen] = np.nanmin(X64[:, seen], axis=0)
        self.data_max_[seen] = np.nanmax(X64[:, seen], axis=0)
        std[~(std > 0)] = 1.0  # constant or unseen features
        X_std = (X64 - center) / std
        # EM's products cost about n x d^2 per iteration; small tables get one
        # BLAS thread (many would wait on each other on a busy machine).
        with torch_threads(resolve_n_threads(None, flops=X_std.size * X_std.shape[1])):
            result, noise_model, aic = select_linear_gaussian(X_std)
        if result is None:  # a single feature: the others cannot inform it
            weight, bias, noise = np.zeros((X.shape[1], 1)), np.zeros(X.shape[1]), 1.0
            latents = np.zeros((len(X), 1))
        else:
            weight, bias, noise, latents = result.weight, result.bias, result.noise_variance, result.latents
        root = np.sqrt(np.broadcast_to(noise, X.shape[1]))
        self.center_, self.scale_ = center, std * root
        self.noise_model_, self.aic_ = noise_model, aic
        # The auto-decoder runs its usual fit (one epoch) for its fitted
        # state, then takes the EM solution: in noise-whitened units the
        # decoder is (W, b) / sqrt(noise) and the prior N(0, I) is latent_l2=1.
        X_white = ((X64 - self.center_) / self.scale_).astype(X.dtype)
        rows = observed.any(axis=1)
        # A public AutoDecoder, so that the imputer saves and loads; the
        # imputer solves its latents exactly (linear_gaussian_latents), and
        # its own transform's Levenberg-Marquardt steps reach the same.
        model = AutoDecoder(
            n_components=weight.shape[1], hidden_layer_sizes=(), latent_l2=1.0, max_iter=1,
            init="zeros", inference_method="lm", device="cpu", random_state=0,
        )
        with warnings.catch_warnings():
            # The one epoch only builds the fitted state, and the prior
            # regularises: neither warning concerns the user.
            warnings.simplefilter("ignore", LowLoadWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_white[rows])
        set_linear_decoder(model.decoder_, weight / root[:, None], bias / root)
        model.embedding_ = latents[rows].astype(X.dtype)
        self.estimator_ = model

    def transform(self, X):
        """Replace the missing entries of X by the auto-decoder's reconstruction.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data with ``missing_values`` (NaN by default) for the missing
            entries; a sparse X's are its stored NaN.

        Returns
        -------
        X_imputed : ndarray or sparse matrix of shape (n_samples, n_features_out)
            X with its missing entries filled in, observed entries
            unchanged, in X's dtype; without the features empty in
            :meth:`fit` unless ``keep_empty_features=True``, and followed by
            the indicator columns when ``add_indicator=True``. CSR for a
            sparse X: only its rows with a missing entry are made dense, a
            block at a time.
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        if sp.issparse(X):
            return self._transform_sparse(X)
        missing = np.isnan(X)
        X_imputed = X.copy()
        if missing.any():
            self._fill(X, missing, X_imputed)
        X_imputed[:, self.empty_features_] = np.where(
            missing[:, self.empty_features_], 0, X_imputed[:, self.empty_features_]
        )
        if not self.keep_empty_features:
            X_imputed = X_imputed[:, ~self.empty_features_]
        if self.indicator_features_ is not None:
            X_imputed = np.hstack([X_imputed, missing[:, self.indicator_features_].astype(X.dtype)])
        return X_imputed

    def _check_sparse_input(self):
        """Sparse X needs a model that sees it as it is, with NaN for its missing entries."""
        if self.estimator is None:
            raise ValueError(
                "The default model of AutoDecoderImputer centres every feature, which would make "
                "a sparse X dense. Pass X.toarray(), or an estimator that takes sparse X as it is, "
                "e.g. AutoDecoderImputer(AutoDecoder(loss='poisson')) for counts."
            )
        if not is_scalar_nan(self.missing_values):
            raise ValueError(
                f"A sparse X marks its missing entries as stored NaN; missing_values="
                f"{self.missing_values!r} applies to dense X only (its zeros are observed values)."
            )

    def _transform_sparse(self, X):
        """:meth:`transform` of a CSR matrix: its stored NaN filled, the rest kept sparse.

        Only the rows with a missing entry are made dense, a bounded block at a time.
        """
        X = X.copy()
        nan = np.flatnonzero(np.isnan(X.data))
        # The row of each stored NaN, ascending (CSR order).
        nan_rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[nan]
        rows = np.unique(nan_rows)
        step = max(1, DENSE_BLOCK_VALUES // max(X.shape[1], 1))
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            dense = X[block].toarray()
            missing = np.isnan(dense)
            filled = dense.copy()
            self._fill(dense, missing, filled)
            # The block's stored NaN: one slice of them, as the rows are ascending.
            first = np.searchsorted(nan_rows, block[0], side="left")
            stop = np.searchsorted(nan_rows, block[-1], side="right")
            entries = nan[first:stop]
            local = np.searchsorted(block, nan_rows[first:stop])
            X.data[entries] = filled[local, X.indices[entries]]
        indicator = sp.csr_matrix(
            (np.ones(len(nan), dtype=X.dtype), (nan_rows, X.indices[nan])), shape=X.shape
        )
        # Missing entries of features empty in fit: 0, as in the dense path.
        X.data[nan[self.empty_features_[X.indices[nan]]]] = 0
        if not self.keep_empty_features:
            X = X[:, ~self.empty_features_]
        if self.indicator_features_ is not None:
            X = sp.hstack([X, indicator[:, self.indicator_features_]], format="csr")
        return X

    def _fill(self, X, missing, X_imputed):
        """Write the model's completions into the missing entries of ``X_imputed``."""
        center, scale = self.center_.astype(X.dtype), self.scale_.astype(X.dtype)
        X_model = (X - center) / scale
        empty = missing.all(axis=1)
        # Only samples with missing entries need inference.
        rows = missing.any(axis=1) & ~empty
        X_hat = np.zeros_like(X)  # complete rows stay 0 (not garbage that would overflow below)
        if empty.any():
            X_hat[empty] = self.estimator_.inverse_transform(
                np.tile(self._mean_latent(X.dtype), (int(empty.sum()), 1))
            )
        if rows.any():
            X_hat[rows] = self._reconstruct(X_model[rows])
        X_hat = np.clip(X_hat * scale + center, self.data_min_, self.data_max_).astype(X.dtype, copy=False)
        X_imputed[missing] = X_hat[missing]

    def _reconstruct(self, X):
        """Decoded completion of each sample (mean of ``n_candidates`` ones)."""
        model = self.estimator_
        if self.estimator is None:  # the default model: exact latents
            return model.inverse_transform(linear_gaussian_latents(model, X))
        if self.n_candidates == 1:
            X_hat = model.inverse_transform(model.transform(X))
        elif not hasattr(model, "embedding_"):
            raise ValueError("n_candidates > 1 needs an auto-decoder (a model with embedding_).")
        else:
            with model._threads():
                X_hat = self._average_completions(model, X)
        return _completion(model, X_hat, X)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; None uses ``feature_names_in_``, or
            ``x0, x1, ...`` without them.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The kept input features, then ``missingindicator_<name>`` for
            each indicator column.
        """
        names = super().get_feature_names_out(input_features)
        out = names if self.keep_empty_features else names[~self.empty_features_]
        if self.indicator_features_ is not None:
            indicators = np.array([f"missingindicator_{n}" for n in names[self.indicator_features_]], dtype=object)
            out = np.concatenate([out, indicators])
        return out

    def _average_completions(self, model, X):
        """Mean decoding of the ``n_candidates`` refined completions of each sample."""
        decoder = model._decoder_for(X.dtype)
        X_t, mask = RowData(X, next(decoder.parameters()).dtype, "cpu", has_nan=True).host_batch(slice(None))
        latents = torch.as_tensor(model.embedding_, dtype=X_t.dtype)
        device, batch_size = model.device_, model.inference_batch_size
        references = decode_in_chunks(decoder, latents, batch_size, device)
        k = min(self.n_candidates, len(latents))
        nearest = torch.cat(
            [pairwise_losses(x, m, references, model.loss_).topk(k, largest=False).indices.cpu()
             for x, m in _chunks(X_t, mask, batch_size, device)]
        )
        # Candidate j of sample i sits at row i * k + j.
        Z = model._infer_tensor(
            decoder, X_t.repeat_interleave(k, 0), mask.repeat_interleave(k, 0),
            model.loss_, device, init=latents[nearest.ravel()],
        )[0]
        X_hat = decode_in_chunks(decoder, Z, batch_size, device).cpu().reshape(len(X), k, -1).mean(dim=1)
        return X_hat.numpy().astype(X.dtype, copy=False)

    def _mean_latent(self, dtype):
        embedding = getattr(self.estimator_, "embedding_", None)
        if embedding is None:  # not a latent-table model: decode the origin
            return np.zeros(self.estimator_.n_components_, dtype=dtype)
        return embedding.mean(axis=0).astype(dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = is_scalar_nan(self.missing_values)
        tags.input_tags.sparse = self.estimator is not None and is_scalar_nan(self.missing_values)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
