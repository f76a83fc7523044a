"""AutoDecoderImputer: sklearn's checks, exactness and use in a Pipeline."""

import copy

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_autodecoder import AutoDecoder, AutoDecoderImputer, load

SMALL = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, inference_max_iter=10, device="cpu", random_state=0)


@parametrize_with_checks([AutoDecoderImputer(AutoDecoder(**SMALL)), AutoDecoderImputer()])
def test_sklearn_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def low_rank():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3) @ rng.randn(3, 12) + 0.05 * rng.randn(200, 12)
    hidden = rng.rand(*X.shape) < 0.3
    return X, hidden


@pytest.fixture(scope="module")
def imputer(low_rank):
    X, hidden = low_rank
    model = AutoDecoder(n_components=3, hidden_layer_sizes=(16,), max_iter=100, init="nearest", device="cpu", random_state=0)
    return AutoDecoderImputer(model).fit(np.where(hidden, np.nan, X))


def test_observed_entries_kept_exactly_and_nan_filled(imputer, low_rank):
    X, hidden = low_rank
    X_nan = np.where(hidden, np.nan, X)
    X_filled = imputer.transform(X_nan)
    assert not np.isnan(X_filled).any()
    np.testing.assert_array_equal(X_filled[~hidden], X[~hidden])
    # Complete rows come back unchanged without inference.
    np.testing.assert_array_equal(imputer.transform(X[:5]), X[:5])


def test_beats_simple_and_knn_imputers_on_low_rank_data(imputer, low_rank):
    X, hidden = low_rank
    X_nan = np.where(hidden, np.nan, X)

    def rmse(X_filled):
        return np.sqrt(np.mean((X_filled[hidden] - X[hidden]) ** 2))

    ours = rmse(imputer.transform(X_nan))
    assert ours < 0.8 * rmse(KNNImputer().fit_transform(X_nan))
    assert ours < 0.5 * rmse(SimpleImputer().fit_transform(X_nan))


def test_candidates_average_refined_completions(imputer, low_rank):
    X, hidden = low_rank
    X, hidden = X[:60], hidden[:60]
    X_nan = np.where(hidden, np.nan, X)
    averaged = copy.deepcopy(imputer).set_params(n_candidates=4)
    one, several = imputer.transform(X_nan), averaged.transform(X_nan)
    np.testing.assert_array_equal(several[~hidden], X[~hidden])
    assert not np.allclose(one, several)
    # Rows stay independent: imputing in pieces gives the same values.
    pieces = np.vstack([averaged.transform(X_nan[i : i + 7]) for i in range(0, 60, 7)])
    np.testing.assert_allclose(pieces, several, atol=1e-10)
    # Each candidate fits the observed entries, so the average stays accurate.
    rmse = lambda F: np.sqrt(np.mean((F[hidden] - X[hidden]) ** 2))  # noqa: E731
    assert rmse(several) < 1.2 * rmse(one)


def test_empty_rows_get_the_mean_latent_decoding(imputer, low_rank):
    X, _ = low_rank
    X_nan = X[:3].copy()
    X_nan[1] = np.nan
    X_filled = imputer.transform(X_nan)
    model = imputer.estimator_
    expected = model.inverse_transform(model.embedding_.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(X_filled[1], expected[0], rtol=1e-6)


def test_float32_preserved_and_feature_names(imputer, low_rank):
    X, hidden = low_rank
    X32 = np.where(hidden, np.nan, X).astype(np.float32)
    assert imputer.transform(X32).dtype == np.float32
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.where(hidden, np.nan, X), columns=[f"f{i}" for i in range(12)])
    fitted = AutoDecoderImputer(AutoDecoder(**SMALL)).fit(frame)
    assert list(fitted.get_feature_names_out()) == list(frame.columns)
    out = fitted.set_output(transform="pandas").transform(frame)
    assert list(out.columns) == list(frame.columns)


def test_pipeline_before_classifier():
    X, y = load_digits(return_X_y=True)
    X, y = X[:240] / 16.0, y[:240]
    X_nan = np.where(np.random.RandomState(0).rand(*X.shape) < 0.2, np.nan, X)
    pipe = make_pipeline(
        AutoDecoderImputer(AutoDecoder(n_components=8, max_iter=10, inference_max_iter=30, device="cpu", random_state=0)),
        LogisticRegression(max_iter=500),
    )
    scores = cross_val_score(pipe, X_nan, y, cv=2)
    assert scores.mean() > 0.8


