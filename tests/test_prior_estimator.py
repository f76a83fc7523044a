"""The Gaussian-mixture latent prior in the auto-decoders: clustering and sampling."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder, load
from _checks import TINY_SPEC

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


@pytest.fixture(scope="module")
def model(digits):
    X, _ = digits
    return AutoDecoder(n_components=8, hidden_layer_sizes=(64,), latent_prior="gmm", latent_learning_rate=0.1,
                       max_iter=30, **CPU).fit(X[:1400])


def test_predict_clusters_like_the_labels(model, digits):
    X, y = digits
    proba = model.predict_proba(X[1400:])
    assert proba.shape == (len(X) - 1400, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    labels = model.predict(X[1400:])
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    # Far above chance (0): the mixture's components follow the digits.
    assert adjusted_rand_score(y[1400:], labels) > 0.25


def test_fitted_mixture_in_gaussian_mixture_shapes(model):
    assert model.prior_weights_.shape == (10,)
    np.testing.assert_allclose(model.prior_weights_.sum(), 1, rtol=1e-6)
    assert model.prior_means_.shape == (10, 8)
    assert model.prior_covariances_.shape == (10, 8) and (model.prior_covariances_ > 0).all()


def test_sample_is_seeded_and_in_the_data_space(model):
    X1, y1 = model.sample(20, random_state=3)
    X2, y2 = model.sample(20, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert X1.shape == (20, 64) and y1.shape == (20,) and set(y1) <= set(range(10))
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


def test_image_samples_are_pixels():
    X = np.random.RandomState(0).rand(60, 4)
    cad = ConvAutoDecoder(TINY_SPEC, latent_prior="gmm", n_prior_components=3, max_iter=3, **CPU).fit(X)
    X_new, y = cad.sample(7, random_state=0)
    assert X_new.shape == (7, 4) and X_new.min() >= 0 and X_new.max() <= 1


def test_score_samples_adds_the_prior_to_the_reconstruction(model, digits):
    X, _ = digits
    scores = model.score_samples(X[1400:1500])
    assert scores.shape == (100,) and np.isfinite(scores).all()
    # A sample far from the data is less likely.
    assert model.score_samples(np.full((1, 64), 5.0))[0] < scores.min()


def test_prior_methods_need_the_prior(digits):
    ad = AutoDecoder(n_components=2, max_iter=2, **CPU).fit(digits[0][:100])
    assert not hasattr(ad, "predict") and not hasattr(ad, "sample")
    assert np.isfinite(ad.score_samples(digits[0][:5])).all()


def test_prior_model_pickles_saves_and_pipelines(model, digits, tmp_path):
    X, _ = digits
    expected = model.predict(X[:50])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X[:50]), expected)
    model.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X[:50]), expected)
    np.testing.assert_array_equal(loaded.sample(5, random_state=0)[0], model.sample(5, random_state=0)[0])
    pipe = make_pipeline(FunctionTransformer(), AutoDecoder(n_components=4, latent_prior="gmm", max_iter=2, **CPU))
    assert pipe.fit(X[:200]).predict(X[:10]).shape == (10,)
