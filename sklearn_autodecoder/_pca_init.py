"""PCA starts for auto-decoders, and probabilistic PCA with missing values.

A linear decoder ``x = W z + b`` trained with free latents minimises the
same squared error as PCA, so it can *start* at the PCA solution instead of
reaching it by many epochs of gradient descent; a nonlinear decoder can at
least start from PCA latents (as the GLO reimplementations do).

Latents are returned **whitened** (each component has unit variance over the
training samples) and the decoder weights carry the scale. The product
``W z`` is the same either way; whitened latents match the isotropic
Gaussian prior of ``latent_l2`` and of probabilistic PCA, keep every latent
coordinate on one scale for the latent optimiser's fixed step, and leave
the decoder weights small (``weight_decay`` acts on them).

:func:`ppca` fits probabilistic PCA (Tipping and Bishop, 1999) by EM on the
observed entries only. With a Gaussian prior ``z ~ N(0, I)`` and noise
``N(0, sigma^2 I)``, a sample's posterior mean latent is the minimiser of
``||x_o - W_o z - b_o||^2 + sigma^2 ||z||^2`` over its observed entries
``o``: the auto-decoder's inference objective with ``latent_l2 = sigma^2``.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import svd

# Iterative SVD imputation stops when the relative change of the filled-in
# values' sum of squares falls below this.
SVD_TOL = 1e-6
# Lower bound of the noise variance, relative to the data's mean variance:
# keeps the posterior well defined when n_components fits X exactly.
MIN_NOISE = 1e-6


@dataclass
class PPCAResult:
    """A probabilistic PCA fit (see :func:`ppca`).

    Attributes
    ----------
    weight : ndarray of shape (n_features, n_components)
        Loadings ``W`` (``nn.Linear``'s weight layout).
    bias : ndarray of shape (n_features,)
        Mean ``b``.
    noise_variance : float
        Per-entry noise variance ``sigma^2``.
    latents : ndarray of shape (n_samples, n_components)
        Posterior mean latent of each training sample.
    log_likelihood : float
        Mean log-likelihood per training sample of its observed entries.
    n_iter : int
        EM iterations run.
    """

    weight: np.ndarray
    bias: np.ndarray
    noise_variance: float
    latents: np.ndarray
    log_likelihood: float
    n_iter: int


def _svd_top(X, n_components):
    U, s, Vt = svd(X, full_matrices=False, lapack_driver="gesdd")
    # Fix the signs (largest loading of each component positive) so that the
    # start does not depend on the LAPACK build.
    signs = np.sign(Vt[np.arange(len(Vt)), np.abs(Vt).argmax(axis=1)])
    signs[signs == 0] = 1
    return U[:, :n_components] * signs[:n_components], s, Vt[:n_components] * signs[:n_components, None]


def pca_start(X, n_components, *, max_iter=100):
    """PCA solution of X as (whitened latents, decoder weight, decoder bias).

    For a linear decoder, ``latents @ weight.T + bias`` is the rank
    ``n_components`` least-squares fit of X (on its observed entries): the
    minimiser of the auto-decoder's loss without priors.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training data; NaN marks a missing entry. Missing entries are filled
        by iterative SVD (start at the column means, refit, refill), which
        converges to the least-squares fit of the observed entries.
    n_components : int
        Size of the latents.
    max_iter : int, default=100
        Most refits of the iterative SVD (used only when X has NaN).

    Returns
    -------
    latents : ndarray of shape (n_samples, n_components)
        Zero-mean, unit-variance, uncorrelated over the samples.
    weight : ndarray of shape (n_features, n_components)
        Principal axes scaled by the singular values / sqrt(n_samples).
        Columns beyond the rank of X are zero.
    bias : ndarray of shape (n_features,)
        Column means of the (filled-in) data.
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    missing = np.isnan(X)
    filled = np.where(missing, np.nanmean(np.where(missing.all(0), 0.0, X), axis=0), X)
    k = min(n_components, n_samples, n_features)
    for _ in range(max_iter if missing.any() else 1):
        bias = filled.mean(axis=0)
        U, s, Vt = _svd_top(filled - bias, k)
        if not missing.any():
            break
        fit = (U * s[:k]) @ Vt + bias
        change = np.sum((fit[missing] - filled[missing]) ** 2)
        filled[missing] = fit[missing]
        if change <= SVD_TOL * max(np.sum(filled[missing] ** 2), 1e-300):
            break
    scale = np.sqrt(n_samples)
    latents = np.zeros((n_samples, n_components))
    weight = np.zeros((n_features, n_components))
    # Components with a zero singular value keep a zero latent and column.
    kept = s[:k] > s[0] * 1e-12 if s[0] > 0 else np.zeros(k, dtype=bool)
    latents[:, :k] = np.where(kept, U * scale, 0.0)
    weight[:, :k] = np.where(kept, (Vt.T * s[:k]) / scale, 0.0)
    return latents, weight, bias


def pca_project(X, weight, bias):
    """Least-squares latents of rows under a linear decoder (``x ~ weight @ z + bias``).

    What :func:`pca_start` gives its own rows, for rows it did not see: with
    its ``weight`` and ``bias`` a complete row gets its whitened PCA score.
    Each row uses its observed entries only.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry.
    weight : ndarray of shape (n_features, n_components)
    bias : ndarray of shape (n_features,)

    Returns
    -------
    latents : ndarray of shape (n_samples, n_components)
        Zero in the directions of zero columns of ``weight`` (and of the
        directions a row's observed entries cannot determine).
    """
    X = np.asarray(X, dtype=np.float64)
    observed = ~np.isnan(X)
    centred = np.where(observed, X - bias, 0.0)
    # A relative ridge: zero columns (beyond X's rank) get zero latents.
    ridge = 1e-12 * max(float(np.sum(weight**2)), 1e-300) * np.eye(weight.shape[1])
    if observed.all():  # one Gram matrix for every row
        return np.linalg.solve(weight.T @ weight + ridge, (centred @ weight).T).T
    gram = np.einsum("nd,dk,dl->nkl", observed.astype(np.float64), weight, weight) + ridge
    return np.linalg.solve(gram, (centred @ weight)[:, :, None])[:, :, 0]


def linear_layer(decoder):
    """The single ``nn.Linear`` of a linear decoder, or None if it has hidden layers."""
    layers = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    return layers[0] if len(layers) == 1 else None


@torch.no_grad()
def set_linear_decoder(decoder, weight, bias):
    """Set a linear decoder's weight and bias in place.

    Parameters
    ----------
    decoder : torch.nn.Module
        A decoder holding exactly one ``nn.Linear`` (e.g.
        ``MLPDecoder(m, n, hidden_layer_sizes=())``; a ``MaskedLinear``
        keeps its zeros).
    weight : ndarray of shape (n_features, n_components)
    bias : ndarray of shape (n_features,)

    Returns
    -------
    decoder : torch.nn.Module
    """
    layer = linear_layer(decoder)
    if layer is None:
        raise ValueError("set_linear_decoder needs a decoder with exactly one nn.Linear layer.")
    w = torch.as_tensor(weight, dtype=layer.weight.dtype, device=layer.weight.device)
    if w.shape != layer.weight.shape:
        raise ValueError(f"weight has shape {tuple(w.shape)}, the layer {tuple(layer.weight.shape)}.")
    mask = getattr(layer, "mask", None)
    layer.weight.copy_(w if mask is None else w * mask)
    layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype, device=layer.bias.device))
    return decoder