def _factor_data(n_samples=300, n_features=12, rank=3, seed=0):
    """Correlated features with per-feature noise, on mixed scales."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, rank) @ rng.randn(rank, n_features)
    X += rng.randn(n_samples, n_features) * rng.uniform(0.2, 1.0, n_features)
    return X * rng.uniform(0.1, 100, n_features) + rng.uniform(-50, 50, n_features)


def _rmse(X_filled, X, hidden):
    return np.sqrt(np.mean(((X_filled - X) / X.std(axis=0))[hidden] ** 2))


def test_default_beats_knn_and_iterative_imputers():
    X = _factor_data()
    hidden = np.random.RandomState(1).rand(*X.shape) < 0.3
    X_nan = np.where(hidden, np.nan, X)
    imputer = AutoDecoderImputer().fit(X_nan)
    ours = _rmse(imputer.transform(X_nan), X, hidden)
    assert ours < 0.98 * _rmse(IterativeImputer(random_state=0).fit_transform(X_nan), X, hidden)
    assert ours < 0.9 * _rmse(KNNImputer().fit_transform(X_nan), X, hidden)
    # The three factors and the per-feature noise are found.
    assert imputer.estimator_.n_components_ == 3
    assert imputer.noise_model_ == "diagonal"
    assert min(imputer.aic_.values()) == imputer.aic_[("diagonal", 3)]


def test_default_is_the_posterior_mean_of_a_linear_autodecoder():
    X = _factor_data(n_samples=120)
    hidden = np.random.RandomState(2).rand(*X.shape) < 0.3
    X_nan = np.where(hidden, np.nan, X)
    imputer = AutoDecoderImputer().fit(X_nan)
    model = imputer.estimator_
    assert isinstance(model, AutoDecoder)
    assert model.hidden_layer_sizes == () and model.latent_l2 == 1.0
    # In whitened units: z = (W_o^T W_o + I)^-1 W_o^T (x_o - b_o), x_hat = W z + b.
    W = model.decoder_[0].weight.detach().double().numpy()
    b = model.decoder_[0].bias.detach().double().numpy()
    X_white = (X_nan - imputer.center_) / imputer.scale_
    expected = X_nan.copy()
    for i, (x, o) in enumerate(zip(X_white, ~hidden)):
        z = np.linalg.solve(W[o].T @ W[o] + np.eye(W.shape[1]), W[o].T @ (x[o] - b[o]))
        expected[i] = (W @ z + b) * imputer.scale_ + imputer.center_
    expected = np.clip(expected, np.nanmin(X_nan, axis=0), np.nanmax(X_nan, axis=0))
    X_filled = imputer.transform(X_nan)
    np.testing.assert_allclose(X_filled[hidden], expected[hidden], rtol=1e-4, atol=1e-4 * X.std())
    np.testing.assert_array_equal(X_filled[~hidden], X[~hidden])
    # Rows are independent, and the fit is deterministic.
    pieces = np.vstack([imputer.transform(X_nan[i : i + 7]) for i in range(0, len(X), 7)])
    np.testing.assert_allclose(pieces, X_filled, rtol=1e-10)
    np.testing.assert_array_equal(AutoDecoderImputer().fit_transform(X_nan), X_filled)


def test_default_clips_to_the_observed_range():
    # Feature 3 follows feature 0; a sample far beyond the training range
    # would be extrapolated to about 10 without the clip.
    rng = np.random.RandomState(0)
    a = rng.randn(200)
    X = np.column_stack([a, 2 * a, rng.randn(200), a + 0.01 * rng.randn(200)])
    X[rng.rand(*X.shape) < 0.05] = np.nan
    imputer = AutoDecoderImputer().fit(X)
    odd = np.array([[10.0, 20.0, 0.0, np.nan]])
    model = imputer.estimator_
    unclipped = model.inverse_transform(model.transform((odd - imputer.center_) / imputer.scale_))
    assert (unclipped * imputer.scale_ + imputer.center_)[0, 3] > 5
    assert imputer.transform(odd)[0, 3] == np.nanmax(X[:, 3])
    np.testing.assert_array_equal(imputer.data_max_, np.nanmax(X, axis=0))


def test_default_does_not_depend_on_feature_scales():
    X = _factor_data(n_samples=100)
    X_nan = np.where(np.random.RandomState(3).rand(*X.shape) < 0.2, np.nan, X)
    scale, shift = np.logspace(-3, 3, X.shape[1]), np.arange(X.shape[1]) * 10.0
    filled = AutoDecoderImputer().fit_transform(X_nan)
    rescaled = AutoDecoderImputer().fit_transform(X_nan * scale + shift)
    np.testing.assert_allclose((rescaled - shift) / scale, filled, rtol=1e-5, atol=1e-6 * np.abs(X).max())


def test_default_with_one_feature_or_constant_features_imputes_the_mean():
    X = np.array([[1.0], [np.nan], [3.0], [5.0]])
    np.testing.assert_allclose(AutoDecoderImputer().fit_transform(X)[1], [3.0])
    X = np.column_stack([np.ones(6), np.arange(6.0), np.arange(6.0) ** 2])
    X[0, 0] = X[1, 2] = np.nan
    filled = AutoDecoderImputer().fit_transform(X)
    assert filled[0, 0] == pytest.approx(1.0)
    assert np.isfinite(filled).all()
    # A feature never observed is dropped, or kept and filled with 0; the
    # others still inform each other.
    X = _factor_data(n_samples=60)
    X[:, 2] = np.nan
    X[0, 0] = np.nan
    filled = AutoDecoderImputer(keep_empty_features=True).fit_transform(X)
    np.testing.assert_array_equal(filled[:, 2], 0.0)
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(AutoDecoderImputer().fit_transform(X), np.delete(filled, 2, axis=1))


def test_default_estimator_is_a_linear_gaussian_autodecoder():
    X = np.random.RandomState(0).rand(30, 4)
    X[0, 0] = np.nan
    imputer = AutoDecoderImputer().fit(X)
    assert isinstance(imputer.estimator_, AutoDecoder)
    assert imputer.estimator_.hidden_layer_sizes == ()
    assert imputer.estimator is None
    assert imputer.noise_model_ in ("isotropic", "diagonal")
    # A given estimator sees X unchanged.
    fitted = AutoDecoderImputer(AutoDecoder(**SMALL)).fit(X)
    assert fitted.noise_model_ is None
    np.testing.assert_array_equal(fitted.scale_, np.ones(4))


@pytest.mark.parametrize("model", [None, AutoDecoder(**SMALL)], ids=["default", "autodecoder"])
def test_missing_values_sentinel_is_imputed_like_nan(model):
    X = _factor_data(n_samples=80)
    hidden = np.random.RandomState(4).rand(*X.shape) < 0.2
    with_nan = AutoDecoderImputer(model).fit_transform(np.where(hidden, np.nan, X))
    with_sentinel = np.where(hidden, -999.0, X)
    imputer = AutoDecoderImputer(model, missing_values=-999)
    np.testing.assert_allclose(imputer.fit_transform(with_sentinel), with_nan, rtol=1e-6)
    assert (with_sentinel[hidden] == -999).all()  # the input is untouched
    with pytest.raises(ValueError, match="NaN"):
        imputer.fit(np.where(hidden, np.nan, X))


def test_add_indicator_and_feature_names():
    X = _factor_data(n_samples=60)
    X[::3, 1] = np.nan
    X[::5, 4] = np.nan
    X[:, 2] = np.nan  # empty: dropped, but indicated
    imputer = AutoDecoderImputer(add_indicator=True).fit(X)
    out = imputer.transform(X)
    d = X.shape[1]
    np.testing.assert_array_equal(imputer.indicator_features_, [1, 2, 4])
    assert out.shape == (60, d - 1 + 3)
    np.testing.assert_array_equal(out[:, d - 1 :], np.isnan(X[:, [1, 2, 4]]))
    np.testing.assert_array_equal(out[:, : d - 1], AutoDecoderImputer().fit_transform(X))
    names = imputer.get_feature_names_out()
    assert list(names[-3:]) == ["missingindicator_x1", "missingindicator_x2", "missingindicator_x4"]
    assert len(names) == out.shape[1] and "x2" not in names
    # A feature complete in fit gets no indicator column, even if missing later.
    X_new = X[:5].copy()
    X_new[0, 0] = np.nan
    assert imputer.transform(X_new).shape == (5, out.shape[1])


def test_default_fit_warns_nothing_and_saves(tmp_path):
    import warnings

    X = _factor_data(n_samples=50)
    X[np.random.RandomState(5).rand(*X.shape) < 0.2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imputer = AutoDecoderImputer().fit(X)
    path = tmp_path / "imputer.zip"
    imputer.save(path)
    loaded = load(path)
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))
    assert loaded.aic_ == imputer.aic_


@pytest.fixture(scope="module")
def counts():
    from sklearn_autodecoder.datasets import make_count_data

    X, _ = make_count_data(300, 40, n_groups=3, n_components=3, library_size=400, random_state=0)
    hidden = np.random.RandomState(1).rand(*X.shape) < 0.1
    return X, hidden


COUNT_MODEL = dict(n_components=3, hidden_layer_sizes=(), loss="poisson", max_iter=30, device="cpu", random_state=0)


def test_count_imputations_follow_the_rows_library_size(counts):
    # A count model decodes proportions: a missing count is the proportion at the
    # row's own library size (estimated from its observed entries), not at the
    # training median. Doubling a row's observed counts doubles its imputations.
    X, hidden = counts
    X_missing = np.where(hidden, np.nan, X)
    # (A tight inference tolerance: the doubled row's loss is another function to stop on.)
    imputer = AutoDecoderImputer(AutoDecoder(**COUNT_MODEL, inference_tol=1e-8)).fit(X_missing)
    filled = imputer.transform(X_missing)
    doubled = imputer.transform(2 * X_missing)
    np.testing.assert_allclose(doubled[hidden], 2 * filled[hidden], rtol=5e-3)
    totals = np.nansum(X_missing, axis=1)
    small, large = np.argsort(totals)[[5, -5]]
    observed_share = lambda r: np.nansum(X_missing[r]) / np.nansum(filled[r])  # noqa: E731
    # Each row's completed total keeps the observed share: imputations scale with depth.
    assert 0.8 < observed_share(small) <= 1 and 0.8 < observed_share(large) <= 1


def test_sparse_counts_are_imputed_as_dense_ones_and_stay_sparse(counts):
    import scipy.sparse as sp

    X, hidden = counts
    X_missing = np.where(hidden, np.nan, X)
    # Stored NaN are the missing entries of a sparse X; its zeros are observed counts.
    X_sparse = sp.csr_matrix(np.where(X_missing == 0, 0, X_missing))
    assert np.isnan(X_sparse.data).sum() == hidden.sum()
    params = dict(add_indicator=True)
    dense = AutoDecoderImputer(AutoDecoder(**COUNT_MODEL), **params).fit(X_missing).transform(X_missing)
    imputer = AutoDecoderImputer(AutoDecoder(**COUNT_MODEL), **params).fit(X_sparse)
    out = imputer.transform(X_sparse)
    assert sp.issparse(out) and out.format == "csr" and out.shape == dense.shape
    np.testing.assert_allclose(out.toarray(), dense, rtol=1e-5, atol=1e-6)
    assert not np.isnan(out.data).any()
    assert np.isnan(X_sparse.data).sum() == hidden.sum()  # the input is left as it was


def test_sparse_rows_are_filled_the_same_block_by_block(counts, monkeypatch):
    import scipy.sparse as sp

    from sklearn_autodecoder import _imputer

    X, hidden = counts
    X_sparse = sp.csr_matrix(np.where(hidden, np.nan, np.where(X == 0, 0, X)))
    imputer = AutoDecoderImputer(AutoDecoder(**COUNT_MODEL)).fit(X_sparse)
    whole = imputer.transform(X_sparse)
    monkeypatch.setattr(_imputer, "DENSE_BLOCK_VALUES", 3 * X.shape[1])  # blocks of 3 rows
    # (Decoding a block of another size rounds float32 products in another order.)
    np.testing.assert_allclose(imputer.transform(X_sparse).toarray(), whole.toarray(), rtol=1e-5)


def test_sparse_input_needs_a_model_that_takes_it(counts):
    import scipy.sparse as sp

    X_sparse = sp.csr_matrix(counts[0])
    with pytest.raises(ValueError, match="centres every feature, which would make a sparse X dense"):
        AutoDecoderImputer().fit(X_sparse)
    with pytest.raises(ValueError, match="stored NaN; missing_values=-1"):
        AutoDecoderImputer(AutoDecoder(**COUNT_MODEL), missing_values=-1).fit(X_sparse)
