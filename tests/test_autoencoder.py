"""AutoEncoder / ConvAutoEncoder: scikit-learn's checks and the autoencoder's own behaviour."""

import inspect
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_autodecoder import (
    AutoDecoder,
    AutoEncoder,
    ConvAutoDecoder,
    ConvAutoEncoder,
    LowLoadWarning,
    n_free_parameters,
)
from _checks import AnyWidthConvAutoEncoder, TINY_SPEC, expected_width_failures

from sklearn_autodecoder.presets import make_encoder

FAST = dict(max_iter=3, random_state=0, device="cpu")

@parametrize_with_checks(
    [
        AutoEncoder(n_components=2, hidden_layer_sizes=(8,), **FAST),
        AutoEncoder(n_components=2, hidden_layer_sizes=(), **FAST),
        ConvAutoEncoder(TINY_SPEC, **FAST),
        AnyWidthConvAutoEncoder(TINY_SPEC, **FAST),
    ],
    expected_failed_checks=expected_width_failures(ConvAutoEncoder),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.fixture
def X():
    return np.random.RandomState(0).rand(60, 12)


def _params(cls):
    return set(inspect.signature(cls).parameters)


@pytest.mark.parametrize(
    "autoencoder, autodecoder", [(AutoEncoder, AutoDecoder), (ConvAutoEncoder, ConvAutoDecoder)]
)
def test_parameters_are_the_autodecoders_minus_latent_ones(autoencoder, autodecoder):
    latent_only = {name for name in _params(autodecoder) if name.startswith(("latent_", "inference_"))}
    assert latent_only >= {"latent_optimizer", "inference_max_iter"}
    assert _params(autoencoder) & latent_only == set()
    assert "init" not in _params(autoencoder)
    # Everything else is shared (the auto-decoders may gain inference-only options).
    assert _params(autoencoder) <= _params(autodecoder)


def test_transform_is_the_encoder_and_inverse_transform_the_decoder(X):
    ae = AutoEncoder(n_components=3, hidden_layer_sizes=(8,), **FAST).fit(X)
    with torch.no_grad():
        Z = ae.encoder_(torch.as_tensor(X, dtype=torch.float32)).numpy()
        X_hat = ae.decoder_(torch.as_tensor(Z)).numpy()
    np.testing.assert_allclose(ae.transform(X.astype(np.float32)), Z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ae.inverse_transform(Z), X_hat, rtol=1e-5, atol=1e-6)
    assert ae.transform(X).dtype == np.float64
    assert not hasattr(ae, "embedding_")


def test_fit_is_seeded_and_leaves_global_rng_alone(X):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = AutoEncoder(n_components=2, **FAST).fit(X).transform(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = AutoEncoder(n_components=2, **FAST).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def test_training_reduces_the_loss(X):
    # early_stopping=False (the old default): all 50 epochs on all rows.
    ae = AutoEncoder(n_components=2, hidden_layer_sizes=(16,), learning_rate=1e-2, max_iter=50,
                     batch_size=16, random_state=0, device="cpu", early_stopping=False)
    ae.fit(X)
    # Below the 1.0 per sample of predicting 0.5 everywhere (uniform data, 12 features).
    assert ae.loss_curve_[-1] < 0.3 * ae.loss_curve_[0] and ae.loss_curve_[-1] < 1.0
    assert ae.n_iter_ == 50


def test_early_stopping_validates_through_the_encoder(X):
    ae = AutoEncoder(n_components=2, early_stopping=True, n_iter_no_change=2, tol=0.05, max_iter=200,
                     random_state=0, device="cpu").fit(X)
    assert "valid_loss" in ae.history_[-1]
    assert ae.n_iter_ < 200


def test_warm_start_continues_from_the_fitted_modules(X):
    ae = AutoEncoder(n_components=2, warm_start=True, early_stopping=False, **FAST).fit(X)
    before = ae.score(X)
    encoder = ae.encoder_
    weights = {k: v.clone() for k, v in encoder.state_dict().items()}
    ae.set_params(max_iter=20).fit(X)
    assert ae.encoder_ is not None and ae.score(X) > before
    # Continued, not rebuilt: the first warm epoch starts where the last fit ended...
    assert ae.loss_curve_[3] < ae.loss_curve_[0]
    # ...trained as a copy: the previous fit's encoder is intact (restored if a fit fails).
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in weights.items())


def test_loads(X):
    # early_stopping=False (the old default): the loads count all 60 rows.
    ae = AutoEncoder(n_components=3, hidden_layer_sizes=(), early_stopping=False, **FAST).fit(X)
    n, m = X.shape[1], 3
    assert ae.encoder_load_ == pytest.approx(60 * m / (n * m + m))
    assert ae.decoder_load_ == pytest.approx(60 * n / (m * n + n + 60 * m))


def test_autoencoder_does_not_warn_about_the_decoder_load(X):
    # A 64-unit decoder on 60 samples: the decoder load is below 1.
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowLoadWarning)
        ae = AutoEncoder(n_components=2, **FAST).fit(X)
    assert ae.decoder_load_ < 1
    with pytest.warns(LowLoadWarning, match="under-determined"):
        AutoDecoder(n_components=2, **FAST).fit(X)


def test_conv_autoencoder_uses_the_mirrored_preset_encoder():
    X = np.random.RandomState(0).rand(4, 784).astype(np.float32)
    cae = ConvAutoEncoder("mnist", max_iter=1, random_state=0, device="cpu").fit(X)
    assert n_free_parameters(cae.encoder_) == n_free_parameters(make_encoder("mnist"))
    assert cae.loss_ == "bce" and cae.n_components_ == 20
    assert cae.transform(X).shape == (4, 20)
    with pytest.raises(ValueError, match="784 features per row"):
        ConvAutoEncoder("mnist").fit(np.random.rand(4, 100))


def test_pickle_keeps_the_encoder(X):
    ae = AutoEncoder(n_components=2, **FAST).fit(X)
    clone = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(clone.transform(X), ae.transform(X))


def test_sparse_connectivity_is_shared_with_the_autodecoder(X):
    mask = np.random.RandomState(1).rand(3, X.shape[1]) < 0.3
    for cls in (AutoEncoder, AutoDecoder):
        est = cls(n_components=3, hidden_layer_sizes=(), connectivity=mask, **FAST).fit(X)
        weight = est.decoder_[0].weight.detach().numpy()
        assert np.all(weight[~mask.T] == 0)
        assert n_free_parameters(est.decoder_) == mask.sum() + X.shape[1]
    with pytest.raises(ValueError, match="hidden_layer_sizes=\\(\\)"):
        AutoEncoder(n_components=3, connectivity=mask, **FAST).fit(X)
    with pytest.raises(ValueError, match="shape"):
        AutoDecoder(n_components=2, hidden_layer_sizes=(), connectivity=mask, **FAST).fit(X)
