"""The Gaussian-mixture latent prior in the auto-decoders: clustering and sampling."""

import pickle

import numpy as np
import pytest
import torch
from _checks import TINY_SPEC
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder, load
from sklearn_autodecoder._pca_init import pca_start
from sklearn_autodecoder._priors import INIT_RIDGE

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
    # The mixture's components follow the digits: 0.63 here, where
    # GaussianMixture(10) on PCA(8) gets 0.57 to 0.70 over seeds 0-2 (and the
    # prior's former start, uniform in a ball, 0.13).
    assert adjusted_rand_score(y[1400:], labels) > 0.5


def test_fitted_mixture_in_gaussian_mixture_shapes(model):
    assert model.prior_weights_.shape == (10,)
    np.testing.assert_allclose(model.prior_weights_.sum(), 1, rtol=1e-6)
    assert model.prior_means_.shape == (10, 8)
    # "full" by default: symmetric positive definite matrices.
    covariances = model.prior_covariances_
    assert covariances.shape == (10, 8, 8)
    np.testing.assert_allclose(covariances, covariances.transpose(0, 2, 1), atol=1e-6)
    assert (np.linalg.eigvalsh(covariances) > 0).all()


@pytest.mark.parametrize("covariance_type, shape", [("diag", (3, 4)), ("spherical", (3,))])
def test_other_covariance_types(digits, covariance_type, shape):
    ad = AutoDecoder(n_components=4, latent_prior="gmm", n_prior_components=3, prior_covariance_type=covariance_type,
                     max_iter=2, **CPU).fit(digits[0][:200])
    assert ad.prior_covariances_.shape == shape and (ad.prior_covariances_ > 0).all()
    assert ad.predict(digits[0][:5]).shape == (5,)


def test_mixture_starts_as_em_on_the_pca_start(digits):
    # The training latents start from whitened PCA scores; the mixture starts
    # as the Gaussian mixture fitted to them (EM), hyper-priors centred on them.
    X = digits[0][:300]
    Z, _, _ = pca_start(X, 4)
    ad = AutoDecoder(n_components=4, latent_prior="gmm", n_prior_components=3, **CPU)
    prior = ad._make_prior({"n_components": 4}, torch.Generator().manual_seed(0), torch.as_tensor(Z, dtype=torch.float32))
    assert "_prior_start" not in ad.__dict__  # handed over, never kept on the estimator
    gm = GaussianMixture(3, random_state=0, n_init=10, reg_covar=INIT_RIDGE * Z.var(axis=0).mean()).fit(Z)
    with torch.no_grad():
        log_p = prior.double().log_prob(torch.as_tensor(Z)).mean()
    assert abs(float(log_p) - gm.score(Z)) < 0.1  # EM's local optima differ a little by seed
    assert prior.mean_radius > np.quantile(np.linalg.norm(Z, axis=1), 0.9)
    # Without a data-driven start the means start in the DGD softball of radius 2.
    ball = ad._make_prior({"n_components": 4}, torch.Generator().manual_seed(0))
    assert ball.mean_radius == 2.0 and bool((ball.loc.norm(dim=1) <= 2.0).all())


def test_seeded_fits_are_identical(model, digits):
    X, _ = digits
    again = AutoDecoder(**model.get_params()).fit(X[:1400])
    assert "_prior_start" not in again.__dict__
    np.testing.assert_array_equal(again.prior_means_, model.prior_means_)
    np.testing.assert_array_equal(again.predict(X[1400:]), model.predict(X[1400:]))
    np.testing.assert_array_equal(again.sample(10, random_state=1)[0], model.sample(10, random_state=1)[0])


