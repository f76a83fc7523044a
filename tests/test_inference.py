"""Latent inference: the optimiser, the starting points and their guarantees."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import check_methods_subset_invariance

from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder
from sklearn_autodecoder._load import LowLoadWarning
from sklearn_autodecoder._starts import INIT_STRATEGIES
from sklearn_autodecoder._inference import (
    METHODS,
    frozen,
    infer_latents,
    nearest_latents,
    pairwise_losses,
)
from sklearn_autodecoder._losses import sample_losses
from sklearn_autodecoder._priors import GaussianPrior
from sklearn_autodecoder.presets import ConvDecoderSpec

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
    # early_stopping=False (the old default): with it, the held-out rows' first
    # latents depend on init, and zeros/nearest would train differently.
    return {init: AutoDecoder(init=init, early_stopping=False, **FAST).fit(X) for init in INIT_STRATEGIES}


def _seeded(module, seed=0, scale=0.5):
    """Redraw every parameter from a local generator (torch's global RNG untouched)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return module


@pytest.fixture
def decoder():
    return _seeded(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6))).double()


def _zeros(x, m):
    return torch.zeros(len(x), 2, dtype=x.dtype)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


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


@pytest.mark.parametrize("n_train, n_features, expected", [(100, 10, 100), (20_000, 10, 4096), (20_000, 2**14, 2048)])
def test_nearest_compares_with_a_bounded_spread_of_training_rows(n_train, n_features, expected):
    # The start's cost is rows x features per sample: bounded by rows (4,096) and
    # by values (2**25), on evenly spaced rows from the first to the last.
    model = AutoDecoder()
    model.n_features_in_ = n_features
    rows = model._nearest_rows(n_train)
    assert len(rows) == expected == len(set(rows.tolist()))
    assert rows[0] == 0 and rows[-1] == n_train - 1


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


@pytest.mark.parametrize("method", METHODS)
def test_max_iter_zero_returns_the_start(decoder, method):
    X = _randn(20, 6)
    start = torch.full((20, 2), 0.5, dtype=torch.float64)
    result = infer_latents(decoder, X, start, loss="mse", method=method, max_iter=0)
    assert torch.equal(result.latents, start)
    assert result.n_iter.tolist() == [0] * 20 and not result.converged.any()


@pytest.mark.parametrize("method", METHODS)
def test_tolerance_sets_the_work_and_the_convergence_flags(decoder, method):
    X = decoder(_randn(40, 2, seed=1)).detach() + 0.1 * _randn(40, 6, seed=2)
    kw = dict(loss="mse", method=method, max_iter=2000)
    loose = infer_latents(decoder, X, _zeros, tol=1e-1, **kw)
    tight = infer_latents(decoder, X, _zeros, tol=1e-9, **kw)
    assert loose.converged.all() and tight.converged.all()
    assert loose.n_iter.float().mean() < tight.n_iter.float().mean()
    loss = lambda r: float(sample_losses(decoder(r.latents), X, "mse").sum().detach())  # noqa: E731
    assert loss(tight) < loss(loose)
    cut_short = infer_latents(decoder, X, _zeros, tol=1e-9, **dict(kw, max_iter=2))
    assert not cut_short.converged.any() and cut_short.n_iter.max() == 2


def test_step_cuts_converge_further_than_constant_step(decoder, monkeypatch):
    from sklearn_autodecoder import _inference

    X = decoder(_randn(50, 2)).detach()
    kw = dict(loss="mse", method="adam", max_iter=300, learning_rate=0.3, tol=1e-6)

    def final_loss():
        Z = infer_latents(decoder, X, _zeros, **kw).latents
        return float(sample_losses(decoder(Z), X, "mse").sum().detach())

    with_cuts = final_loss()
    monkeypatch.setattr(_inference, "N_CUTS", 1)
    assert with_cuts < 0.5 * final_loss()


@pytest.mark.parametrize("method", METHODS)
def test_chunk_size_and_order_do_not_change_results(decoder, method):
    X = _randn(37, 6)
    kw = dict(loss="mse", method=method, max_iter=30)
    a = infer_latents(decoder, X, _zeros, batch_size=37, **kw)
    b = infer_latents(decoder, X, _zeros, batch_size=5, **kw)
    c = infer_latents(decoder, X.flip(0), _zeros, batch_size=16, **kw)
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.latents, c.latents.flip(0), rtol=0, atol=1e-12)
    assert torch.equal(a.n_iter, b.n_iter) and torch.equal(a.converged, b.converged)


