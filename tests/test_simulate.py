"""make_regulatory_data and representation_correlation."""

import numpy as np
import pytest

from sklearn_autodecoder import representation_correlation
from sklearn_autodecoder.datasets import make_regulatory_data


def test_shapes_and_types():
    X, Z, C, W = make_regulatory_data(30, n_features=50, n_components=7, return_weights=True,
                                      random_state=0)
    assert X.shape == (30, 50) and Z.shape == (30, 7)
    assert C.shape == W.shape == (7, 50) and C.dtype == bool
    assert len(make_regulatory_data(5, n_features=8, n_components=2, random_state=0)) == 3


@pytest.mark.parametrize("density", [0.05, 0.1, 0.3])
def test_sparsity_follows_connectivity(density):
    _, _, C, W = make_regulatory_data(2, n_features=2000, n_components=50, connectivity=density,
                                      return_weights=True, random_state=0)
    assert C.mean() == pytest.approx(density, rel=0.1)
    assert np.all(W[~C] == 0) and np.all((W[C] > 0) & (W[C] < 1))
    assert C.any(axis=0).all()  # every gene has a regulator


def test_model_of_the_data():
    X, Z, C, W = make_regulatory_data(200, n_features=40, n_components=5, noise=0.0,
                                      return_weights=True, random_state=0)
    np.testing.assert_allclose(X, np.maximum(Z @ W, 0))
    assert Z.min() > 0 and Z.mean() == pytest.approx(2.0, rel=0.1)  # Gamma(2, 1)
    noisy, *_ = make_regulatory_data(200, n_features=40, n_components=5, noise=0.5, random_state=0)
    assert noisy.min() >= 0 and np.std(noisy - X) == pytest.approx(0.5, rel=0.15)


def test_determinism_and_extension():
    a = make_regulatory_data(20, n_features=30, n_components=4, random_state=3, return_weights=True)
    b = make_regulatory_data(20, n_features=30, n_components=4, random_state=3, return_weights=True)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = make_regulatory_data(20, n_features=30, n_components=4, random_state=4)
    assert not np.array_equal(a[0], c[0])
    # More samples, same seed: same graph and weights, same first activities.
    X, Z, C, W = make_regulatory_data(50, n_features=30, n_components=4, random_state=3,
                                      return_weights=True)
    np.testing.assert_array_equal(C, a[2])
    np.testing.assert_array_equal(W, a[3])
    np.testing.assert_array_equal(Z[:20], a[1])


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        make_regulatory_data(10, connectivity=1.5)
    with pytest.raises(ValueError):
        make_regulatory_data(0)


@pytest.mark.parametrize("match", ["hungarian", "regression", "identity"])
def test_correlation_of_a_scaled_copy_is_one(match):
    Z = np.random.RandomState(0).rand(80, 4)
    learned = -3 * Z + 2
    np.testing.assert_allclose(representation_correlation(Z, learned, match=match), 1.0)


def test_correlation_matching():
    rng = np.random.RandomState(0)
    Z = rng.rand(500, 3)
    permuted = Z[:, [2, 0, 1]]
    np.testing.assert_allclose(representation_correlation(Z, permuted), 1.0)
    assert representation_correlation(Z, permuted, match="identity").max() < 0.2
    rotated = Z @ np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(representation_correlation(Z, rotated, match="regression"), 1.0)
    assert representation_correlation(Z, rotated, match="hungarian").max() < 0.9
    noise = rng.rand(500, 3)
    assert representation_correlation(Z, noise).max() < 0.2
    # Fewer learned than true components: the unmatched one scores 0.
    r = representation_correlation(Z, Z[:, :2])
    np.testing.assert_allclose(np.sort(r), [0.0, 1.0, 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="same samples"):
        representation_correlation(Z, Z[:10])


def test_make_count_data_shapes_types_and_extension():
    from sklearn_autodecoder.datasets import make_count_data

    X, y, params = make_count_data(300, n_features=60, n_groups=4, n_components=3, return_params=True,
                                   random_state=0)
    assert X.shape == (300, 60) and X.dtype == np.float32 and y.shape == (300,)
    assert np.all(X == np.round(X)) and X.min() >= 0 and (X.sum(axis=1) > 0).all()
    assert set(y) == {0, 1, 2, 3}
    assert params["latent"].shape == (300, 3) and params["weights"].shape == (3, 60)
    # A larger n_samples with the same seed extends the same data set.
    X_more, y_more = make_count_data(2500, n_features=60, n_groups=4, n_components=3, random_state=0)
    np.testing.assert_array_equal(X_more[:300], X)
    np.testing.assert_array_equal(y_more[:300], y)
    X_sparse, _ = make_count_data(300, n_features=60, n_groups=4, n_components=3, sparse=True,
                                  random_state=0)
    assert X_sparse.format == "csr"
    np.testing.assert_array_equal(X_sparse.toarray(), X)


def test_make_count_data_follows_its_model():
    from sklearn_autodecoder.datasets import make_count_data

    X, y, params = make_count_data(4000, n_features=30, n_groups=3, n_components=2, library_size=500,
                                   dispersion=3.0, return_params=True, random_state=0)
    # Totals follow the library sizes (NB noise on top).
    totals, L = X.sum(axis=1), params["library_size"]
    assert np.corrcoef(np.log(totals), np.log(L))[0, 1] > 0.8
    # The groups' latents sit around their centres.
    for g in range(3):
        np.testing.assert_allclose(params["latent"][y == g].mean(axis=0), params["centres"][g], atol=0.15)
    # Over-dispersion: the variance of the counts at their mean exceeds Poisson's, as NB2 says.
    mu = L[:, None] * np.exp(params["baseline"] + params["latent"] @ params["weights"])
    mu /= np.exp(params["baseline"] + params["latent"] @ params["weights"]).sum(axis=1, keepdims=True)
    # E[(x - mu)^2 - mu] = mu^2 / theta under NB2: a moment estimate of 1 / theta per gene.
    inverse_theta = (((X - mu) ** 2 - mu).sum(axis=0)) / (mu**2).sum(axis=0)
    ratio = inverse_theta * params["dispersion"]
    assert 0.8 < np.median(ratio) < 1.25 and np.all(ratio > 0.3)
    X_poisson, _ = make_count_data(50, n_features=30, dispersion=None, random_state=0)
    assert X_poisson.shape == (50, 30)
