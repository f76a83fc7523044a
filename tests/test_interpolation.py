"""Latent paths: linear and spherical interpolation, decoded paths."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_autodecoder import AutoDecoder, interpolate, interpolate_latents


def test_linear_path_end_points_and_midpoint():
    a, b = np.array([[0.0, 1.0], [2.0, 2.0]]), np.array([[4.0, -1.0], [2.0, 0.0]])
    path = interpolate_latents(a, b, n_steps=5)
    assert path.shape == (2, 5, 2)
    np.testing.assert_array_equal(path[:, 0], a)
    np.testing.assert_array_equal(path[:, -1], b)
    np.testing.assert_allclose(path[:, 2], (a + b) / 2)
    np.testing.assert_allclose(np.diff(path, axis=1), np.diff(path, axis=1)[:, :1].repeat(4, axis=1))


def test_spherical_path_constant_angular_speed_and_linear_norm():
    rng = np.random.RandomState(0)
    a, b = rng.randn(3, 6), 2 * rng.randn(3, 6)
    path = interpolate_latents(a, b, n_steps=7, method="spherical")
    np.testing.assert_allclose(path[:, 0], a, atol=1e-12)
    np.testing.assert_allclose(path[:, -1], b, atol=1e-12)
    norms = np.linalg.norm(path, axis=2)
    np.testing.assert_allclose(norms, np.linspace(norms[:, 0], norms[:, -1], 7).T, rtol=1e-10)
    unit = path / norms[..., None]
    angles = np.arccos(np.clip((unit[:, 1:] * unit[:, :-1]).sum(-1), -1, 1))
    np.testing.assert_allclose(angles, angles[:, :1].repeat(6, axis=1), rtol=1e-6)


def test_spherical_degenerate_pairs_fall_back_to_linear():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[-1.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(
        interpolate_latents(a, b, 4, method="spherical"), interpolate_latents(a, b, 4), atol=1e-12
    )


def test_one_dimensional_input_and_errors():
    assert interpolate_latents(np.zeros(3), np.ones(3), 4).shape == (4, 3)
    with pytest.raises(ValueError, match="method"):
        interpolate_latents(np.zeros(3), np.ones(3), method="cubic")
    with pytest.raises(ValueError, match="n_steps"):
        interpolate_latents(np.zeros(3), np.ones(3), 1)
    with pytest.raises(ValueError, match="shapes"):
        interpolate_latents(np.zeros((2, 3)), np.ones((1, 3)))


def test_interpolate_decodes_the_path():
    X = load_digits().data[:100] / 16.0
    ad = AutoDecoder(n_components=3, max_iter=5, inference_max_iter=20, device="cpu", random_state=0).fit(X)
    Z_path, X_path = interpolate(ad, X[:2], X[2:4], n_steps=6, method="spherical")
    assert Z_path.shape == (2, 6, 3) and X_path.shape == (2, 6, 64)
    np.testing.assert_allclose(Z_path[:, 0], ad.transform(X[:2]), atol=1e-6)
    np.testing.assert_allclose(X_path[:, -1], ad.inverse_transform(ad.transform(X[2:4])), atol=1e-5)
