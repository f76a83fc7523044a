"""Paths in latent space between samples, and their decodings."""

import numpy as np
from sklearn.utils import check_array

from ._compat import check_is_fitted

METHODS = ("linear", "spherical")


def interpolate_latents(z_start, z_end, n_steps=8, *, method="linear"):
    """Points on a path between two sets of latent vectors.

    Parameters
    ----------
    z_start, z_end : array-like of shape (n_pairs, n_components) or (n_components,)
        End points, row ``i`` of one paired with row ``i`` of the other.
    n_steps : int, default=8
        Points per path, end points included (at least 2).
    method : {"linear", "spherical"}, default="linear"
        "linear" moves along the straight segment. "spherical" (slerp)
        moves along the great circle at constant angular speed, with the
        norm interpolated linearly: suited to latents whose distribution is
        concentrated on a sphere, e.g. high-dimensional Gaussian priors or
        normalised codes. Opposite or identical directions fall back to the
        linear path.

    Returns
    -------
    path : ndarray of shape (n_pairs, n_steps, n_components)
        ``path[:, 0]`` is ``z_start`` and ``path[:, -1]`` is ``z_end`` (a
        1-D input gives shape (n_steps, n_components)).

    Examples
    --------
    >>> from sklearn_autodecoder import interpolate_latents
    >>> interpolate_latents([0.0, 0.0], [1.0, 2.0], n_steps=3)
    array([[0. , 0. ],
           [0.5, 1. ],
           [1. , 2. ]])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if int(n_steps) != n_steps or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}.")
    single = np.ndim(z_start) == 1
    a = check_array(np.atleast_2d(z_start), dtype=[np.float64, np.float32], input_name="z_start")
    b = check_array(np.atleast_2d(z_end), dtype=a.dtype, input_name="z_end")
    if a.shape != b.shape:
        raise ValueError(f"z_start and z_end have shapes {a.shape} and {b.shape}; they must match.")
    t = np.linspace(0, 1, int(n_steps), dtype=a.dtype)[None, :, None]
    path = (1 - t) * a[:, None] + t * b[:, None]
    if method == "spherical":
        path = _slerp(a, b, t, path)
    return path[0] if single else path


def _slerp(a, b, t, linear):
    norm_a = np.linalg.norm(a, axis=1, keepdims=True)
    norm_b = np.linalg.norm(b, axis=1, keepdims=True)
    tiny = np.finfo(a.dtype).eps
    ua, ub = a / np.maximum(norm_a, tiny), b / np.maximum(norm_b, tiny)
    omega = np.arccos(np.clip((ua * ub).sum(axis=1, keepdims=True), -1, 1))[:, None]
    sin = np.sin(omega)
    # Degenerate pairs (zero vector, same or opposite direction): linear path.
    ok = (sin > 1e-6) & (norm_a[:, None] > tiny) & (norm_b[:, None] > tiny)
    safe = np.where(ok, sin, 1)
    direction = (np.sin((1 - t) * omega) * ua[:, None] + np.sin(t * omega) * ub[:, None]) / safe
    norm = (1 - t) * norm_a[:, None] + t * norm_b[:, None]
    return np.where(ok, direction * norm, linear)


def interpolate(estimator, X_start, X_end, n_steps=8, *, method="linear"):
    """Decode the latent path between samples of a fitted model.

    The end samples are projected with ``estimator.transform`` (so they may
    hold NaN for unobserved entries), the latent path between them is
    computed with :func:`interpolate_latents`, and every point is decoded
    with ``estimator.inverse_transform``.

    Parameters
    ----------
    estimator : fitted AutoDecoder, ConvAutoDecoder or autoencoder
        Any fitted model with ``transform`` and ``inverse_transform``.
    X_start, X_end : array-like of shape (n_pairs, n_features)
        Paired end samples.
    n_steps : int, default=8
        Points per path, end points included.
    method : {"linear", "spherical"}, default="linear"
        See :func:`interpolate_latents`.

    Returns
    -------
    Z_path : ndarray of shape (n_pairs, n_steps, n_components)
        The latent paths.
    X_path : ndarray of shape (n_pairs, n_steps, n_features)
        Their decodings.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_autodecoder import AutoDecoder, interpolate
    >>> X = load_digits().data[:100] / 16
    >>> ad = AutoDecoder(n_components=3, max_iter=3, random_state=0).fit(X)
    >>> Z_path, X_path = interpolate(ad, X[:2], X[2:4], n_steps=5)
    >>> Z_path.shape, X_path.shape
    ((2, 5, 3), (2, 5, 64))
    """
    check_is_fitted(estimator)
    Z = estimator.transform(np.concatenate([np.atleast_2d(X_start), np.atleast_2d(X_end)]))
    half = len(Z) // 2
    Z_path = interpolate_latents(Z[:half], Z[half:], n_steps, method=method)
    n_pairs, n_points, n_components = Z_path.shape
    X_path = estimator.inverse_transform(Z_path.reshape(-1, n_components))
    return Z_path, X_path.reshape(n_pairs, n_points, -1)
