"""A held-out likelihood for auto-decoders: choosing n_components without labels.

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

from ._inference import data_gauss_newton, infer_latents, penalty_terms
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


def log_likelihood_scorer(estimator, X, y=None):
    """Mean log-likelihood of X under a fitted estimator: ``score_samples(X).mean()``.

    A scorer for :class:`~sklearn.model_selection.GridSearchCV` and
    :func:`~sklearn.model_selection.cross_val_score` (``scoring=``) that can
    choose ``n_components`` without labels: unlike the estimators'
    :meth:`score` (minus the reconstruction error, which keeps improving
    with more components), the held-out likelihood peaks where more
    components stop explaining the data.

    Parameters
    ----------
    estimator : estimator with ``score_samples``
        Fitted, e.g. an :class:`AutoDecoder` or a ``PCA``.
    X : array-like of shape (n_samples, n_features)
        Held-out samples.
    y : None
        Ignored.

    Returns
    -------
    score : float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_autodecoder import AutoDecoder, log_likelihood_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 3) @ rng.randn(3, 12) + 0.3 * rng.randn(300, 12)  # rank 3 + noise
    >>> search = GridSearchCV(
    ...     AutoDecoder(hidden_layer_sizes=(), device="cpu", random_state=0),
    ...     {"n_components": [1, 3, 8]}, scoring=log_likelihood_scorer, cv=3,
    ... ).fit(X)
    >>> search.best_params_
    {'n_components': 3}
    """
    return float(np.mean(estimator.score_samples(X)))
