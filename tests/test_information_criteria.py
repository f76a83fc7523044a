"""bic / aic of an auto-decoder with a mixture prior, as GaussianMixture's."""

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder._information_criteria import mixture_parameters
from sklearn_autodecoder._load import n_free_parameters


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_mixture_count_is_gaussian_mixtures(covariance_type):
    Z = np.random.RandomState(0).randn(60, 4)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(Z)
    assert mixture_parameters(3, 4, covariance_type) == gm._n_parameters()


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_bic_and_aic_from_the_laplace_likelihood(loss):
    X = load_digits().data[:200] / 16
    model = AutoDecoder(
        n_components=3, hidden_layer_sizes=(8,), latent_prior="gmm", n_prior_components=4,
        prior_covariance_type="diag", loss=loss, max_iter=3, device="cpu", random_state=0,
    ).fit(X[:150])
    X_test = X[150:]
    log_likelihood = model.score_samples(X_test).sum()
    n_params = n_free_parameters(model.decoder_) + mixture_parameters(4, 3, "diag") + (loss == "mse")
    assert model._n_parameters() == n_params
    assert model.bic(X_test) == pytest.approx(-2 * log_likelihood + n_params * math.log(len(X_test)))
    assert model.aic(X_test) == pytest.approx(-2 * log_likelihood + 2 * n_params)


def test_only_with_a_mixture_prior():
    assert not hasattr(AutoDecoder(), "bic") and not hasattr(AutoDecoder(), "aic")
    assert hasattr(AutoDecoder(latent_prior="gmm"), "bic")