# ---- probabilistic PCA and factor analysis with missing values ---------------


def _outer_rows(A):
    """Row-wise outer products of A (r, k), flattened: (r, k * k)."""
    return (A[:, :, None] * A[:, None, :]).reshape(len(A), -1)


def _posterior(Xc, observed, W, psi):
    """Posterior covariances and means of the latents, and each sample's log-likelihood.

    In noise-whitened units (``W~ = W / sqrt(psi)``, ``x~ = x / sqrt(psi)``
    feature by feature) the prior and noise are both standard, and with
    ``M_i = W~_o^T W~_o + I`` over sample i's observed features the
    posterior is ``N(M_i^-1 W~_o^T x~_o, M_i^-1)``. Sums over the observed
    features are matrix products with the 0/1 mask (BLAS); the m x m
    inverses come from batched Cholesky factors.
    """
    n, m = len(Xc), W.shape[1]
    scale = 1.0 / np.sqrt(psi)
    Wt = W * scale[:, None]
    obs = observed.astype(W.dtype)
    M = (obs @ _outer_rows(Wt)).reshape(n, m, m) + np.eye(m)
    chol = torch.linalg.cholesky(torch.from_numpy(M))
    cov = torch.cholesky_inverse(chol).numpy()
    r = np.where(observed, Xc * scale, 0.0)
    Wr = r @ Wt
    Z = np.einsum("nkl,nl->nk", cov, Wr)
    # log N(x_o; b_o, W_o W_o^T + Psi_o) by the matrix determinant lemma and
    # Woodbury, in whitened units plus the Jacobian sum_o log psi_j:
    # log det C~ = log det M, x~^T C~^-1 x~ = x~^T x~ - x~^T W~_o M^-1 W~_o^T x~.
    log_diag = np.log(torch.diagonal(chol, dim1=1, dim2=2).numpy())
    logdet = 2 * log_diag.sum(axis=1) + obs @ np.log(psi)
    quad = (r**2).sum(axis=1) - (Wr * Z).sum(axis=1)
    loglik = -0.5 * (obs.sum(axis=1) * np.log(2 * np.pi) + logdet + quad)
    return cov, Z, loglik


def _as_psi(noise_variance, n_features):
    return np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (n_features,))


