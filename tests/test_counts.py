"""Count likelihoods (loss="poisson", "negative_binomial"), library sizes and count checks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from sklearn_autodecoder import AutoDecoder, load
from sklearn_autodecoder._likelihoods import (
    NegativeBinomialLikelihood,
    PoissonLikelihood,
    get_likelihood,
)
from sklearn_autodecoder._losses import decoded_losses, sample_losses
from sklearn_autodecoder.datasets import make_count_data

CPU = dict(device="cpu", random_state=0, n_jobs=1)
COUNT_LOSSES = ["poisson", "negative_binomial"]


@pytest.fixture(scope="module")
def counts():
    X, y = make_count_data(260, n_features=40, n_groups=3, n_components=3, library_size=300, random_state=0)
    return X, y


def _nb(theta):
    likelihood = NegativeBinomialLikelihood()
    likelihood.setup(len(theta))
    with torch.no_grad():
        likelihood.log_dispersion.copy_(torch.log(torch.as_tensor(theta)))
    return likelihood.double()


def _inputs(seed=0, n=5, p=6):
    g = torch.Generator().manual_seed(seed)
    f = torch.log_softmax(torch.randn(n, p, generator=g, dtype=torch.float64), dim=1)
    x = torch.poisson(torch.full((n, p), 4.0, dtype=torch.float64), generator=g)
    return f, x


def test_nll_is_the_exact_negative_log_pmf():
    f, x = _inputs()
    total = x.sum(dim=1, keepdim=True)
    mu = (total * f.exp()).numpy()
    poisson = PoissonLikelihood().nll(f, x, "log_proportion")
    np.testing.assert_allclose(poisson.numpy(), -stats.poisson.logpmf(x.numpy(), mu), rtol=1e-10)
    theta = np.array([0.3, 1.0, 2.0, 5.0, 40.0, 1e3])
    nb = _nb(theta).nll(f, x, "log_proportion")
    # scipy's nbinom(n=theta, p=theta / (theta + mu)) is NB2 with mean mu.
    expected = -stats.nbinom.logpmf(x.numpy(), theta, theta / (theta + mu))
    np.testing.assert_allclose(nb.detach().numpy(), expected, rtol=1e-8)


@pytest.mark.parametrize("name", COUNT_LOSSES)
def test_derivatives_match_autograd_and_the_fisher_weight(name):
    f, x = _inputs(1)
    likelihood = _nb(np.array([0.5, 1.0, 2.0, 3.0, 10.0, 100.0])) if name == "negative_binomial" else PoissonLikelihood()
    offset = likelihood.row_offset(f, x, "log_proportion")  # held fixed, as the callers do
    f = f.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(likelihood.nll(f, x, "log_proportion", offset).sum(), f)
    slope, weight = likelihood.derivatives(f.detach(), x, "log_proportion", offset)
    torch.testing.assert_close(slope, grad)
    # The Fisher weight: the curvature in log mu averaged over x ~ the model.
    log_mu = (torch.log(offset) + f.detach())[0, :3]
    support = torch.arange(0, 400, dtype=torch.float64)[:, None]
    g = log_mu.expand(len(support), -1).clone().requires_grad_(True)
    if name == "negative_binomial":  # the first three features' thetas
        theta = likelihood.dispersion[:3].detach()
        element = (torch.lgamma(theta) + torch.lgamma(support + 1) - torch.lgamma(support + theta)
                   - theta * torch.log(theta / (theta + g.exp())) - support * torch.log(g.exp() / (theta + g.exp())))
    else:
        element = likelihood.nll(g, support.expand(-1, 3), "log_proportion",
                                 torch.ones(len(support), 1, dtype=torch.float64))
    pmf = torch.exp(-element.detach())
    assert torch.allclose(pmf.sum(dim=0), torch.ones(3, dtype=torch.float64))
    (first,) = torch.autograd.grad(element.sum(), g, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), g)
    torch.testing.assert_close((pmf * second).sum(dim=0), weight[0, :3], rtol=1e-6, atol=1e-9)


def test_library_size_is_the_profile_scale_over_observed_entries():
    f, x = _inputs(2)
    likelihood = PoissonLikelihood()
    torch.testing.assert_close(likelihood.row_offset(f, x, "log_proportion"), x.sum(dim=1, keepdim=True))
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, :2] = False
    offset = likelihood.row_offset(f, x, "log_proportion", mask)
    expected = x[:, 2:].sum(1, keepdim=True) / f.exp()[:, 2:].sum(1, keepdim=True)
    torch.testing.assert_close(offset, expected)
    # It is the Poisson's optimal scale: the observed means sum to the observed counts.
    mu = offset * f.exp()
    torch.testing.assert_close(mu[:, 2:].sum(1), x[:, 2:].sum(1))


def test_negative_binomial_pairwise_ranks_with_the_poisson_form():
    f, x = _inputs(3)
    refs = torch.softmax(torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4)), 1)
    nb, poisson = _nb(np.full(6, 2.0)), PoissonLikelihood()
    torch.testing.assert_close(nb.pairwise(x, None, refs), poisson.pairwise(x, None, refs))
    expected = torch.stack([sample_losses(refs[j].expand(5, -1), x, poisson) for j in range(4)], dim=1)
    torch.testing.assert_close(poisson.pairwise(x, None, refs), expected)


def test_large_outputs_stay_finite():
    f = torch.tensor([[-200.0, 0.0, -1e4]], dtype=torch.float32)
    x = torch.tensor([[3.0, 1e6, 0.0]])
    for likelihood in (PoissonLikelihood(), _nb(np.ones(3)).float()):
        values = likelihood.nll(f, x, "log_proportion")
        assert torch.isfinite(values).all()


def test_poisson_linear_decoder_reaches_the_poisson_pca_optimum():
    # A direct L-BFGS fit of the same model, log mu = log L + log_softmax(z W^T + b),
    # from the auto-decoder's solution and from three random starts.
    X, _ = make_count_data(80, n_features=15, n_groups=3, n_components=2, library_size=200, dispersion=None,
                           random_state=0)
    model = AutoDecoder(n_components=2, hidden_layer_sizes=(), loss="poisson", max_iter=1500, tol=0.0, early_stopping=False,
                        weight_decay=0.0, learning_rate=3e-2, latent_learning_rate=3e-2, batch_size=80,
                        **CPU).fit(X)
    X_t = torch.as_tensor(X, dtype=torch.float64)
    Z = torch.as_tensor(model.embedding_)
    fitted = float(decoded_losses(model.decoder_, Z, torch.as_tensor(X), model.likelihood_).double().sum())

    def direct(Z0, W0, b0):
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (Z0, W0, b0)]
        optimizer = torch.optim.LBFGS(params, max_iter=5000, tolerance_grad=1e-10, tolerance_change=1e-14,
                                      history_size=50, line_search_fn="strong_wolfe")

        def nll():
            log_mu = torch.log(X_t.sum(1, keepdim=True)) + torch.log_softmax(params[0] @ params[1].T + params[2], 1)
            return (log_mu.exp() - X_t * log_mu + torch.lgamma(X_t + 1)).sum()

        def closure():
            optimizer.zero_grad()
            value = nll()
            value.backward()
            return value

        for _ in range(5):
            optimizer.step(closure)
        return float(nll())

    linear = model.decoder_[0]
    rng = np.random.RandomState(0)
    optimum = min(
        direct(model.embedding_, linear.weight.detach().numpy(), linear.bias.detach().numpy()),
        *(direct(0.1 * rng.randn(80, 2), 0.1 * rng.randn(15, 2), np.zeros(15)) for _ in range(3)),
    )
    assert (fitted - optimum) / optimum < 1e-3


@pytest.mark.parametrize("loss", COUNT_LOSSES)
def test_count_models_fit_transform_score_on_sparse_as_on_dense(counts, loss):
    X, _ = counts
    params = dict(n_components=3, hidden_layer_sizes=(16,), loss=loss, max_iter=5, inference_max_iter=30, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = AutoDecoder(**params).fit(X[:200])
        sparse = AutoDecoder(**params).fit(sp.csr_matrix(X[:200]))
        np.testing.assert_array_equal(dense.embedding_, sparse.embedding_)
        np.testing.assert_array_equal(dense.transform(X[200:]), sparse.transform(sp.csr_array(X[200:])))
        assert dense.score(X[200:]) == sparse.score(sp.csr_matrix(X[200:]))
        np.testing.assert_allclose(dense.score_samples(X[200:]), sparse.score_samples(sp.csr_matrix(X[200:])))
    assert isinstance(dense.decoder_[-1], torch.nn.Softmax)
    assert dense.score(X[200:]) < 0  # the exact log-likelihood per entry


def test_score_is_the_mean_log_pmf_per_entry(counts):
    X, _ = counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoDecoder(n_components=2, hidden_layer_sizes=(), loss="poisson", max_iter=5, **CPU).fit(X)
        Z = model.transform(X[:30])
    proportions = model.inverse_transform(Z, library_size=1.0)
    mu = proportions * X[:30].sum(axis=1, keepdims=True)
    expected = stats.poisson.logpmf(X[:30], mu).mean()
    assert model.score(X[:30]) == pytest.approx(expected, rel=1e-5)


def test_negative_binomial_dispersion_is_trained_and_saved(counts, tmp_path):
    X, _ = counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoDecoder(n_components=3, loss="negative_binomial", max_iter=10, **CPU).fit(X)
    start = NegativeBinomialLikelihood()
    start.setup(X.shape[1], model._rows(X, reset=False))
    theta = model.likelihood_.dispersion.detach()
    assert theta.shape == (X.shape[1],) and torch.all(theta > 0)
    assert not torch.allclose(theta, start.dispersion.detach())  # trained from its moment start
    model.save(tmp_path / "nb.zip")
    loaded = load(tmp_path / "nb.zip")
    torch.testing.assert_close(loaded.likelihood_.dispersion, model.likelihood_.dispersion)
    assert float(loaded.likelihood_.library_size) == float(model.likelihood_.library_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(loaded.transform(X[:20]), model.transform(X[:20]))


def test_negative_binomial_beats_poisson_on_overdispersed_counts():
    X, _ = make_count_data(500, n_features=60, n_groups=3, n_components=3, library_size=500, dispersion=2.0,
                           random_state=1)
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for loss in COUNT_LOSSES:
            model = AutoDecoder(n_components=3, hidden_layer_sizes=(), loss=loss, max_iter=40, **CPU).fit(X[:400])
            scores[loss] = model.score(X[400:])
    assert scores["negative_binomial"] > scores["poisson"]


def test_inverse_transform_returns_expected_counts_at_a_library_size(counts):
    X, _ = counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # (every row trains: no held-out rows, whose totals the median would miss)
        model = AutoDecoder(n_components=2, loss="poisson", max_iter=3, early_stopping=False, **CPU).fit(X)
        Z = model.transform(X[:4])
    median = np.median(X.sum(axis=1))
    assert float(model.likelihood_.library_size) == pytest.approx(median)
    np.testing.assert_allclose(model.inverse_transform(Z).sum(axis=1), median, rtol=1e-5)
    np.testing.assert_allclose(model.inverse_transform(Z, library_size=[1, 2, 3, 4]).sum(axis=1), [1, 2, 3, 4],
                               rtol=1e-5)
    at_one = model.inverse_transform(Z, library_size=1.0)
    np.testing.assert_allclose(model.inverse_transform(Z, library_size=10.0), 10 * at_one, rtol=1e-5)
    for bad in (-1.0, [1.0, 2.0], np.nan):
        with pytest.raises(ValueError, match="library_size must be"):
            model.inverse_transform(Z, library_size=bad)
    mse = AutoDecoder(n_components=2, max_iter=2, **CPU).fit(X)
    with pytest.raises(ValueError, match="library_size applies to the count likelihoods"):
        mse.inverse_transform(Z, library_size=10.0)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize("loss", COUNT_LOSSES)
def test_bad_counts_are_rejected_with_their_row_and_column(counts, loss, container):
    X = counts[0][:50].copy()
    bad = X.copy()
    bad[7, 3] = -2
    with pytest.raises(ValueError, match=r"X\[7, 3\] = -2.0 is negative"):
        AutoDecoder(loss=loss, **CPU).fit(container(bad))
    bad = X.copy()
    bad[11, 5] = 2.5
    with pytest.raises(ValueError, match=r"X\[11, 5\] = 2.5 is not an integer"):
        AutoDecoder(loss=loss, **CPU).fit(container(bad))
    bad = X.copy()
    bad[[4, 9]] = 0
    with pytest.raises(ValueError, match=r"Samples \[4, 9\] have no counts"):
        AutoDecoder(loss=loss, **CPU).fit(container(bad))
    bad = X.copy()
    bad[6, 1] = np.inf
    with pytest.raises(ValueError, match="infinity.*row 6"):
        AutoDecoder(loss=loss, **CPU).fit(container(bad))


def test_bad_counts_are_rejected_in_transform_too(counts):
    X = counts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoDecoder(n_components=2, loss="poisson", max_iter=2, **CPU).fit(X)
    bad = X[:5].copy()
    bad[2] = 0
    with pytest.raises(ValueError, match=r"Samples \[2\] have no counts"):
        model.transform(sp.csr_matrix(bad))
    with pytest.raises(ValueError, match="is negative"):
        model.score(-X[:5])


def test_integer_dtypes_and_missing_counts(counts):
    X = counts[0]
    params = dict(n_components=2, hidden_layer_sizes=(8,), loss="negative_binomial", max_iter=3,
                  inference_max_iter=20, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        as_int = AutoDecoder(**params).fit(X.astype(np.int32))
        as_float = AutoDecoder(**params).fit(X)
        np.testing.assert_array_equal(as_int.embedding_, as_float.embedding_)
        # NaN marks a missing count: explicit NaN in a sparse matrix as in a dense one.
        missing = X.copy()
        missing[3, :10] = np.nan
        dense = AutoDecoder(**params).fit(missing)
        sparse = AutoDecoder(**params).fit(sp.csr_matrix(missing))
        np.testing.assert_array_equal(dense.embedding_, sparse.embedding_)
        assert np.isfinite(dense.score(missing))


@pytest.mark.parametrize("init", ["nearest", "encoder"])
def test_count_models_with_the_mixture_prior_and_other_starts(counts, init):
    X, y = counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoDecoder(n_components=3, loss="negative_binomial", latent_prior="gmm", n_prior_components=3,
                            init=init, encoder_max_iter=2, max_iter=5, inference_max_iter=20, **CPU).fit(X)
        labels = model.predict(X[:50])
        samples, _ = model.sample(4, random_state=0)
    assert labels.shape == (50,)
    assert np.all(samples >= 0)
    np.testing.assert_allclose(samples.sum(axis=1), float(model.likelihood_.library_size), rtol=1e-4)


def test_registry_objects_for_counts():
    assert isinstance(get_likelihood("poisson"), PoissonLikelihood)
    assert get_likelihood("negative_binomial").output_activation == "softmax"


def test_a_wrapped_decoder_keeps_its_softmax_outside():
    # compile=True and DDP wrap the decoder: the count head must still see its softmax.
    from sklearn_autodecoder._likelihoods import wrap_keeping_logits
    from sklearn_autodecoder.nn import MLPDecoder

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, z):
            return self.module(z)

    decoder = MLPDecoder(2, 5, (4,), output_activation="softmax")
    wrapped = wrap_keeping_logits(decoder, Wrapper)
    assert isinstance(wrapped[-1], torch.nn.Softmax)
    likelihood = PoissonLikelihood()
    forward, link = likelihood.head(wrapped)
    assert link == "log_proportion"
    z = torch.randn(3, 2)
    torch.testing.assert_close(forward(z).exp(), decoder(z))
    # A decoder without a softmax: its positive outputs are unnormalised proportions.
    plain = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Softplus())
    forward, link = likelihood.head(plain)
    assert link == "rate"
    x = torch.poisson(torch.full((3, 5), 3.0))
    rates = plain(z)
    expected = PoissonLikelihood().nll(torch.log_softmax(torch.log(rates), 1), x, "log_proportion")
    torch.testing.assert_close(likelihood.nll(rates, x, "rate"), expected)


@pytest.mark.parametrize("cls", [PoissonLikelihood, NegativeBinomialLikelihood])
def test_count_likelihoods_build_no_tensor_off_their_inputs_device(cls):
    # The meta device stands in for a GPU: a tensor built on the CPU next to
    # the inputs would raise a device mismatch.
    likelihood = cls()
    likelihood.setup(6)
    likelihood = likelihood.to("meta")
    f, x = torch.randn(4, 6, device="meta"), torch.randn(4, 6, device="meta")
    mask = torch.ones(4, 6, dtype=torch.bool, device="meta")
    for link in ("log_proportion", "rate"):
        offset = likelihood.row_offset(f, x, link, mask)
        assert likelihood.nll(f, x, link, offset).device.type == "meta"
        assert all(t.device.type == "meta" for t in likelihood.derivatives(f, x, link, offset))
    assert likelihood.pairwise(x, mask, torch.randn(3, 6, device="meta")).device.type == "meta"
    assert likelihood.elementwise(f, x, mask).device.type == "meta"
    assert likelihood.expected(f, torch.ones(4, 1, device="meta")).device.type == "meta"


def test_negative_binomial_moment_start_recovers_the_dispersion():
    # Without latent structure, the moment start is a consistent estimate of theta.
    X, _, params = make_count_data(3000, n_features=20, n_groups=1, effect_size=0.0, library_size=400,
                                   dispersion=4.0, return_params=True, random_state=0)
    model = AutoDecoder(loss="negative_binomial", **CPU)
    likelihood = NegativeBinomialLikelihood()
    likelihood.setup(20, model._rows(X, reset=True, likelihood=likelihood))
    ratio = likelihood.dispersion.detach().numpy() / params["dispersion"]
    assert 0.8 < np.median(ratio) < 1.25
    assert float(likelihood.library_size) == np.median(X.sum(axis=1))


def test_negative_binomial_inference_converges_at_the_rounding_floor():
    # An NB row's loss carries large constant terms (the lgamma's), so it reaches
    # its optimum to float32 rounding within a few steps; curvature pairs made of
    # that rounding then kept L-BFGS from accepting a unit step, and 6.5% of the
    # rows ran to inference_max_iter (a ConvergenceWarning at the defaults).
    X, _ = make_count_data(700, 500, n_groups=5, library_size=500, library_size_spread=0.8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 5-epoch fit's own ConvergenceWarning
        model = AutoDecoder(n_components=10, hidden_layer_sizes=(), loss="negative_binomial", max_iter=5,
                            random_state=0).fit(X[:500])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = model.transform(X[500:])
    assert np.isfinite(Z).all()
    # Stopping there costs nothing: a much tighter tolerance finds the same optimum.
    default = model.score(X[500:])
    assert model.set_params(inference_tol=1e-7).score(X[500:]) == pytest.approx(default, rel=1e-5)
