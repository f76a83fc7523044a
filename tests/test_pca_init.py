"""PCA starts, and probabilistic PCA / factor analysis with missing values."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.preprocessing import StandardScaler

from _checks import ppca_log_likelihood

from sklearn_autodecoder._pca_init import (
    n_parameters,
    pca_start,
    ppca,
    set_linear_decoder,
)
from sklearn_autodecoder.nn import MLPDecoder


@pytest.fixture(scope="module")
def X():
    return StandardScaler().fit_transform(load_wine().data)


def test_pca_start_is_the_pca_fit_with_whitened_latents(X):
    latents, weight, bias = pca_start(X, 3)
    pca = PCA(n_components=3).fit(X)
    np.testing.assert_allclose(latents @ weight.T + bias, pca.inverse_transform(pca.transform(X)), atol=1e-10)
    np.testing.assert_allclose(np.cov(latents.T, bias=True), np.eye(3), atol=1e-10)
    # More components than the rank: the extra latents and columns are zero.
    latents, weight, _ = pca_start(X[:3], 5)
    assert np.all(latents[:, 3:] == 0) and np.all(weight[:, 3:] == 0)


def test_pca_start_with_missing_values_fits_the_observed_entries(X):
    hidden = np.random.RandomState(0).rand(*X.shape) < 0.2
    X_nan = np.where(hidden, np.nan, X)
    latents, weight, bias = pca_start(X_nan, 3)

    def observed_error(fit):
        return np.mean((fit - X)[~hidden] ** 2)

    mean_filled = np.where(hidden, np.nanmean(X_nan, axis=0), X_nan)
    pca = PCA(n_components=3).fit(mean_filled)
    # Iterative SVD fits the observed entries better than PCA of the mean-filled data.
    assert observed_error(latents @ weight.T + bias) < 0.9 * observed_error(
        pca.inverse_transform(pca.transform(mean_filled))
    )


def test_set_linear_decoder_puts_the_decoder_at_the_pca_solution(X):
    latents, weight, bias = pca_start(X, 4)
    decoder = set_linear_decoder(MLPDecoder(4, X.shape[1], hidden_layer_sizes=()).double(), weight, bias)
    out = decoder(torch.as_tensor(latents)).detach().numpy()
    np.testing.assert_allclose(out, latents @ weight.T + bias, atol=1e-12)
    with pytest.raises(ValueError, match="exactly one nn.Linear"):
        set_linear_decoder(MLPDecoder(4, X.shape[1], hidden_layer_sizes=(8,)), weight, bias)
    with pytest.raises(ValueError, match="shape"):
        set_linear_decoder(MLPDecoder(3, X.shape[1], hidden_layer_sizes=()), weight, bias)


def test_ppca_matches_pca_and_factor_analysis_on_complete_data(X):
    result = ppca(X, 3, tol=1e-10)
    pca = PCA(n_components=3).fit(X)
    n = len(X)
    # scikit-learn's PCA divides by n - 1, maximum likelihood by n.
    assert result.noise_variance == pytest.approx(pca.noise_variance_ * (n - 1) / n, rel=1e-3)
    assert result.log_likelihood == pytest.approx(pca.score(X), abs=1e-3)
    result = ppca(X, 3, noise_model="diagonal", tol=1e-7, max_iter=2000)
    fa = FactorAnalysis(n_components=3, tol=1e-8, max_iter=2000).fit(X)
    assert result.log_likelihood == pytest.approx(fa.score(X), abs=2e-3)


def test_ppca_with_missing_values(X):
    hidden = np.random.RandomState(1).rand(*X.shape) < 0.3
    X_nan = np.where(hidden, np.nan, X)
    result = ppca(X_nan, 4)
    per_sample = ppca_log_likelihood(X_nan, result.weight, result.bias, result.noise_variance)
    assert per_sample.mean() == pytest.approx(result.log_likelihood)
    # The posterior mean fills the hidden entries better than the column means.
    fit = result.latents @ result.weight.T + result.bias
    assert np.mean((fit - X)[hidden] ** 2) < 0.8 * np.mean(X[hidden] ** 2)
    # A warm start from a smaller model reaches the same likelihood.
    small = ppca(X_nan, 3)
    warm = ppca(X_nan, 4, start=(small.weight, small.bias, small.noise_variance))
    assert warm.log_likelihood == pytest.approx(result.log_likelihood, abs=1e-3)


def test_ppca_rejects_bad_sizes(X):
    with pytest.raises(ValueError, match="n_components"):
        ppca(X, X.shape[1])
    with pytest.raises(ValueError, match="noise_model"):
        ppca(X, 2, noise_model="full")


def test_n_parameters():
    # Loadings up to rotation, mean, noise.
    assert n_parameters(10, 3) == 30 - 3 + 10 + 1
    assert n_parameters(10, 3, "diagonal") == 30 - 3 + 10 + 10


def test_pca_project_gives_the_pca_start_its_own_rows_back():
    from sklearn_autodecoder._pca_init import pca_project

    rng = np.random.RandomState(0)
    X = rng.randn(200, 3) @ rng.randn(3, 12) + 0.1 * rng.randn(200, 12)
    latents, weight, bias = pca_start(X, 4)
    np.testing.assert_allclose(pca_project(X, weight, bias), latents, atol=1e-6)
    # A row with missing entries: least squares on its observed ones.
    row = X[:1].copy()
    row[0, :5] = np.nan
    expected = np.linalg.lstsq(weight[5:], X[0, 5:] - bias[5:], rcond=None)[0]
    np.testing.assert_allclose(pca_project(row, weight, bias)[0], expected, atol=1e-6)
    # More latents than X's rank: the extra ones are zero.
    assert np.allclose(pca_project(X, *pca_start(X[:3], 5)[1:])[:, 3:], 0.0)


def test_large_training_sets_start_from_a_subsample(monkeypatch):
    import sklearn_autodecoder._starts as starts
    from sklearn_autodecoder import AutoDecoder

    rng = np.random.RandomState(0)
    X = rng.randn(400, 2) @ rng.randn(2, 10) + 0.01 * rng.randn(400, 10)
    exact = AutoDecoder(n_components=2, hidden_layer_sizes=(), max_iter=1, device="cpu", random_state=0).fit(X)
    monkeypatch.setattr(starts, "PCA_START_MAX_VALUES", 100)
    monkeypatch.setattr(starts, "PCA_SUBSAMPLE_VALUES", 1000)  # 100 of the 400 rows
    sub = AutoDecoder(n_components=2, hidden_layer_sizes=(), max_iter=1, device="cpu", random_state=0).fit(X)
    # Near rank-2 data: the subsample's subspace is the whole set's.
    pca = PCA(2).fit(X)
    for model in (exact, sub):
        X_hat = model.inverse_transform(model.transform(X))
        assert np.mean((X_hat - X) ** 2) < 1.05 * np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