def _max_relative_row_difference(a, b):
    return float(((a - b).norm(dim=1) / a.norm(dim=1)).max())


@pytest.fixture(scope="module")
def float32_decoders():
    """Two small float32 ReLU decoders with kinked inference landscapes (BCE).

    An MLP and a tiny conv decoder, trained briefly on 8x8 digits.
    """
    X = (load_digits().data[:300] / 16.0).astype(np.float32)
    spec = ConvDecoderSpec(
        image_shape=(1, 8, 8), n_components=6, linear_head=(16, 2, 2), layers=((8, 4, 2, 1), (1, 4, 2, 1)),
        defaults=dict(loss="bce", max_iter=20, batch_size=32),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowLoadWarning)
        mlp = AutoDecoder(n_components=8, hidden_layer_sizes=(64, 64), loss="bce", max_iter=15, device="cpu", random_state=0)
        conv = ConvAutoDecoder(spec, device="cpu", random_state=0)
        return {"mlp": mlp.fit(X[:150]).decoder_, "conv": conv.fit(X).decoder_}


@pytest.mark.parametrize("model", ["mlp", "conv"])
@pytest.mark.parametrize("method", METHODS)
def test_float32_rows_do_not_depend_on_their_chunk(float32_decoders, model, method):
    # float32 rounding changes with a row's batch and its position there;
    # converged inference on a kinked landscape amplifies it (without the
    # padding and the per-row input gradient, five of these six cases fail,
    # chunk-7 rows differing by 0.004 to 2 times their norm) unless each
    # row's arithmetic is independent of the others.
    decoder = float32_decoders[model]
    m = decoder[0].in_features if model == "mlp" else decoder[0][0].in_features
    X = torch.as_tensor(load_digits().data[300:420] / 16.0, dtype=torch.float32)
    kw = dict(loss="bce", method=method, max_iter=30 if method == "lm" else 100, tol=1e-6, learning_rate=0.2)

    def infer(X, batch_size):
        return infer_latents(decoder, X, lambda x, _: torch.zeros(len(x), m), batch_size=batch_size, **kw).latents

    whole = infer(X, 256)
    assert _max_relative_row_difference(whole, infer(X, 7)) <= 1e-3
    assert _max_relative_row_difference(whole[::3], infer(X[::3], 256)) <= 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_masked_entries_are_ignored(decoder, method):
    X = _randn(12, 6)
    mask = torch.rand(12, 6, generator=torch.Generator().manual_seed(3)) < 0.6
    mask[:, 0] = True
    zeros_for_hidden = torch.where(mask, X, torch.zeros(()))
    garbage_for_hidden = torch.where(mask, X, torch.full((), 1e3, dtype=X.dtype))
    kw = dict(loss="mse", mask=mask, method=method, max_iter=50)
    a = infer_latents(decoder, zeros_for_hidden, _zeros, **kw).latents
    b = infer_latents(decoder, garbage_for_hidden, _zeros, **kw).latents
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _linear_decoder(n_components=3, n_features=10):
    """An affine decoder, with its weight matrix W (n_components, n_features) and bias."""
    decoder = _seeded(torch.nn.Linear(n_components, n_features), scale=1.0).double()
    return decoder, decoder.weight.detach().T, decoder.bias.detach()


def test_lm_on_a_linear_decoder_is_the_least_squares_projection_in_few_steps():
    decoder, W, b = _linear_decoder()
    X = _randn(50, 10, seed=4)
    exact = torch.linalg.solve(W @ W.T, W @ (X - b).T).T
    zeros = lambda x, m: torch.zeros(len(x), 3, dtype=x.dtype)  # noqa: E731
    result = infer_latents(decoder, X, zeros, loss="mse", method="lm", max_iter=50, tol=1e-12)
    torch.testing.assert_close(result.latents, exact, rtol=0, atol=1e-8)
    assert result.converged.all() and result.n_iter.max() <= 5
    # L-BFGS gets there too, to the float precision a loss test can see.
    lbfgs = infer_latents(decoder, X, zeros, loss="mse", method="lbfgs", max_iter=50, tol=1e-12)
    torch.testing.assert_close(lbfgs.latents, exact, rtol=0, atol=1e-5)


