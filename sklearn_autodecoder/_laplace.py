"""The Laplace likelihood of auto-decoders (``score_samples``): choosing n_components without labels.

Reconstruction error on held-out data keeps falling as latents are added
(more latents fit any sample better), so a search maximising minus the error
picks the largest size. A likelihood with a noise model and a latent prior
does not: the marginal density of a sample's observed entries

    p(x) = integral p(x_o | f(z)) p(z) dz

is approximated by Laplace's method around the MAP latent ``z*``:

    log p(x) ~ log p(x_o | f(z*)) + log p(z*) + m/2 log(2 pi) - 1/2 log det H,
    H = J^T W J + Hessian(-log p(z))   (Gauss-Newton, J = df/dz at z*).

Extra latents then cost ``log det`` volume unless they explain the data.
The noise model is Gaussian with the fitted ``noise_variance_`` for
``loss="mse"`` (``W = I / sigma^2``), Bernoulli for ``loss="bce"``
(``W = p (1 - p)``). The prior is the fitted mixture with
``latent_prior="gmm"``, else a Gaussian fitted to the training latents. For
a linear decoder under MSE the approximation is exact: probabilistic PCA's
log-likelihood, what ``PCA.score_samples`` computes.
"""

import math

import numpy as np
import torch

from ._compat import check_is_fitted
from ._data import slices
from ._inference import data_gauss_newton, frozen, infer_latents, penalty_terms
from ._likelihoods import get_likelihood

# Levenberg-Marquardt steps from the estimator's own projection to the MAP
# latent under the noise model and the prior (one suffices for a linear
# decoder; the projection is already close for the others).
LAPLACE_STEPS = 10
# A row stops when the next step promises less than this fraction of its
# objective (a linear decoder's rows stop after a step or two).
LAPLACE_TOL = 1e-9
# Relative floor of the eigenvalues of a Gaussian prior's covariance fitted
# to the training latents (a dimension the latents do not use).
COVARIANCE_FLOOR = 1e-6


def gaussian_neg_log_prior(latents):
    """``z -> -log N(z; mean, cov)`` per row, mean and covariance of ``latents``.

    Parameters
    ----------
    latents : torch.Tensor of shape (n_samples, n_components)
        The training latents (at least two rows).

    Returns
    -------
    neg_log_prior : callable
        Plain tensor operations (works under ``torch.func`` transforms).
    """
    mean = latents.mean(dim=0)
    centred = latents - mean
    cov = centred.T @ centred / len(latents)
    floor = COVARIANCE_FLOOR * float(torch.diagonal(cov).mean().clamp_min(torch.finfo(cov.dtype).tiny))
    cov = cov + floor * torch.eye(len(mean), dtype=cov.dtype, device=cov.device)
    chol = torch.linalg.cholesky(cov)
    constant = 0.5 * len(mean) * math.log(2 * math.pi) + torch.log(torch.diagonal(chol)).sum()

    def neg_log_prior(z):
        white = torch.linalg.solve_triangular(chol, (z - mean).T, upper=False)
        return 0.5 * (white**2).sum(dim=0) + constant

    return neg_log_prior


