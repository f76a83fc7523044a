"""A held-out likelihood for auto-decoders: choosing n_components without labels.

Reconstruction error on held-out data keeps falling as latents are added
(more latents fit any sample better), so a search maximising minus the error
picks the largest size. A likelihood with a noise model does not: with
Gaussian noise of variance ``sigma^2`` (estimated on the training samples)
and a Gaussian prior ``N(mu, Sigma)`` on the latents (fitted to the training
latents), the marginal density of a sample's observed entries

    p(x) = integral N(x_o; f(z)_o, sigma^2 I) N(z; mu, Sigma) dz

is approximated by Laplace's method around the MAP latent ``z*``:

    log p(x) ~ log N(x_o; f(z*)_o, sigma^2 I) + log N(z*; mu, Sigma)
               + m/2 log(2 pi) - 1/2 log det H,
    H = J^T J / sigma^2 + Sigma^-1   (Gauss-Newton Hessian, J = df/dz at z*).

Extra latents then cost ``log det`` volume unless they explain the data. For
a linear decoder the approximation is exact: it is probabilistic PCA's
log-likelihood (what ``PCA.score`` computes).
"""

import copy
import math

import numpy as np
import torch
from torch.func import jacrev, vmap

from ._losses import sample_losses


def fit_noise_model(estimator, X):
    """Noise variance and latent prior of a fitted auto-decoder, from its training data.

    Parameters
    ----------
    estimator : AutoDecoder
        Fitted on X (``embedding_`` holds X's latents), with ``loss="mse"``.
    X : ndarray of shape (n_samples, n_features)
        The training data (NaN for missing entries).

    Returns
    -------
    noise_variance : float
        Residual sum of squares over the observed entries divided by their
        number less ``n_components`` per sample (the latents' degrees of
        freedom), as probabilistic PCA's estimate is.
    prior_mean : ndarray of shape (n_components,)
    prior_cov : ndarray of shape (n_components, n_components)
        Mean and covariance of the training latents.
    """
    X = np.asarray(X, dtype=np.float64)
    observed = ~np.isnan(X)
    Z = np.asarray(estimator.embedding_, dtype=np.float64)
    X_hat = estimator.inverse_transform(Z)
    rss = np.sum(np.where(observed, X - X_hat, 0.0) ** 2)
    dof = max(observed.sum() - Z.shape[0] * Z.shape[1], 1)
    cov = np.atleast_2d(np.cov(Z.T, bias=True)) + 1e-9 * np.eye(Z.shape[1])
    return rss / dof, Z.mean(axis=0), cov


def laplace_log_likelihood(estimator, X, *, noise_variance, prior_mean, prior_cov, n_steps=5):
    """Per-sample Laplace approximation of the log-likelihood of X's observed entries.

    Parameters
    ----------
    estimator : AutoDecoder
        Fitted, with ``loss="mse"``.
    X : ndarray of shape (n_samples, n_features)
        Samples to score (NaN for missing entries).
    noise_variance : float
    prior_mean : ndarray of shape (n_components,)
    prior_cov : ndarray of shape (n_components, n_components)
        The Gaussian noise model and latent prior (:func:`fit_noise_model`).
    n_steps : int, default=5
        Gauss-Newton steps from the estimator's ``transform`` to the MAP
        latent under the prior (a step is kept only where it lowers the
        sample's objective; one step is exact for a linear decoder).

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples,)
    """
    X = np.asarray(X, dtype=np.float64)
    decoder = copy.deepcopy(estimator.decoder_).double().cpu().eval()
    x = torch.as_tensor(np.nan_to_num(X), dtype=torch.float64)
    mask = torch.as_tensor(~np.isnan(X))
    w = mask.to(torch.float64)
    z = torch.as_tensor(estimator.transform(X), dtype=torch.float64)
    mu = torch.as_tensor(prior_mean, dtype=torch.float64)
    cov = torch.as_tensor(prior_cov, dtype=torch.float64)
    precision = torch.linalg.inv(cov)
    s2 = float(noise_variance)

    def f(zi):
        return decoder(zi.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(f))

    def objective(z):
        with torch.no_grad():
            fit = sample_losses(decoder(z), x, "mse", mask) / s2
        d = z - mu
        return 0.5 * fit + 0.5 * torch.einsum("nk,kl,nl->n", d, precision, d)

    def hessian(z):
        J = jac(z) * w.unsqueeze(-1)  # (n, d, m), rows of missing features zeroed
        return J, J.transpose(1, 2) @ J / s2 + precision

    with torch.no_grad():
        current = objective(z)
        for _ in range(n_steps):
            J, H = hessian(z)
            r = (x - decoder(z)) * w
            grad = -(J.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1) / s2 + (z - mu) @ precision
            step = torch.linalg.solve(H, grad.unsqueeze(-1)).squeeze(-1)
            candidate = z - step
            value = objective(candidate)
            better = value < current
            z = torch.where(better.unsqueeze(1), candidate, z)
            current = torch.where(better, value, current)
        _, H = hessian(z)
        n_obs = w.sum(dim=1)
        log_det_h = torch.linalg.slogdet(H)[1]
        log_det_cov = torch.linalg.slogdet(cov)[1]
        # current = 0.5 * (rss / s2 + (z - mu)^T P (z - mu)) at z*.
        log_lik = (
            -current
            - 0.5 * n_obs * math.log(2 * math.pi * s2)
            - 0.5 * log_det_cov
            - 0.5 * log_det_h
        )
    return log_lik.numpy()
