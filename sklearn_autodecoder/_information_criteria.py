"""Information criteria of an auto-decoder with a mixture prior: ``bic`` and ``aic``.

They follow scikit-learn's ``GaussianMixture.bic`` / ``aic``, with the
log-likelihood of :meth:`score_samples` (Laplace's method: each sample's
latent integrated out), so that the number of mixture components
(``n_prior_components``) can be chosen as with a ``GaussianMixture``.
"""

import math

import numpy as np
from sklearn.utils.metaestimators import available_if

from ._compat import check_is_fitted
from ._load import n_free_parameters
from ._priors import LATENT_PRIORS, prior_is_generative


def mixture_parameters(n_components, n_latent, covariance_type):
    """Free parameters of a Gaussian mixture (``GaussianMixture._n_parameters``'s count).

    ``n_components - 1`` weights, ``n_components * n_latent`` means, and the
    covariances: ``n_latent (n_latent + 1) / 2`` per component ("full"),
    ``n_latent`` ("diag") or 1 ("spherical").
    """
    per_component = {
        "full": n_latent * (n_latent + 1) // 2,
        "diag": n_latent,
        "spherical": 1,
    }[covariance_type]
    return n_components * (per_component + n_latent) + n_components - 1


def _has_mixture_prior(estimator):
    """Whether ``latent_prior`` names a generative prior (the Gaussian mixture, "gmm")."""
    name = getattr(estimator, "latent_prior", None)
    return name in LATENT_PRIORS and prior_is_generative(name)


class InformationCriteriaMixin:
    """``bic`` and ``aic`` of an auto-decoder fitted with ``latent_prior="gmm"``."""

    def _n_parameters(self):
        """Parameters counted by :meth:`bic` and :meth:`aic`.

        The decoder's free weights, the mixture's weights, means and
        covariances, and the noise variance of ``loss="mse"``. The latents
        are integrated out of the likelihood, not counted.
        """
        check_is_fitted(self)
        mixture = mixture_parameters(
            self.n_prior_components, self.n_components_, self.prior_covariance_type
        )
        noise = 1 if getattr(self, "noise_variance_", None) is not None else 0
        return n_free_parameters(self.decoder_) + mixture + noise

    @available_if(_has_mixture_prior)
    def bic(self, X):
        """Bayesian information criterion on X (lower is better).

        ``-2 * score_samples(X).sum() + n_parameters * log(n_samples)``, as
        :meth:`sklearn.mixture.GaussianMixture.bic`, with the Laplace
        log-likelihood of :meth:`score_samples` (the latents integrated
        out). ``n_parameters`` counts honestly everything fitted: the
        decoder's free weights, the mixture's ``n_prior_components - 1``
        weights, means and covariances, and the noise variance of
        ``loss="mse"``. Between models that differ only in
        ``n_prior_components`` (same decoder), the difference is the
        mixture's count, as for ``GaussianMixture``; across decoders, the
        neural network's weight count makes the penalty large and only
        nominal (BIC's asymptotics assume an identifiable model).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, usually held out from training.

        Returns
        -------
        bic : float
            The lower the better.
        """
        log_likelihood = self.score_samples(X)
        return float(-2 * log_likelihood.sum() + self._n_parameters() * math.log(len(log_likelihood)))

    @available_if(_has_mixture_prior)
    def aic(self, X):
        """Akaike information criterion on X (lower is better).

        ``-2 * score_samples(X).sum() + 2 * n_parameters``, as
        :meth:`sklearn.mixture.GaussianMixture.aic`; the log-likelihood and
        the parameter count are those of :meth:`bic`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, usually held out from training.

        Returns
        -------
        aic : float
            The lower the better.
        """
        log_likelihood = np.asarray(self.score_samples(X))
        return float(-2 * log_likelihood.sum() + 2 * self._n_parameters())
