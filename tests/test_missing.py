"""NaN in X means "not observed": masked losses in fit, transform and score."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder._starts import INIT_STRATEGIES
from sklearn_autodecoder._losses import sample_losses

# Exactness does not need a good model: few epochs keep the tests fast.
FAST = dict(
    n_components=3, hidden_layer_sizes=(16,), max_iter=10, encoder_max_iter=5, inference_max_iter=30,
    device="cpu", random_state=0,
)


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:150] / 16.0


@pytest.fixture(scope="module")
def fitted(X):
    return {init: AutoDecoder(init=init, **FAST).fit(X) for init in INIT_STRATEGIES}


def _hide(X, seed, fraction=0.4):
    rng = np.random.RandomState(seed)
    return rng.rand(*X.shape) < fraction


@pytest.mark.parametrize("init", INIT_STRATEGIES)
def test_latent_depends_only_on_observed_entries(fitted, X, init):
    # Change the hidden entries, then hide them: the latents must not move.
    model = fitted[init]
    hidden = _hide(X[:30], 0)
    X_nan = np.where(hidden, np.nan, X[:30])
    changed = np.where(hidden, 1 - X[:30], X[:30])
    Z = model.transform(X_nan)
    np.testing.assert_array_equal(model.transform(np.where(hidden, np.nan, changed)), Z)
    # and the hidden entries do matter when observed
    assert not np.allclose(model.transform(changed), Z)


def test_masked_loss_ignores_hidden_values_and_their_gradient():
    x_hat = torch.rand(4, 5, dtype=torch.float64, requires_grad=True)
    x = torch.rand(4, 5, dtype=torch.float64)
    mask = torch.rand(4, 5) < 0.5
    mask[:, 0] = True
    garbage = torch.where(mask, x, torch.full_like(x, 1e6))
    a = sample_losses(x_hat, torch.where(mask, x, torch.zeros_like(x)), "mse", mask)
    b = sample_losses(x_hat, garbage, "mse", mask)
    torch.testing.assert_close(a, b)
    (grad,) = torch.autograd.grad(b.sum(), x_hat)
    assert torch.all(grad[~mask] == 0)
    # a sample's loss is the same as the fully observed loss on its observed columns
    row = 1
    cols = mask[row]
    full = sample_losses(x_hat[row : row + 1, cols], x[row : row + 1, cols], "mse")
    torch.testing.assert_close(a[row : row + 1], full)


def test_fit_uses_observed_entries_only(X):
    # A feature never observed gets no gradient: without weight decay its
    # output weights stay at their (seeded) initial values.
    X_nan = X.copy()
    X_nan[:, 5] = np.nan
    params = dict(FAST, weight_decay=0.0)
    short = AutoDecoder(**dict(params, max_iter=1)).fit(X_nan)
    long = AutoDecoder(**params).fit(X_nan)
    last_short, last_long = short.decoder_[-2], long.decoder_[-2]
    torch.testing.assert_close(last_long.bias[5], last_short.bias[5], rtol=0, atol=0)
    torch.testing.assert_close(last_long.weight[5], last_short.weight[5], rtol=0, atol=0)
    assert not torch.equal(last_long.bias[4], last_short.bias[4])


def test_inverse_transform_fills_missing_entries():
    # Low-rank data: the observed entries pin the latent, the decoder fills in.
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3) @ rng.randn(3, 12) + 0.05 * rng.randn(200, 12)
    hidden = _hide(X, 2, 0.3)
    X_nan = np.where(hidden, np.nan, X)
    model = AutoDecoder(**dict(FAST, max_iter=100, init="nearest")).fit(X_nan)
    X_filled = model.inverse_transform(model.transform(X_nan))
    assert np.isfinite(X_filled).all()
    rmse = np.sqrt(np.mean((X_filled[hidden] - X[hidden]) ** 2))
    column_means = np.broadcast_to(np.nanmean(X_nan, axis=0), X.shape)
    assert rmse < 0.5 * np.sqrt(np.mean((column_means[hidden] - X[hidden]) ** 2))


def test_score_averages_over_observed_entries(fitted, X):
    model = fitted["zeros"]
    hidden = _hide(X[:30], 3, 0.5)
    X_nan = np.where(hidden, np.nan, X[:30])
    X_hat = model.inverse_transform(model.transform(X_nan))
    expected = -np.mean((X_hat[~hidden] - X[:30][~hidden]) ** 2)
    assert model.score(X_nan) == pytest.approx(expected, rel=1e-4)


def test_rows_without_observed_entries_are_rejected(fitted, X):
    X_bad = X[:5].copy()
    X_bad[3] = np.nan
    with pytest.raises(ValueError, match=r"Samples \[3\] have no observed"):
        fitted["zeros"].transform(X_bad)
    X_train = X.copy()
    X_train[7] = np.nan
    with pytest.raises(ValueError, match=r"Samples \[7\] have no observed"):
        AutoDecoder(**FAST).fit(X_train)


def test_allow_nan_tag(fitted):
    assert fitted["zeros"].__sklearn_tags__().input_tags.allow_nan
