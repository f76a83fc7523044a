"""score_samples as a Laplace log-likelihood: choosing n_components without labels."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from _checks import ppca_log_likelihood

from sklearn_autodecoder import AutoDecoder, log_likelihood_scorer
from sklearn_autodecoder._pca_init import ppca, set_linear_decoder

FAST = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def X():
    return StandardScaler().fit_transform(load_wine().data)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoDecoder(**params, **FAST).fit(X)


def test_laplace_is_exact_for_a_linear_decoder(X):
    # A linear decoder set at a PPCA fit, with whitened latents: the Laplace
    # log-likelihood is PPCA's marginal log-likelihood, missing entries too.
    result = ppca(X, 3, tol=1e-10)
    ad = _fit(X, n_components=3, hidden_layer_sizes=(), loss="mse", max_iter=1)
    set_linear_decoder(ad.decoder_, result.weight, result.bias)
    latents = result.latents - result.latents.mean(axis=0)
    ad.embedding_ = latents @ np.linalg.inv(np.linalg.cholesky(np.cov(latents.T, bias=True))).T
    ad.noise_variance_ = result.noise_variance
    hidden = np.random.RandomState(0).rand(*X.shape) < 0.2
    for data in (X, np.where(hidden, np.nan, X)):
        expected = ppca_log_likelihood(data, result.weight, result.bias, result.noise_variance)
        np.testing.assert_allclose(ad.score_samples(data), expected, rtol=1e-4)  # float32 decoder


def test_fitted_linear_model_scores_like_pca(X):
    for m in (2, 5):
        ad = _fit(X, n_components=m, hidden_layer_sizes=(), loss="mse")
        ratio = ad.score_samples(X).mean() / PCA(m).fit(X).score(X)
        assert abs(ratio - 1) < 0.01, (m, ratio)


def test_held_out_likelihood_peaks_at_the_true_rank():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3) @ rng.randn(3, 12) + 0.3 * rng.randn(300, 12)
    train, test = X[:200], X[200:]
    scores, errors = [], []
    for m in (1, 3, 8):
        ad = _fit(train, n_components=m, hidden_layer_sizes=(16,), loss="mse", max_iter=300)
        scores.append(ad.score_samples(test).mean())
        errors.append(-ad.score(test))
    # Reconstruction error always falls with more components; the likelihood does not.
    assert errors[0] > errors[1] > errors[2]
    assert scores[1] > scores[0] and scores[1] > scores[2]


def test_bce_likelihood_is_finite_and_favours_the_training_distribution():
    rng = np.random.RandomState(0)
    X = (rng.rand(120, 10) < np.linspace(0.1, 0.9, 10)).astype(float)
    # early_stopping=False: 12 held-out rows would keep the start, whose sigmoid of a PCA fit
    # knows the column frequencies only roughly; the test is about the likelihood.
    ad = _fit(X, n_components=2, loss="bce", max_iter=30, early_stopping=False)
    ll = ad.score_samples(X)
    assert ll.shape == (120,) and np.isfinite(ll).all() and (ll < 0).all()
    flipped = 1.0 - X  # unlikely under the learnt column frequencies
    assert ad.score_samples(flipped).mean() < ll.mean() - 1


def test_scorer_chooses_n_components_in_a_search():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3) @ rng.randn(3, 12) + 0.3 * rng.randn(300, 12)  # rank 3 + noise
    grid = {"n_components": [1, 3, 8]}
    search = GridSearchCV(AutoDecoder(hidden_layer_sizes=(), **FAST), grid, scoring=log_likelihood_scorer, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X)
    assert search.best_params_ == {"n_components": 3}
    # The estimators' own score (minus the reconstruction error) picks the largest.
    by_error = GridSearchCV(AutoDecoder(hidden_layer_sizes=(), **FAST), grid, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert by_error.fit(X).best_params_ == {"n_components": 8}
