"""The likelihood objects: derivatives, units, registry, and their room."""

import ast

import numpy as np
import pytest
import torch

from _checks import comparisons_outside, string_comparisons

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder._likelihoods import (
    LIKELIHOODS,
    BernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
    get_likelihood,
)
from sklearn_autodecoder._losses import sample_losses


@pytest.mark.parametrize(
    "likelihood, link",
    [(GaussianLikelihood(), "identity"), (BernoulliLikelihood(), "logit"), (BernoulliLikelihood(), "probability")],
)
def test_derivatives_match_autograd(likelihood, link):
    g = torch.Generator().manual_seed(0)
    f = torch.rand(4, 6, generator=g, dtype=torch.float64) * 0.8 + 0.1
    if link == "logit":
        f = 6 * f - 3
    f.requires_grad_(True)
    x = torch.rand(4, 6, generator=g, dtype=torch.float64)
    values = likelihood.nll(f, x, link)
    (grad,) = torch.autograd.grad(values.sum(), f, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), f)
    slope, weight = likelihood.derivatives(f.detach(), x, link)
    torch.testing.assert_close(slope, grad.detach())
    if link == "probability":  # the Fisher weight: the curvature's mean over x ~ Bernoulli(p)
        p = f.detach()
        torch.testing.assert_close(weight, 1 / (p * (1 - p)))
    else:
        torch.testing.assert_close(weight, second)


def test_units_per_nat():
    assert get_likelihood("bce").units_per_nat() == 1.0
    # Squared error is 2 sigma^2 times the Gaussian's negative log-likelihood.
    sigma2, r = 0.3, torch.tensor([0.5, -1.0])
    nll = 0.5 * (r**2).sum() / sigma2  # up to the constant
    torch.testing.assert_close(get_likelihood("mse").units_per_nat(sigma2) * nll, (r**2).sum())
    with pytest.raises(ValueError, match="Unknown loss"):
        get_likelihood("l1")


def test_gaussian_normaliser_completes_the_log_density():
    sigma2 = 0.7
    g = torch.Generator().manual_seed(1)
    f, x = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=g) > 0.3
    mask[:, 0] = True
    gauss = GaussianLikelihood()
    nats = sample_losses(f, x, gauss, mask) / gauss.units_per_nat(sigma2) + gauss.log_normaliser(x, mask, sigma2)
    density = torch.distributions.Normal(f, sigma2**0.5).log_prob(x)
    torch.testing.assert_close(-nats, torch.where(mask, density, 0.0).sum(1))


# The negative binomial ranks candidates with the Poisson's closed form (test_counts.py).
@pytest.mark.parametrize("name", sorted(set(LIKELIHOODS) - {"negative_binomial"}))
def test_pairwise_matches_sample_losses(name):
    likelihood = get_likelihood(name)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(5, 4, generator=g, dtype=torch.float64)
    refs = torch.rand(3, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05
    mask = torch.rand(5, 4, generator=g) > 0.3
    expected = torch.stack([sample_losses(refs[j].expand(5, -1), x, likelihood, mask) for j in range(3)], dim=1)
    torch.testing.assert_close(likelihood.pairwise(x, mask, refs), expected)


def test_registry_names_and_objects():
    assert set(LIKELIHOODS) == {"mse", "bce", "poisson", "negative_binomial"}
    for name, cls in LIKELIHOODS.items():
        assert cls.name == name and issubclass(cls, Likelihood)
    gauss = GaussianLikelihood()
    assert get_likelihood(gauss) is gauss


def test_likelihood_object_as_loss():
    X = np.random.RandomState(0).rand(30, 5)
    kwargs = dict(hidden_layer_sizes=(), max_iter=3, random_state=0, device="cpu", n_jobs=1)
    by_name = AutoDecoder(loss="bce", **kwargs).fit(X)
    given = BernoulliLikelihood()
    by_object = AutoDecoder(loss=given, **kwargs).fit(X)
    np.testing.assert_array_equal(by_name.embedding_, by_object.embedding_)
    assert by_object.loss_ == "bce" and by_object.loss is given
    assert by_object.likelihood_ is not given  # the user's object is never trained in place
    np.testing.assert_array_equal(by_name.transform(X), by_object.transform(X))


def test_no_module_outside_the_likelihood_room_compares_loss_names():
    offenders = comparisons_outside("_likelihoods.py", set(LIKELIHOODS))
    assert not offenders, "loss names compared outside _likelihoods.py: " + "; ".join(offenders)


def test_the_scan_finds_a_comparison():
    # The scan itself can fail: a comparison of the old kind is found.
    tree = ast.parse('if loss == "mse":\n    pass\nok = name in ("bce", "x")\n')
    assert string_comparisons(tree, set(LIKELIHOODS)) == [(1, "mse"), (3, "bce")]


def test_likelihood_object_saves_and_loads(tmp_path):
    from sklearn_autodecoder import load

    X = np.random.RandomState(1).rand(25, 4)
    model = AutoDecoder(loss=BernoulliLikelihood(), hidden_layer_sizes=(), max_iter=2, random_state=0,
                        device="cpu", n_jobs=1).fit(X)
    model.save(tmp_path / "model.zip")
    loaded = load(tmp_path / "model.zip")
    assert isinstance(loaded.loss, BernoulliLikelihood) and isinstance(loaded.likelihood_, BernoulliLikelihood)
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))


def test_a_likelihood_outside_the_registry_is_not_saved(tmp_path):
    class Custom(GaussianLikelihood):
        pass

    X = np.random.RandomState(1).rand(25, 4)
    model = AutoDecoder(loss=Custom(), hidden_layer_sizes=(), max_iter=2, random_state=0,
                        device="cpu", n_jobs=1).fit(X)
    assert model.loss_ == "mse"
    with pytest.raises(ValueError, match="outside the package's registry"):
        model.save(tmp_path / "model.zip")


def test_clone_builds_a_fresh_likelihood():
    from sklearn.base import clone

    given = BernoulliLikelihood()
    cloned = clone(AutoDecoder(loss=given))
    assert isinstance(cloned.loss, BernoulliLikelihood) and cloned.loss is not given
