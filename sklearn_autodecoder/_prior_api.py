"""The latent prior's estimator API: building, storing and using the fitted prior.

:class:`PriorMixin` gives the auto-decoders ``predict``, ``predict_proba``
and ``sample`` (present when ``latent_prior`` names a generative prior, see
:func:`~._priors.prior_is_generative`), the ``_make_prior`` and
``_store_prior`` hooks of the fit, and inference's prior term. It talks to
the prior through the protocol of :class:`~._priors.LatentPrior` only, and
reaches the estimator through ``self``.
"""

from functools import partial
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if

from ._compat import check_is_fitted
from ._priors import make_latent_prior, prior_is_generative


class PriorMixin:
    """The estimator side of the latent prior (see the module's notes)."""

    def _make_prior(self, settings, generator, start=None):
        """The trainable prior of ``latent_prior`` (a Gaussian mixture for "gmm"), else None.

        When the training latents have a data-driven start (whitened PCA
        scores, or a warm start's projections), the mixture is fitted to
        that start by EM and its hyper-priors centred on it
        (:meth:`~._priors.GaussianMixturePrior.init_from`): training then
        begins at the Gaussian mixture of the PCA scores, a good clustering
        already, and refines it jointly with the decoder (as DEC and VaDE
        start from a fitted mixture). Otherwise (small random latents) the
        means start uniformly in the softball, as in the DGD code.

        ``start``: the training latents' data-driven start (returned by
        ``_make_representation``), or None.
        """
        prior = make_latent_prior(self.latent_prior, settings["n_components"], self.get_params(deep=False), generator)
        if prior is not None and start is not None:
            prior.start_from(start, generator=generator)
        return prior

    def _store_prior(self, prior):
        """``prior_`` and its fitted attributes (the mixture's in scikit-learn's shapes)."""
        for name in [name for name in vars(self) if name.startswith("prior_") and name.endswith("_")]:
            del self.__dict__[name]  # from a previous fit
        if prior is None:
            return
        self.prior_ = prior.eval()
        for name, value in prior.fitted_attributes().items():
            setattr(self, name, value)

    def _has_prior(self):
        """Whether the prior's methods exist: a generative ``latent_prior`` ("gmm")."""
        return prior_is_generative(self.latent_prior)

    def _check_prior(self, method):
        check_is_fitted(self)
        if getattr(self, "prior_", None) is None:
            raise AttributeError(
                f"{method} needs a fitted latent prior: refit with latent_prior='gmm'."
            )

    def _prior_for(self, dtype):
        return self._module_for(self.prior_, dtype)

    @available_if(_has_prior)
    def predict_proba(self, X):
        """Posterior probability of each mixture component for each sample.

        The samples' latents are inferred with :meth:`transform`; the
        probabilities are the prior's responsibilities at those latents.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_prior_components)
        """
        self._check_prior("predict_proba")
        Z = self.transform(X)
        prior = self._prior_for(torch.float64)
        with torch.no_grad():
            return prior.responsibilities(torch.as_tensor(Z, dtype=torch.float64)).numpy()

    @available_if(_has_prior)
    def predict(self, X):
        """Most likely mixture component of each sample (a clustering).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.predict_proba(X).argmax(axis=1)

    @available_if(_has_prior)
    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted generative model.

        Latents are drawn from the mixture prior and decoded.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            Seeds the draw (a local generator; global RNG untouched).

        Returns
        -------
        X : ndarray of shape (n_samples, ``n_features_in_``)
            Decoded samples, in the data's space (pixels in [0, 1] for the
            image estimators, probabilities for ``loss="bce"``).
        y : ndarray of shape (n_samples,)
            Component of each sample.
        """
        self._check_prior("sample")
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        z, y = self.prior_.sample(int(n_samples), generator=torch.Generator().manual_seed(seed))
        X = self.inverse_transform(z.detach().cpu().numpy().astype(np.float32))
        return X, y.cpu().numpy()

    def _prior_penalty(self, dtype):
        """Inference's prior term ``z -> (n,)`` in the loss's units: ``latent_l2`` and ``prior_`` (or None)."""
        prior = self.__dict__.get("prior_")
        prior = self._latent_prior(self.settings_, None if prior is None else self._prior_for(dtype))
        if prior is None:
            return None
        return partial(prior.penalty, units=self._prior_weight() if prior.needs_units else None)

    def _prior_weight(self):
        """The prior's nats in the units of the reconstruction loss (fitted noise variance)."""
        return self._likelihood().units_per_nat(getattr(self, "noise_variance_", None))