def test_sample_is_seeded_and_in_the_data_space(model):
    X1, y1 = model.sample(20, random_state=3)
    X2, y2 = model.sample(20, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert X1.shape == (20, 64) and y1.shape == (20,) and set(y1) <= set(range(10))
    assert not np.array_equal(X1, model.sample(20, random_state=4)[0])
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


def test_bce_samples_are_probabilities(digits):
    X, _ = digits
    ad = AutoDecoder(n_components=4, loss="bce", latent_prior="gmm", n_prior_components=3, max_iter=3, **CPU)
    X_new, components = ad.fit(X[:200]).sample(50, random_state=0)
    assert X_new.shape == (50, 64)
    assert X_new.min() >= 0 and X_new.max() <= 1 and set(components) <= {0, 1, 2}


def test_image_samples_are_pixels():
    X = np.random.RandomState(0).rand(60, 4)
    cad = ConvAutoDecoder(TINY_SPEC, latent_prior="gmm", n_prior_components=3, max_iter=3, **CPU).fit(X)
    X_new, y = cad.sample(7, random_state=0)
    assert X_new.shape == (7, 4) and X_new.min() >= 0 and X_new.max() <= 1


def test_conv_decoders_start_from_pca_with_a_prior_only(monkeypatch):
    # The conv presets keep their published small random start, but a
    # mixture prior needs the data-driven one to cluster.
    import sklearn_autodecoder._starts as starts

    calls = []
    monkeypatch.setattr(starts, "pca_start", lambda X, m: calls.append(X.shape) or pca_start(X, m))
    X = np.random.RandomState(0).rand(60, 4)
    ConvAutoDecoder(TINY_SPEC, max_iter=2, **CPU).fit(X)
    assert calls == []
    cad = ConvAutoDecoder(TINY_SPEC, latent_prior="gmm", n_prior_components=3, max_iter=2, **CPU).fit(X)
    assert calls == [(60, 4)]
    assert cad.prior_.mean_radius != 2.0  # fitted to the start, not the DGD ball


def test_score_samples_with_the_prior_is_lower_far_from_the_data(model, digits):
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


def test_squared_error_weighs_the_prior_by_the_noise_variance(digits):
    # Squared error is 2 sigma^2 times a Gaussian's negative log-likelihood:
    # unscaled, the prior's nats would outweigh the data on [0, 1] pixels
    # (measured before the scaling: test MSE 1.9x to 5.7x the prior-free
    # model's on digits, 1.03x to 1.06x after).
    X, _ = digits
    errors = {}
    for prior in ("gmm", "none"):
        ad = AutoDecoder(n_components=10, hidden_layer_sizes=(64,), latent_prior=prior, max_iter=30, **CPU)
        ad.fit(X[:1000])
        errors[prior] = np.mean((ad.inverse_transform(ad.transform(X[1400:1600])) - X[1400:1600]) ** 2)
    assert errors["gmm"] < 1.25 * errors["none"], errors
    assert ad.loss_ == "mse" and ad.noise_variance_ > 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn_autodecoder.LowLoadWarning")
def test_conv_squared_error_with_the_mixture_fits(monkeypatch):
    # Conv decoder (with a linear head) + squared error + mixture prior: the
    # PCA start applies, but a conv decoder's linear layer is not the whole
    # decoder, so PCA must not be written into it (the estimator once asked
    # for the MLP's connectivity here and raised AttributeError).
    import sklearn_autodecoder._starts as starts
    from sklearn_autodecoder.presets import ConvDecoderSpec

    def refuse(*args):
        raise AssertionError("PCA written into a conv decoder")

    monkeypatch.setattr(starts, "set_linear_decoder", refuse)
    rng = np.random.RandomState(0)
    cad = ConvAutoDecoder(preset="mnist", loss="mse", latent_prior="gmm", n_prior_components=2, max_iter=1,
                          batch_size=16, **CPU).fit(rng.rand(16, 784))
    assert cad.prior_weights_.shape == (2,)
    spec = ConvDecoderSpec(image_shape=(1, 4, 4), n_components=3, linear_head=(2, 2, 2), layers=((1, 4, 2, 1),),
                           defaults=dict(loss="mse", max_iter=2, batch_size=16))
    X = rng.rand(40, 16)
    cad = ConvAutoDecoder(spec, latent_prior="gmm", n_prior_components=3, **CPU).fit(X)
    assert cad.predict(X).shape == (40,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_latent_l2_and_the_mixture_together(digits):
    # Both priors in training and in inference (inference once refused the pair).
    X = digits[0][:100]
    ad = AutoDecoder(n_components=4, latent_prior="gmm", n_prior_components=3, latent_l2=0.1, max_iter=2,
                     **CPU).fit(X)
    assert ad.transform(X[:5]).shape == (5, 4) and ad.predict(X[:5]).shape == (5,)