def test_masked_linear_projection_uses_the_observed_entries_only():
    decoder, W, b = _linear_decoder()
    X = _randn(8, 10, seed=5)
    mask = torch.rand(8, 10, generator=torch.Generator().manual_seed(6)) < 0.7
    zeros = lambda x, m: torch.zeros(len(x), 3, dtype=x.dtype)  # noqa: E731
    Z = infer_latents(decoder, torch.where(mask, X, 0.0), zeros, loss="mse", mask=mask, method="lm", tol=1e-12).latents
    for i in range(8):
        Wi, ri = W[:, mask[i]], (X[i] - b)[mask[i]]
        torch.testing.assert_close(Z[i], torch.linalg.solve(Wi @ Wi.T, Wi @ ri), rtol=0, atol=1e-8)


@pytest.mark.parametrize("method", ["lm", "lbfgs"])
def test_l2_penalty_gives_the_ridge_solution(method):
    decoder, W, b = _linear_decoder()
    X = _randn(20, 10, seed=7)
    ridge = torch.linalg.solve(W @ W.T + 2.0 * torch.eye(3, dtype=W.dtype), W @ (X - b).T).T
    zeros = lambda x, m: torch.zeros(len(x), 3, dtype=x.dtype)  # noqa: E731
    kw = dict(loss="mse", method=method, max_iter=100, tol=1e-12)
    shorthand = infer_latents(decoder, X, zeros, latent_l2=2.0, **kw).latents
    callable_ = infer_latents(decoder, X, zeros, penalty=GaussianPrior(2.0).penalty, **kw).latents
    torch.testing.assert_close(shorthand, callable_, rtol=0, atol=0)
    torch.testing.assert_close(shorthand, ridge, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="either penalty or latent_l2"):
        infer_latents(decoder, X, zeros, latent_l2=1.0, penalty=GaussianPrior(1.0).penalty, loss="mse")


@pytest.mark.parametrize("method", METHODS)
def test_a_mixture_prior_plugs_in(decoder, method):
    # -log of a two-component Gaussian mixture: non-convex between the modes.
    means = torch.tensor([[-1.0, 0.0], [1.5, 0.5]], dtype=torch.float64)

    def penalty(z):
        return -torch.logsumexp(-0.5 * ((z[:, None, :] - means) ** 2).sum(-1), dim=1)

    X = decoder(_randn(30, 2, seed=8)).detach() + 0.3 * _randn(30, 6, seed=9)
    kw = dict(loss="mse", method=method, max_iter=200, penalty=penalty)
    result = infer_latents(decoder, X, _zeros, **kw)
    objective = lambda Z: sample_losses(decoder(Z), X, "mse") + penalty(Z)  # noqa: E731
    start = torch.zeros(30, 2, dtype=torch.float64)
    assert torch.isfinite(result.latents).all()
    assert (objective(result.latents) <= objective(start) + 1e-12).all()
    split = infer_latents(decoder, X, _zeros, batch_size=7, **kw)
    torch.testing.assert_close(result.latents, split.latents, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_saturated_bce_start_still_moves(method):
    # Logits of +-30 against the opposite targets: the probability form of
    # BCE has a zero gradient there (float32 sigmoid(30) == 1); logits do not.
    layer = torch.nn.Linear(1, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0], [1.0], [-1.0], [-1.0]]))
        layer.bias.zero_()
    decoder = torch.nn.Sequential(layer, torch.nn.Sigmoid())
    X = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    start = torch.tensor([[30.0]])
    kw = dict(loss="bce", method=method, max_iter=200, learning_rate=5.0)
    z = infer_latents(decoder, X, start, **kw).latents
    assert float(z) < -3.0  # the optimum is at -infinity; it left the plateau


def test_unknown_method(decoder):
    with pytest.raises(ValueError, match="Unknown inference method 'newton'"):
        infer_latents(decoder, _randn(2, 6), _zeros, loss="mse", method="newton")


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