def laplace_log_likelihood(decoder, x, mask, z0, *, loss, neg_log_prior, noise_variance=None,
                           n_steps=LAPLACE_STEPS):
    """Laplace approximation of each row's log-likelihood (one chunk of rows).

    Parameters
    ----------
    decoder : torch.nn.Module
        The fitted decoder (put in eval mode, frozen, for the call).
    x : torch.Tensor of shape (n, n_features)
    mask : torch.Tensor of bool of shape (n, n_features) or None
        True where an entry is observed.
    z0 : torch.Tensor of shape (n, n_components)
        Starting latents (the estimator's projection of x).
    loss : str or Likelihood
        The noise model: Gaussian (with ``noise_variance``) for "mse",
        Bernoulli entries for "bce", or a likelihood object.
    neg_log_prior : callable
        ``z -> -log p(z)`` per row, normalised.
    noise_variance : float, default=None
        The fitted noise variance of a likelihood that has one (the
        Gaussian's; required for ``loss="mse"``).
    n_steps : int, default=LAPLACE_STEPS
        Levenberg-Marquardt steps from ``z0`` towards the MAP latent.

    Returns
    -------
    log_likelihood : torch.Tensor of float64, shape (n,)
    """
    # The MAP objective, in the units of the reconstruction loss.
    likelihood = get_likelihood(loss)
    scale = likelihood.units_per_nat(noise_variance)
    z = infer_latents(
        decoder,
        x,
        z0,
        loss=likelihood,
        mask=mask,
        method="lm",
        max_iter=n_steps,
        tol=LAPLACE_TOL,
        penalty=lambda z: scale * neg_log_prior(z),
        batch_size=max(len(x), 1),
        device=x.device,
    ).latents
    data, gauss_newton = data_gauss_newton(decoder, x, z, loss=likelihood, mask=mask)
    prior, _, prior_hessian = penalty_terms(neg_log_prior, z)
    data, gauss_newton = data.double() / scale, gauss_newton.double() / scale
    data = data + likelihood.log_normaliser(x, mask, noise_variance)  # what the loss leaves out
    m = z.shape[1]
    log_det = torch.linalg.slogdet(gauss_newton + prior_hessian.double())[1]
    log_likelihood = -data - prior.double() + 0.5 * m * math.log(2 * math.pi) - 0.5 * log_det
    return log_likelihood.detach()  # a prior's parameters may require grad


class LaplaceMixin:
    """``score_samples`` of the auto-decoders: :func:`laplace_log_likelihood` per chunk."""

    def score_samples(self, X):
        """Log-likelihood of each sample, its latent integrated out (Laplace).

        ``log p(x) = log integral p(x | z) p(z) dz`` over the sample's
        observed entries, by Laplace's method around the most likely latent
        ``z*`` (reached from the :meth:`transform` latent by a few
        Levenberg-Marquardt steps): ``log p(x | z*) + log p(z*) +
        m/2 log(2 pi) - 1/2 log det H``, with ``H`` the Gauss-Newton Hessian
        of the negative log-posterior. ``p(x | z)`` is Bernoulli for
        ``loss="bce"`` and Gaussian with variance ``noise_variance_`` for
        ``loss="mse"``; ``p(z)`` is the mixture prior with
        ``latent_prior="gmm"``, else a Gaussian fitted to the training
        latents. For a linear decoder under MSE this is probabilistic PCA's
        log-likelihood. Unlike :meth:`score`, its mean on held-out data does
        not keep rising with ``n_components``: use it to choose the latent
        size without labels (:func:`~sklearn_autodecoder.log_likelihood_scorer`).
        Each Levenberg-Marquardt step costs about ``n_components`` decoder
        passes per sample (forward-mode Jacobian): with large latents it is
        much slower than :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        data = self._rows(X, reset=False)
        decoder = self._decoder_for(data.dtype)
        with self._threads():
            Z = self._latents_of(data, decoder)
        neg_log_prior = self._neg_log_prior(data.dtype, data.device)
        variance = getattr(self, "noise_variance_", None)
        likelihood = self._module_for(self._likelihood(), data.dtype)
        out = np.empty(len(data), dtype=np.float64)
        with self._threads(), frozen(decoder):
            for rows, x, mask in data.batches(slices(len(data), self.inference_batch_size)):
                z = torch.as_tensor(Z[rows], dtype=data.dtype, device=data.device)
                out[rows] = laplace_log_likelihood(
                    decoder, x, mask, z, loss=likelihood,
                    neg_log_prior=neg_log_prior, noise_variance=variance,
                ).cpu().numpy()
        return out

    def _neg_log_prior(self, dtype, device):
        """``-log p(z)``: the mixture prior, else a Gaussian fitted to the training latents."""
        if getattr(self, "prior_", None) is not None:
            return self._prior_for(dtype).neg_log_density
        return gaussian_neg_log_prior(torch.as_tensor(self.embedding_, dtype=dtype, device=device))
