"""The Laplace log-likelihood used to choose n_components without labels."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder._model_selection import fit_noise_model, laplace_log_likelihood
from sklearn_autodecoder._pca_init import ppca, ppca_log_likelihood, set_linear_decoder


@pytest.fixture(scope="module")
def X():
    return StandardScaler().fit_transform(load_wine().data)


def _linear_at(result, X):
    """A linear auto-decoder set at a PPCA fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad = AutoDecoder(result.weight.shape[1], hidden_layer_sizes=(), max_iter=1, device="cpu",
                         random_state=0).fit(X)
    set_linear_decoder(ad.decoder_, result.weight, result.bias)
    ad.embedding_ = result.latents
    return ad


def test_laplace_is_exact_for_a_linear_decoder(X):
    hidden = np.random.RandomState(0).rand(*X.shape) < 0.2
    X_nan = np.where(hidden, np.nan, X)
    result = ppca(X, 3, tol=1e-10)
    ad = _linear_at(result, X)
    for data in (X, X_nan):
        ll = laplace_log_likelihood(ad, data, noise_variance=result.noise_variance,
                                    prior_mean=np.zeros(3), prior_cov=np.eye(3))
        expected = ppca_log_likelihood(data, result.weight, result.bias, result.noise_variance)
        np.testing.assert_allclose(ll, expected, rtol=1e-5)  # float32 decoder


def test_held_out_likelihood_peaks_at_the_true_rank():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3) @ rng.randn(3, 12) + 0.3 * rng.randn(300, 12)
    train, test = X[:200], X[200:]
    scores, errors = [], []
    for m in (1, 3, 8):
        result = ppca(train, m, tol=1e-8)
        ad = _linear_at(result, train)
        noise, mean, cov = fit_noise_model(ad, train)
        scores.append(laplace_log_likelihood(ad, test, noise_variance=noise, prior_mean=mean,
                                             prior_cov=cov).mean())
        errors.append(-ad.score(test))
    # Reconstruction error always falls with more components; the likelihood does not.
    assert errors[0] > errors[1] > errors[2]
    assert scores[1] > scores[0] and scores[1] > scores[2]