def n_parameters(n_features, n_components, noise_model="isotropic"):
    """Free parameters of a PPCA or factor-analysis model (for AIC / BIC).

    Loadings up to rotation, the mean, and one or ``n_features`` noise
    variances.
    """
    d, m = n_features, n_components
    return d * m - m * (m - 1) // 2 + d + (1 if noise_model == "isotropic" else d)


def ppca(X, n_components, *, noise_model="isotropic", max_iter=500, tol=1e-6, min_noise=MIN_NOISE,
         start=None):
    """Probabilistic PCA or factor analysis by EM on the observed entries of X.

    The model is ``x = W z + b + e`` with ``z ~ N(0, I)`` and Gaussian noise
    ``e``: isotropic (variance ``sigma^2``, probabilistic PCA) or diagonal
    (one variance per feature, factor analysis). Missing entries are
    integrated out (EM as in Ilin and Raiko, 2010).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, NaN for missing entries (each sample needs one observed entry).
    n_components : int
        Latent size, in [1, n_features - 1].
    noise_model : {"isotropic", "diagonal"}, default="isotropic"
        One noise variance for all features, or one per feature.
    max_iter : int, default=500
        Most EM iterations.
    tol : float, default=1e-6
        Stop when the mean log-likelihood per observed entry rises by less.
    min_noise : float, default=1e-6
        Floor of the noise variances, relative to the mean feature variance.
    start : tuple (weight, bias, noise_variance), default=None
        Starting parameters (warm start); ``weight`` may have fewer columns
        than ``n_components``, the others then start from the next PCA
        axes of the mean-filled data. None starts from PCA.

    Returns
    -------
    result : PPCAResult
        ``noise_variance`` is a float (isotropic) or an array (diagonal).
    """
    if noise_model not in ("isotropic", "diagonal"):
        raise ValueError(f"noise_model must be 'isotropic' or 'diagonal', got {noise_model!r}.")
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    m = n_components
    if not 1 <= m < d:
        raise ValueError(f"n_components must be in [1, n_features - 1] = [1, {d - 1}], got {m}.")
    observed = ~np.isnan(X)
    obs = observed.astype(np.float64)
    n_values = observed.sum()
    per_feature = np.maximum(obs.sum(axis=0), 1.0)
    _, weight, bias = pca_start(X, m, max_iter=5)
    seen = observed.any(axis=0)  # a feature never observed gets W = 0, b = 0
    var = np.nanvar(X[:, seen], axis=0).mean() if seen.any() else 1.0
    floor = min_noise * max(var, 1e-300)
    if start is None:
        residual = np.where(observed, X, bias) - bias
        s2 = max(np.sum(residual**2) / (n * d) - np.sum(weight**2) / d, floor, 0.1 * var)
        W, psi = weight.copy(), np.full(d, s2)
    else:
        W0, bias, psi = start
        psi = _as_psi(psi, d).copy()
        k = W0.shape[1]
        # New columns: the next PCA axes, at the noise level's scale.
        extra = weight[:, k:] / np.maximum(np.linalg.norm(weight[:, k:], axis=0), 1e-300)
        W = np.hstack([W0, extra * np.sqrt(psi.mean())])
    previous, n_iter = -np.inf, 0
    for n_iter in range(1, max_iter + 1):
        cov, Z, loglik = _posterior(np.where(observed, X - bias, 0.0), observed, W, psi)
        mean_loglik = loglik.sum() / n_values
        if mean_loglik - previous < tol and n_iter > 1:
            break
        previous = mean_loglik
        # E[z z^T] = cov + z z^T, augmented with the constant 1 so that the
        # bias is solved jointly with W, feature by feature.
        Za = np.hstack([Z, np.ones((n, 1))])
        second = Za[:, :, None] * Za[:, None, :]
        second[:, :m, :m] += cov
        A = (obs.T @ second.reshape(n, -1)).reshape(d, m + 1, m + 1)
        B = np.where(observed, X, 0.0).T @ Za
        Wb = np.linalg.solve(A + 1e-12 * np.eye(m + 1), B[:, :, None])[:, :, 0]
        W, bias = Wb[:, :m], Wb[:, m]
        # Noise: mean expected squared residual (x - W z - b)^2 + w^T cov w
        # over the observed entries (of each feature, for "diagonal").
        trace = cov.reshape(n, -1) @ _outer_rows(W).T
        err = np.where(observed, (X - Z @ W.T - bias) ** 2 + trace, 0.0)
        if noise_model == "isotropic":
            psi = np.full(d, max(err.sum() / n_values, floor))
        else:
            psi = np.maximum(err.sum(axis=0) / per_feature, floor)
    _, Z, loglik = _posterior(np.where(observed, X - bias, 0.0), observed, W, psi)
    noise = float(psi[0]) if noise_model == "isotropic" else psi
    return PPCAResult(W, bias, noise, Z, float(loglik.mean()), n_iter)
