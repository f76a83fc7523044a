"""Defaults that hold on unseen data: early stopping "auto", the PCA start kept, warnings."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder, _architectures
from sklearn_autodecoder._pca_init import set_relu_decoder_linear
from sklearn_autodecoder.nn import MLPDecoder


def _validated(model):
    return "valid_loss" in model.history_[-1]


def _convergence_warnings(caught):
    return [w for w in caught if issubclass(w.category, ConvergenceWarning)]


@pytest.fixture
def noise():
    # A plane plus small isotropic noise: nothing beyond PCA to learn, only
    # noise to overfit.
    rng = np.random.RandomState(2)
    weight = rng.randn(2, 6)
    X = rng.randn(60, 2) @ weight + 0.05 * rng.randn(60, 6)
    return X, rng.randn(40, 2) @ weight + 0.05 * rng.randn(40, 6)


def test_early_stopping_auto_is_on_for_small_mlp_fits(monkeypatch):
    X = np.random.RandomState(0).randn(30, 4)
    assert _validated(AutoDecoder(2, max_iter=2, random_state=0).fit(X))
    assert _validated(AutoEncoder(2, max_iter=2, random_state=0).fit(X))
    assert not _validated(AutoDecoder(2, max_iter=2, early_stopping=False, random_state=0).fit(X))
    monkeypatch.setattr(_architectures, "AUTO_EARLY_STOPPING_MAX_SAMPLES", 29)
    assert not _validated(AutoDecoder(2, max_iter=2, random_state=0).fit(X))
    assert _validated(AutoDecoder(2, max_iter=2, early_stopping=True, random_state=0).fit(X))


def test_early_stopping_auto_is_off_for_conv_presets():
    X = np.random.RandomState(0).rand(12, 784).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ConvAutoDecoder("mnist", max_iter=1, inference_max_iter=2, random_state=0).fit(X)
    assert not _validated(model)


def test_relu_decoder_starts_exactly_at_the_linear_map():
    rng = np.random.RandomState(0)
    weight, bias = rng.randn(7, 3), rng.randn(7)
    latents = rng.randn(50, 3)
    z = torch.tensor(np.vstack([latents, 2 * latents, np.zeros((1, 3))]), requires_grad=True)
    for hidden in [(3,), (6, 16)]:
        decoder = MLPDecoder(3, 7, hidden).double()
        assert set_relu_decoder_linear(decoder, weight, bias, latents)
        expected = z @ torch.as_tensor(weight).T + torch.as_tensor(bias)
        torch.testing.assert_close(decoder(z), expected)
        # The gradient in z is the linear map's, at z = 0 too (init="zeros").
        (gradient,) = torch.autograd.grad(decoder(z).sum(), z)
        torch.testing.assert_close(gradient, torch.as_tensor(weight).sum(axis=0).expand(len(z), -1))
    # Not of that form: left untouched.
    for decoder in [MLPDecoder(3, 7, (2,)), MLPDecoder(3, 7, (8,), activation="tanh"), MLPDecoder(3, 7, ())]:
        before = [p.clone() for p in decoder.parameters()]
        assert not set_relu_decoder_linear(decoder, weight, bias, latents)
        assert all(torch.equal(a, b) for a, b in zip(before, decoder.parameters()))


def test_a_decoder_that_cannot_beat_its_pca_start_stays_there(noise):
    X, X_test = noise
    pca = PCA(2).fit(X)
    model = AutoDecoder(2, random_state=0).fit(X)
    # Kept at its start, refitted on every row: PCA itself, on new rows too.
    assert model.embedding_.shape == (len(X), 2)
    X_hat = model.inverse_transform(model.transform(X_test))
    pca_hat = pca.inverse_transform(pca.transform(X_test))
    np.testing.assert_allclose(X_hat, pca_hat, atol=1e-4)
    # The old default (early_stopping=False, init="zeros") overfits the noise.
    old = AutoDecoder(2, early_stopping=False, init="zeros", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        old.fit(X)
    old_mse = np.mean((old.inverse_transform(old.transform(X_test)) - X_test) ** 2)
    assert old_mse > 1.1 * np.mean((pca_hat - X_test) ** 2)


def test_a_nonlinear_decoder_still_beats_pca_on_a_curve():
    rng = np.random.RandomState(0)
    t = rng.uniform(-3, 3, 400)
    X = np.c_[t, np.sin(2 * t), np.cos(t)] + 0.05 * rng.randn(400, 3)
    X = StandardScaler().fit_transform(X)
    X_train, X_test = X[:300], X[300:]
    model = AutoDecoder(1, random_state=0).fit(X_train)
    pca = PCA(1).fit(X_train)
    mse = np.mean((model.inverse_transform(model.transform(X_test)) - X_test) ** 2)
    pca_mse = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    assert mse < 0.8 * pca_mse


def test_no_warning_when_early_stopping_ends_the_fit(noise):
    X, _ = noise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = AutoDecoder(2, random_state=0).fit(X)
    assert model.n_iter_ < model.max_iter
    assert not _convergence_warnings(caught)


def test_warning_when_max_iter_cuts_a_held_out_improvement():
    rng = np.random.RandomState(0)
    t = rng.uniform(-3, 3, 200)
    X = StandardScaler().fit_transform(np.c_[t, np.sin(2 * t), np.cos(t)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AutoDecoder(1, max_iter=3, random_state=0).fit(X)  # the line the warning names
    (warning,) = _convergence_warnings(caught)
    assert "held-out loss was still improving" in str(warning.message)
    assert "Increase max_iter" in str(warning.message)
    assert warning.filename == __file__


@pytest.mark.parametrize("call", ["fit", "fit_transform", "pipeline"])
def test_training_warnings_point_at_the_callers_line(call):
    X = np.random.RandomState(0).randn(40, 5)
    model = AutoDecoder(2, max_iter=2, early_stopping=False, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if call == "fit":
            model.fit(X)
        elif call == "fit_transform":
            model.fit_transform(X)
        else:
            make_pipeline(StandardScaler(), model).fit(X)
    found = _convergence_warnings(caught)
    assert found and all(w.filename == __file__ for w in found)
    assert "early_stopping=True" in str(found[0].message)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_lucky_epoch_does_not_replace_the_pca_start():
    # Linear data with Gaussian noise: PCA is the best model, any epoch that
    # beats it on the held-out rows is lucky. Testing each new best epoch on
    # the rows that chose it accepted such epochs in 5 of these 20 fits; the
    # candidate chosen on half the held-out rows and tested on the other half
    # should pass about 5% of the time.
    departed = 0
    for seed in range(20):
        rng = np.random.RandomState(seed)
        X = rng.randn(150, 2) @ rng.randn(2, 6) + 0.5 * rng.randn(150, 6)
        model = AutoDecoder(2, random_state=seed, n_jobs=1).fit(X)
        pca = PCA(2).fit(X)
        ours = model.inverse_transform(model.transform(X[:20]))
        departed += not np.allclose(ours, pca.inverse_transform(pca.transform(X[:20])), atol=1e-4)
    assert departed <= 2
