"""Missing-value imputation with an auto-decoder."""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone

from ._autodecoder import AutoDecoder
from ._data import RowData
from ._compat import HasMethods, Interval, _fit_context, check_is_fitted, validate_data
from ._inference import _chunks, decode_in_chunks, pairwise_losses
from ._persistence import SaveMixin


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
        The (unfitted) auto-decoder to use; it is cloned in :meth:`fit`.
        None uses ``AutoDecoder(n_components=2, init="nearest")``. For
        features on different scales, put a
        :class:`~sklearn.preprocessing.StandardScaler` (which keeps NaN)
        before the imputer, or use ``loss="bce"`` on data in [0, 1].
    n_candidates : int, default=1
        Completions averaged per sample. 1 decodes the estimator's own
        inferred latent. With k > 1, inference starts from each of the k
        training latents whose decodings best fit the sample's observed
        entries, and the k refined decodings are averaged: an approximation
        of the conditional mean, which lowers the squared error when much is
        missing (e.g. a whole image region), at k times the cost. Needs an
        auto-decoder (a model with ``embedding_``).

    Attributes
    ----------
    estimator_ : AutoDecoder or ConvAutoDecoder
        The fitted auto-decoder.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    sklearn.impute.SimpleImputer : Per-feature constants.
    sklearn.impute.KNNImputer : Averages of the nearest complete neighbours.
    sklearn.impute.IterativeImputer : Round-robin regressions of each feature.

    Notes
    -----
    A sample with no observed entry gets the decoding of the mean training
    latent.

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

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "n_candidates": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, estimator=None, *, n_candidates=1):
        self.estimator = estimator
        self.n_candidates = n_candidates

    def _validate(self, X, reset):
        return validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan"
        )

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the auto-decoder on X, ignoring its missing (NaN) entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN for the missing entries.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        X = self._validate(X, reset=True)
        estimator = AutoDecoder(init="nearest") if self.estimator is None else self.estimator
        self.estimator_ = clone(estimator).fit(X)
        return self

    def transform(self, X):
        """Replace the missing entries of X by the auto-decoder's reconstruction.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN for the missing entries.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features)
            X with its NaN entries filled in, observed entries unchanged, in
            X's dtype.
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        missing = np.isnan(X)
        if not missing.any():
            return X.copy()
        X_imputed = X.copy()
        empty = missing.all(axis=1)
        # Only samples with missing entries need inference.
        rows = missing.any(axis=1) & ~empty
        X_hat = np.empty_like(X)
        if empty.any():
            X_hat[empty] = self.estimator_.inverse_transform(
                np.tile(self._mean_latent(X.dtype), (int(empty.sum()), 1))
            )
        if rows.any():
            X_hat[rows] = self._reconstruct(X[rows])
        X_imputed[missing] = X_hat[missing]
        return X_imputed

    def _reconstruct(self, X):
        """Decoded completion of each sample (mean of ``n_candidates`` ones)."""
        model = self.estimator_
        if self.n_candidates == 1:
            return model.inverse_transform(model.transform(X))
        if not hasattr(model, "embedding_"):
            raise ValueError("n_candidates > 1 needs an auto-decoder (a model with embedding_).")
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
        Z, _ = model._infer_tensor(
            decoder, X_t.repeat_interleave(k, 0), mask.repeat_interleave(k, 0),
            model.loss_, device, init=latents[nearest.ravel()],
        )
        X_hat = decode_in_chunks(decoder, Z, batch_size, device).cpu().reshape(len(X), k, -1).mean(dim=1)
        return X_hat.numpy().astype(X.dtype, copy=False)

    def _mean_latent(self, dtype):
        embedding = getattr(self.estimator_, "embedding_", None)
        if embedding is None:  # not a latent-table model: decode the origin
            return np.zeros(self.estimator_.n_components_, dtype=dtype)
        return embedding.mean(axis=0).astype(dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
