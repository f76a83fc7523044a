"""Latent inference: the optimiser, the starting points and their guarantees."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import check_methods_subset_invariance

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder._autodecoder import INIT_STRATEGIES
from sklearn_autodecoder._inference import (
    frozen,
    infer_latents,
    nearest_latents,
    pairwise_losses,
)
from sklearn_autodecoder._losses import sample_losses

FAST = dict(
    n_components=3, hidden_layer_sizes=(16,), max_iter=40, encoder_max_iter=20, inference_max_iter=30,
    device="cpu", random_state=0,
)


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:150] / 16.0


@pytest.fixture(scope="module")
def fitted(X):
    """One fitted model per init strategy (fit differs only for nearest/encoder)."""
    return {init: AutoDecoder(init=init, **FAST).fit(X) for init in INIT_STRATEGIES}


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6)).double()


def _zeros(x, m):
    return torch.zeros(len(x), 2, dtype=x.dtype)


@pytest.mark.parametrize("init", INIT_STRATEGIES)
def test_subset_invariance_every_init(fitted, init):
    # sklearn's own check: transform(X[mask]) == transform(X)[mask] to 1e-7.
    check_methods_subset_invariance("AutoDecoder", fitted[init])


@pytest.mark.parametrize("init", INIT_STRATEGIES)
def test_rows_independent_and_deterministic(fitted, X, init):
    model = fitted[init]
    X64 = X[:40].astype(np.float64)
    whole = model.transform(X64)
    np.testing.assert_array_equal(model.transform(X64), whole)
    one_by_one = np.vstack([model.transform(X64[i : i + 1]) for i in range(len(X64))])
    np.testing.assert_allclose(one_by_one, whole, atol=1e-9)
    # (a copy: negative strides are a separate, known limitation)
    reordered = model.transform(X64[::-1].copy())[::-1]
    np.testing.assert_allclose(reordered, whole, atol=1e-9)


def test_better_starts_need_fewer_steps(fitted, X):
    # After a single step, the informed starts beat zeros and the mean.
    scores = {init: fitted[init].set_params(inference_max_iter=1).score(X) for init in INIT_STRATEGIES}
    for model in fitted.values():
        model.set_params(inference_max_iter=100)
    assert scores["nearest"] > scores["zeros"]
    assert scores["encoder"] > scores["zeros"]
    assert scores["nearest"] > scores["mean"]


def test_nearest_set_after_fit_matches_cached_references(fitted, X):
    cached = fitted["nearest"].transform(X[:30])
    model = pickle.loads(pickle.dumps(fitted["zeros"])).set_params(init="nearest")
    assert getattr(model, "_references_", None) is None
    # Same decoder and latents only when fitted with the same seed and init
    # does not change training: zeros/nearest train identically.
    np.testing.assert_allclose(model.transform(X[:30]), cached, atol=1e-6)


def test_encoder_init_needs_encoder_from_fit(fitted, X):
    model = pickle.loads(pickle.dumps(fitted["zeros"])).set_params(init="encoder")
    with pytest.raises(ValueError, match="refit with init='encoder'"):
        model.transform(X[:3])


def test_refit_with_other_init_drops_stale_aids(X):
    model = AutoDecoder(init="encoder", **FAST).fit(X)
    assert model.encoder_ is not None
    model.set_params(init="nearest").fit(X)
    assert not hasattr(model, "encoder_")
    assert model._references_.shape == (len(X), X.shape[1])


def test_max_iter_zero_returns_start_and_early_exit(decoder):
    X = torch.randn(20, 6, dtype=torch.float64)
    start = torch.full((20, 2), 0.5, dtype=torch.float64)
    Z, n_iter = infer_latents(decoder, X, lambda x, m: start[: len(x)], loss="mse", max_iter=0)
    assert n_iter == 0 and torch.equal(Z, start)
    _, n_loose = infer_latents(decoder, X, _zeros, loss="mse", max_iter=500, tol=0.5)
    _, n_tight = infer_latents(decoder, X, _zeros, loss="mse", max_iter=500, tol=0.0)
    assert n_loose < 50 < n_tight


def test_step_cuts_converge_further_than_constant_step(decoder, monkeypatch):
    from sklearn_autodecoder import _inference

    X = decoder(torch.randn(50, 2, dtype=torch.float64)).detach()
    kw = dict(loss="mse", max_iter=300, learning_rate=0.3, tol=1e-6)

    def final_loss():
        Z, _ = infer_latents(decoder, X, _zeros, **kw)
        return float(sample_losses(decoder(Z), X, "mse").sum().detach())

    with_cuts = final_loss()
    monkeypatch.setattr(_inference, "N_CUTS", 1)
    assert with_cuts < 0.5 * final_loss()


def test_chunk_size_does_not_change_results(decoder):
    X = torch.randn(37, 6, dtype=torch.float64)
    a, _ = infer_latents(decoder, X, _zeros, loss="mse", max_iter=30, batch_size=37)
    b, _ = infer_latents(decoder, X, _zeros, loss="mse", max_iter=30, batch_size=5)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_frozen_restores_state(decoder):
    decoder.train()
    decoder[0].weight.requires_grad_(False)
    with frozen(decoder):
        assert not decoder.training
        assert not any(p.requires_grad for p in decoder.parameters())
    assert decoder.training
    assert [p.requires_grad for p in decoder.parameters()] == [False, True, True, True]


@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("masked", [False, True])
def test_pairwise_losses_match_sample_losses(loss, masked):
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(7, 10, generator=rng, dtype=torch.float64)
    refs = torch.rand(4, 10, generator=rng, dtype=torch.float64).clamp(0.01, 0.99)
    mask = torch.rand(7, 10, generator=rng) < 0.6 if masked else None
    if masked:
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
    expected = torch.stack(
        [sample_losses(refs[j].expand(7, -1), x, loss, mask) for j in range(4)], dim=1
    )
    torch.testing.assert_close(pairwise_losses(x, mask, refs, loss), expected)


def test_nearest_latents_pick_best_reference():
    refs = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, -5.0]], dtype=torch.float64)
    latents = torch.tensor([[10.0], [20.0], [30.0]], dtype=torch.float64)
    x = torch.tensor([[0.9, 1.2], [4.0, 100.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True], [True, False]])
    z = nearest_latents(x, mask, refs, latents, "mse")
    # Second row: only its first entry counts, closest to reference 2.
    assert z.ravel().tolist() == [20.0, 30.0]
