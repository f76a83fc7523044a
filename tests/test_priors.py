"""The Gaussian-mixture latent prior: densities, sampling, hyper-priors, starts."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from sklearn_autodecoder._inference import pairwise_losses
from sklearn_autodecoder._priors import (
    INIT_RIDGE,
    GaussianMixturePrior,
    best_prior_starts,
    prior_loss,
    prior_penalty,
)

COVARIANCE_TYPES = ["full", "diag", "spherical"]


@pytest.fixture(scope="module")
def blobs():
    """Three separated 3-D clusters of unequal size and spread."""
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -2.0]])
    scales = np.array([[0.5, 1.0, 0.3], [1.0, 0.4, 0.6], [0.7, 0.7, 0.7]])
    sizes = [150, 100, 50]
    X = np.vstack([c + s * rng.randn(n, 3) for c, s, n in zip(centres, scales, sizes)])
    return X, np.repeat(np.arange(3), sizes)


def _prior_like(gm, covariance_type):
    """A float64 prior holding the parameters of a fitted sklearn mixture."""
    K, m = gm.means_.shape
    prior = GaussianMixturePrior(m, K, covariance_type=covariance_type, generator=0).double()
    return prior.set_parameters(gm.weights_, gm.means_, gm.covariances_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_density_and_responsibilities_match_sklearn(blobs, covariance_type):
    X, _ = blobs
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    prior = _prior_like(gm, covariance_type)
    Z = torch.as_tensor(X)
    np.testing.assert_allclose(prior.log_prob(Z).detach().numpy(), gm.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(prior.responsibilities(Z).detach().numpy(), gm.predict_proba(X), atol=1e-10)
    # The fitted attributes come back in sklearn's shapes.
    np.testing.assert_allclose(prior.weights.numpy(), gm.weights_, rtol=1e-12)
    np.testing.assert_allclose(prior.means.numpy(), gm.means_, rtol=1e-12)
    np.testing.assert_allclose(prior.covariances.numpy(), gm.covariances_, rtol=1e-12)


def test_component_log_prob_is_weighted_gaussian():
    prior = GaussianMixturePrior(2, 2, generator=0).double()
    prior.set_parameters([0.25, 0.75], [[0.0, 0.0], [1.0, -1.0]], [[1.0, 4.0], [0.5, 0.5]])
    z = torch.tensor([[0.5, 0.5]], dtype=torch.float64)

    def normal(x, mean, var):
        return -0.5 * ((x - mean) ** 2 / var + math.log(2 * math.pi * var))

    expected = [
        math.log(0.25) + normal(0.5, 0.0, 1.0) + normal(0.5, 0.0, 4.0),
        math.log(0.75) + normal(0.5, 1.0, 0.5) + normal(0.5, -1.0, 0.5),
    ]
    np.testing.assert_allclose(prior.component_log_prob(z)[0].detach().numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_and_row_independent_far_from_the_means(dtype):
    prior = GaussianMixturePrior(4, 5, generator=0).to(dtype)
    z = torch.randn(30, 4, generator=torch.Generator().manual_seed(1), dtype=dtype) * 1e3
    log_p = prior.log_prob(z)
    assert log_p.dtype == dtype and torch.isfinite(log_p).all()
    resp = prior.responsibilities(z)
    assert torch.isfinite(resp).all()
    torch.testing.assert_close(resp.sum(dim=1), torch.ones(30, dtype=dtype))
    # Each row depends on its own latent only, bit for bit.
    assert torch.equal(prior.log_prob(z[7:9]), log_p[7:9])
    assert torch.equal(prior_penalty(prior, z[:1]), -log_p[:1])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_statistics_match_the_parameters(covariance_type):
    prior = GaussianMixturePrior(2, 2, covariance_type=covariance_type, generator=0).double()
    variances = {
        "full": [[[1.0, 0.8], [0.8, 2.0]], [[0.5, -0.3], [-0.3, 0.4]]],
        "diag": [[0.25, 1.0], [4.0, 0.5]],
        "spherical": [0.25, 4.0],
    }[covariance_type]
    prior.set_parameters([0.3, 0.7], [[-5.0, 0.0], [5.0, 2.0]], variances)
    z, y = prior.sample(40_000, generator=0)
    assert z.shape == (40_000, 2) and z.dtype == torch.float64 and y.dtype == torch.int64
    assert abs(float((y == 0).double().mean()) - 0.3) < 0.01
    expected = torch.as_tensor(variances, dtype=torch.float64)
    if covariance_type != "full":
        expected = torch.diag_embed(expected.reshape(2, -1).expand(2, 2))
    for k in range(2):
        members = z[y == k]
        torch.testing.assert_close(members.mean(0), prior.means[k], atol=0.05, rtol=0)
        torch.testing.assert_close(torch.cov(members.T), expected[k], atol=0.05, rtol=0)


def test_seeded_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    prior = GaussianMixturePrior(3, 4, generator=1)
    again = GaussianMixturePrior(3, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(prior.loc, again.loc)
    z1, y1 = prior.sample(50, generator=torch.Generator().manual_seed(5))
    z2, y2 = prior.sample(50, generator=5)
    assert torch.equal(z1, z2) and torch.equal(y1, y2)
    assert not torch.equal(z1, prior.sample(50, generator=6)[0])
    prior.init_from(torch.randn(60, 3, generator=torch.Generator().manual_seed(0)), generator=2)
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gradients_reach_latents_and_parameters(covariance_type):
    prior = GaussianMixturePrior(3, 4, covariance_type=covariance_type, generator=0)
    z = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    prior_loss(prior, z).backward()
    for tensor in (z, *prior.parameters()):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_prior_loss_combines_density_and_hyper_prior():
    prior = GaussianMixturePrior(3, 4, generator=0).double()
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = -prior.log_prob(z).sum() - 6 * 0.01 * prior.parameter_log_prior()
    torch.testing.assert_close(prior_loss(prior, z, parameter_weight=0.01), expected)
    assert prior.latent_scale is None  # no scale anchor without init_from


def test_prior_loss_anchors_the_latents_scale_after_init_from(blobs):
    X, _ = blobs
    Z = torch.as_tensor(X)
    prior = GaussianMixturePrior(3, 3, generator=0).double().init_from(Z, generator=0)
    assert prior.latent_scale == pytest.approx(float((Z**2).sum(dim=1).mean()))

    def anchor(z):
        return prior_loss(prior, z) - (-prior.log_prob(z).sum() - len(z) * prior.parameter_log_prior())

    assert abs(float(anchor(Z).detach())) < 1e-9  # nothing at the start's scale
    # Shrinking every latent by 10% costs len(z) * 0.5 * (2 log 0.9 / 0.05)^2 nats ...
    shrunk = (0.9 * Z).requires_grad_(True)
    expected = len(Z) * 0.5 * (2 * math.log(0.9) / 0.05) ** 2
    assert float(anchor(shrunk).detach()) == pytest.approx(expected, rel=1e-6)
    # ... and its gradient pushes every latent outwards.
    (gradient,) = torch.autograd.grad(anchor(shrunk), shrunk)
    assert bool(((gradient * shrunk).sum(dim=1) < 0).all())


def test_softball_penalises_means_outside_the_radius():
    prior = GaussianMixturePrior(5, 1, mean_radius=2.0, mean_sharpness=10.0, generator=0).double()
    log_prior = {}
    for norm in (0.0, 1.0, 1.8, 3.0, 6.0):
        with torch.no_grad():
            prior.loc.copy_(torch.tensor([[norm, 0, 0, 0, 0]]))
        log_prior[norm] = float(prior.parameter_log_prior().detach())
    assert all(math.isfinite(v) for v in log_prior.values())
    assert abs(log_prior[0.0] - log_prior[1.0]) < 0.01  # flat well inside the ball
    assert log_prior[1.8] > log_prior[3.0] + 3 > log_prior[6.0] + 15


def test_dirichlet_favours_equal_weights_above_one():
    def log_prior(alpha, weights):
        prior = GaussianMixturePrior(2, 3, weight_concentration=alpha, generator=0).double()
        prior.set_parameters(weights, prior.means, prior.covariances)
        return float(prior.parameter_log_prior().detach())

    equal, skewed = [1 / 3] * 3, [0.8, 0.15, 0.05]
    assert log_prior(5.0, equal) > log_prior(5.0, skewed) + 1
    assert log_prior(1.0, equal) == pytest.approx(log_prior(1.0, skewed), abs=1e-12)


def test_log_variance_prior_peaks_at_its_centre():
    prior = GaussianMixturePrior(2, 2, log_variance_mean=-1.0, log_variance_std=0.5, generator=0).double()
    assert torch.equal(prior.log_var, torch.full((2, 2), -1.0, dtype=torch.float64))

    def at(value):
        with torch.no_grad():
            prior.log_var.fill_(value)
        return float(prior.parameter_log_prior().detach())

    assert at(-1.0) > at(-0.5) > at(1.0)
    # Four entries, each a standardised distance of 1 from the centre.
    assert at(-1.0) - at(-0.5) == pytest.approx(4 * 0.5, rel=1e-9)


def test_full_covariance_volume_is_set_by_the_log_variances():
    # The hyper-prior acts on the conditional variances; their sum is the
    # log-determinant whatever the off-diagonal (shape) parameters.
    prior = GaussianMixturePrior(3, 2, covariance_type="full", generator=0).double()
    with torch.no_grad():
        prior.precision_offdiag.copy_(torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(torch.logdet(prior.covariances), prior.log_var.detach().sum(dim=1))
    before = float(prior.parameter_log_prior().detach())
    with torch.no_grad():
        prior.precision_offdiag.mul_(3.0)
    assert float(prior.parameter_log_prior().detach()) == before


def test_default_variance_scales_with_radius_and_components():
    prior = GaussianMixturePrior(3, 8, mean_radius=4.0, covariance_type="spherical", generator=0)
    assert prior.log_var.shape == (8, 1)
    torch.testing.assert_close(prior.covariances, torch.full((8,), (4.0 / 8) ** 2))
    assert bool((prior.loc.norm(dim=1) <= 4.0).all())  # initial means in the ball


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_init_from_finds_separated_clusters(blobs, covariance_type):
    X, labels = blobs
    prior = GaussianMixturePrior(3, 3, covariance_type=covariance_type, generator=0).double()
    prior.init_from(torch.as_tensor(X), generator=0)
    found = prior.responsibilities(torch.as_tensor(X)).argmax(dim=1).numpy()
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, found) > 0.95
    np.testing.assert_allclose(np.sort(prior.weights.numpy()), np.sort([150, 100, 50]) / 300, atol=0.02)
    again = GaussianMixturePrior(3, 3, covariance_type=covariance_type, generator=0).double()
    again.init_from(torch.as_tensor(X), generator=0)
    assert torch.equal(again.loc, prior.loc) and torch.equal(again.log_var, prior.log_var)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_init_from_is_sklearns_em_fit(blobs, covariance_type):
    # The mixture is the most likely of a few EM runs, with a ridge of
    # INIT_RIDGE times the mean variance: sklearn's own fit.
    X, _ = blobs
    prior = GaussianMixturePrior(3, 3, covariance_type=covariance_type, generator=0).double()
    prior.init_from(torch.as_tensor(X), generator=0)
    ridge = INIT_RIDGE * X.var(axis=0).mean()
    gm = GaussianMixture(3, covariance_type=covariance_type, reg_covar=ridge, random_state=0).fit(X)
    assert abs(float(prior.log_prob(torch.as_tensor(X)).detach().mean()) - gm.score(X)) < 1e-3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_init_from_centres_the_hyper_priors_on_the_latents(blobs, covariance_type):
    # Whatever the latents' scale, the softball holds them and the
    # log-variance prior peaks at the fitted variances: empirical Bayes.
    X, _ = blobs
    fits = []
    for scale in (1.0, 100.0):
        prior = GaussianMixturePrior(3, 3, covariance_type=covariance_type, generator=0).double()
        prior.init_from(torch.as_tensor(scale * X), generator=0)
        norms = np.linalg.norm(scale * X, axis=1)
        assert prior.mean_radius == pytest.approx(np.quantile(norms, 0.99), rel=1e-6)
        assert prior.log_variance_mean == pytest.approx(float(prior.log_var.mean()), rel=1e-6)
        assert torch.equal(prior.log_variance_centre, prior.log_var.detach())
        fits.append(prior)
    small, large = fits
    torch.testing.assert_close(large.means, 100 * small.means, rtol=1e-4, atol=1e-6)
    assert large.log_variance_mean == pytest.approx(small.log_variance_mean + 2 * math.log(100), abs=1e-3)


def _linear_decoder(prior, n_features=6):
    decoder = torch.nn.Linear(prior.n_components, n_features).double()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(3)
        decoder.weight.copy_(torch.randn(n_features, prior.n_components, generator=generator))
        decoder.bias.zero_()
    return decoder


@torch.no_grad()
def best_component_starts(decoder, x, mask, prior, *, loss, n_starts=1, references=None):
    """The component means that best explain each sample: inference starts.

    Each component mean is decoded; a sample's score for component k is the
    reconstruction loss of the decoded mean on the sample's observed
    entries plus ``-log p(mu_k)`` under the mixture. The ``n_starts`` best
    means per sample are returned (multiDGD's ``learn_new_representations``
    start). Deterministic, and each row depends on its own sample only.

    Parameters
    ----------
    decoder : callable
        Maps (K, m) latents to (K, n_features) reconstructions (any trailing
        shape is flattened); called once, without gradients. Put it in eval
        mode first (e.g. with :func:`~._inference.frozen`).
    x : torch.Tensor of shape (n_samples, n_features)
        Samples; entries where ``mask`` is False are ignored.
    mask : torch.Tensor of bool of the same shape, or None
        True where an entry is observed.
    prior : GaussianMixturePrior
        In x's dtype and on its device.
    loss : {"mse", "bce"}
        Reconstruction loss.
    n_starts : int, default=1
        Starts per sample, at most K.
    references : torch.Tensor of shape (K, n_features), default=None
        Decoded means, when already computed (saves the decoder call per
        chunk); None decodes them.

    Returns
    -------
    components : torch.Tensor of int64, shape (n_samples, n_starts)
        Component indices, best first.
    z0 : torch.Tensor of shape (n_samples, n_starts, m)
        The corresponding means.
    """
    K = prior.n_prior_components
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or not 1 <= n_starts <= K:
        raise ValueError(f"n_starts must be an integer in [1, n_prior_components={K}], got {n_starts!r}.")
    means = prior.loc.detach()
    if references is None:
        references = decoder(means)
    return best_prior_starts(x, mask, prior, means, references, loss=loss, n_starts=n_starts)


def test_best_component_starts_pick_the_decoded_mean():
    prior = GaussianMixturePrior(2, 4, mean_radius=3.0, generator=0).double()
    decoder = _linear_decoder(prior)
    with torch.no_grad():
        x = decoder(prior.loc)[[2, 0, 3, 3, 1]]
    components, z0 = best_component_starts(decoder, x, None, prior, loss="mse", n_starts=2)
    assert components.shape == (5, 2) and z0.shape == (5, 2, 2)
    assert components[:, 0].tolist() == [2, 0, 3, 3, 1]
    assert torch.equal(z0[:, 0], prior.loc[[2, 0, 3, 3, 1]])
    # The score is the reconstruction loss plus -log p(mean); the runner-up follows it.
    with torch.no_grad():
        scores = pairwise_losses(x, None, decoder(prior.loc), "mse") - prior.log_prob(prior.loc)
    assert torch.equal(components, torch.sort(scores, dim=1, stable=True).indices[:, :2])
    # Rows are independent: a chunk of one gives the same start.
    one, _ = best_component_starts(decoder, x[3:4], None, prior, loss="mse", n_starts=2)
    assert torch.equal(one, components[3:4])


def test_best_prior_starts_score_reconstruction_plus_prior():
    prior = GaussianMixturePrior(2, 3, mean_radius=3.0, generator=0).double()
    decoder = _linear_decoder(prior)
    candidates = torch.cat([prior.loc.detach(), torch.tensor([[0.3, -0.2], [1.5, 1.0]], dtype=torch.float64)])
    with torch.no_grad():
        references = decoder(candidates)
        x = references[[4, 1, 3]] + 0.01
        indices, z0 = best_prior_starts(x, None, prior, candidates, references, loss="mse", n_starts=2)
        scores = pairwise_losses(x, None, references, "mse") - prior.log_prob(candidates)
    assert indices.shape == (3, 2) and z0.shape == (3, 2, 2)
    # A candidate that is not a component mean wins where it fits the sample.
    assert indices[:, 0].tolist() == [4, 1, 3]
    assert torch.equal(indices, torch.sort(scores, dim=1, stable=True).indices[:, :2])
    assert torch.equal(z0, candidates[indices])
    one, _ = best_prior_starts(x[2:], None, prior, candidates, references, loss="mse", n_starts=2)
    assert torch.equal(one, indices[2:])
    with pytest.raises(ValueError, match="n_starts"):
        best_prior_starts(x, None, prior, candidates, references, loss="mse", n_starts=6)


def test_best_component_starts_ignore_unobserved_entries():
    prior = GaussianMixturePrior(2, 3, mean_radius=3.0, generator=0).double()
    decoder = _linear_decoder(prior)
    with torch.no_grad():
        x = decoder(prior.loc)[[1]].clone()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, :3] = False
    x[0, :3] = 1e6  # garbage in the hidden entries
    components, _ = best_component_starts(decoder, x, mask, prior, loss="mse")
    assert components.tolist() == [[1]]
    references = decoder(prior.loc).detach()
    again, _ = best_component_starts(None, x, mask, prior, loss="mse", references=references)
    assert torch.equal(again, components)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_components=0), "n_components"),
        (dict(n_prior_components=2.5), "n_prior_components"),
        (dict(covariance_type="tied"), "covariance_type"),
        (dict(mean_radius=-1.0), "mean_radius"),
        (dict(weight_concentration=0), "weight_concentration"),
        (dict(log_variance_std=float("inf")), "log_variance_std"),
        (dict(log_variance_mean=float("nan")), "log_variance_mean"),
    ],
)
def test_invalid_settings_are_named(kwargs, message):
    settings = dict(n_components=2, n_prior_components=3, generator=0) | kwargs
    with pytest.raises(ValueError, match=message):
        GaussianMixturePrior(**settings)


def test_invalid_inputs_are_named():
    prior = GaussianMixturePrior(2, 3, generator=0)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        prior.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least n_prior_components=3"):
        prior.init_from(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="covariances"):
        prior.set_parameters([0.5, 0.25, 0.25], torch.zeros(3, 2), torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        prior.set_parameters([0.5, 0.5, 0.0], torch.zeros(3, 2), torch.ones(3, 2))
    full = GaussianMixturePrior(2, 1, covariance_type="full", generator=0)
    with pytest.raises(ValueError, match="positive definite"):
        full.set_parameters([1.0], torch.zeros(1, 2), [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="n_starts"):
        best_component_starts(torch.nn.Identity(), torch.zeros(1, 2), None, prior, loss="mse", n_starts=4)


def test_pickles_and_moves_to_float64():
    prior = GaussianMixturePrior(3, 4, generator=0)
    copy = pickle.loads(pickle.dumps(prior))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(copy.log_prob(z), prior.log_prob(z))
    double = copy.double()
    assert double.log_prob(z.double()).dtype == torch.float64
    assert double.sample(3, generator=0)[0].dtype == torch.float64


# ---- the latent-prior protocol ----------------------------------------------------------


def test_no_module_outside_the_prior_room_compares_prior_names():
    from _checks import comparisons_outside

    from sklearn_autodecoder._priors import LATENT_PRIORS

    offenders = comparisons_outside("_priors.py", set(LATENT_PRIORS))
    assert not offenders, "latent_prior names compared outside _priors.py: " + "; ".join(offenders)


def test_gaussian_prior_is_the_l2_penalty_and_a_normalised_density():
    from sklearn_autodecoder._priors import GaussianPrior

    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    prior = GaussianPrior(0.7)
    torch.testing.assert_close(prior.penalty(z), 0.7 * (z**2).sum(1), rtol=0, atol=0)
    assert prior.training_loss(z) == 0.7 * z.pow(2).sum()
    # N(0, I / (2 strength)) in nats.
    normal = torch.distributions.Normal(torch.zeros(3, dtype=torch.float64), (1 / 1.4) ** 0.5)
    torch.testing.assert_close(prior.neg_log_density(z), -normal.log_prob(z).sum(1))
    with pytest.raises(ValueError, match="strength"):
        GaussianPrior(0.0)


def test_mixture_speaks_the_protocol():
    from sklearn_autodecoder._priors import combine_priors, GaussianPrior

    prior = GaussianMixturePrior(2, 3, generator=0).double()
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(prior.neg_log_density(z), -prior.log_prob(z), rtol=0, atol=0)
    torch.testing.assert_close(prior.penalty(z, 2.0), 2.0 * prior_penalty(prior, z), rtol=0, atol=0)
    torch.testing.assert_close(prior.training_loss(z, 2.0), 2.0 * prior_loss(prior, z), rtol=0, atol=0)
    assert torch.equal(prior.start_candidates(), prior.loc.detach())
    assert set(prior.fitted_attributes()) == {"prior_weights_", "prior_means_", "prior_covariances_"}
    both = combine_priors(GaussianPrior(0.5), prior)
    torch.testing.assert_close(both.penalty(z, 2.0), 0.5 * (z**2).sum(1) + 2.0 * prior_penalty(prior, z))
    assert combine_priors(None, prior) is prior and combine_priors(None) is None
    assert {id(p) for p in both.parameters()} == {id(p) for p in prior.parameters()}
