"""Latent priors: the protocol, the Gaussian (``latent_l2``) and the mixture (DGD).

The protocol (:class:`LatentPrior`, an ``nn.Module`` so that a prior's
parameters train, move and save with the model); ``units`` below is the
likelihood's units per nat (:meth:`~._likelihoods.Likelihood.units_per_nat`),
which turns the prior's nats into the reconstruction loss's units:

* ``neg_log_density(z)``: ``-log p(z_i)`` per row, in nats (the Laplace
  likelihood; the default penalty);
* ``penalty(z, units)``: the per-row term of inference's objective, in the
  loss's units (row-independent);
* ``training_loss(z, units)``: the batch's training term, a scalar (with
  the prior's hyper-prior, if any);
* ``start_from(latents, generator)``: optional start from the training
  latents' data-driven start (the mixture's EM fit);
* ``start_candidates()``: optional latents that inference may start from
  (the mixture's means), or None;
* ``sample(n, generator)`` and ``responsibilities(z)``: for a generative
  prior (``generative = True``: the estimators' ``sample``, ``predict`` and
  ``predict_proba`` exist);
* ``fitted_attributes()``: the estimator's ``prior_*_`` attributes.

Class attributes: ``generative``; ``wants_data_start`` (the training latents
should start from PCA for it, even where an architecture keeps a random
start); ``needs_units`` (whether ``penalty`` uses ``units``). The public
names of ``latent_prior=`` are the keys of :data:`LATENT_PRIORS` ("none":
no trainable prior; ``latent_l2`` is the :class:`GaussianPrior`, which every
estimator adds when its strength is positive).

The mixture: learned jointly with the decoder (DGD)
--------------------------------------------------

The Deep Generative Decoder (DGD; Schuster, Krogh et al.) puts a Gaussian
mixture on the auto-decoder's latents and learns its means, variances and
weights together with the decoder and the latent table. The auto-decoder
then becomes a generative model (decode draws from the mixture), a
clustering model (each sample's most likely component), and inference gets
well-placed, deterministic starts: the decoded component means.

What is adopted from the DGD code (multiDGD, bulkDGD), and why
---------------------------------------------------------------
* Mixture parameters: means ``(K, m)``, log-variances ``(K, m)`` ("diag",
  "full") or ``(K, 1)`` ("spherical"), and unconstrained weight logits
  ``(K,)`` whose softmax gives the weights. Log-variances keep the
  variances positive without constraints (DGD stores the negative
  log-variance; the sign does not matter for a Gaussian hyper-prior).
  "full" (not in the DGD code) adds the strictly upper part of each
  component's precision Cholesky factor ``P`` (``Sigma^-1 = P P^T``, as
  scikit-learn's ``precisions_cholesky_``), whose diagonal is
  ``exp(-log_var / 2)``: ``log_var`` are then conditional variances, whose
  sum fixes the component's volume, and the hyper-prior on them leaves the
  shape free.
* Hyper-priors on the mixture's own parameters (:meth:`~GaussianMixturePrior.
  parameter_log_prior`):

  - a "softball" on each mean: uniform inside a ball of radius
    ``mean_radius`` with a soft, differentiable edge,
    ``log p(mu) = -log vol(B_R) - softplus(sharpness * (|mu| / R - 1))``.
    It fixes the latent space's overall scale (the decoder could otherwise
    absorb any scaling) without pulling the means towards the origin;
  - a Dirichlet(``weight_concentration``) on the weights: flat for 1, and
    for values above 1 it discourages components that lose all their
    samples;
  - a Gaussian on each log-variance, centred at ``log_variance_mean`` with
    standard deviation ``log_variance_std`` (one centre per entry, in the
    buffer ``log_variance_centre``). Without it the mixture can gain an
    unbounded log-density by shrinking a component's variance while the
    decoder rescales (collapse).

Starting from the data (not in the DGD code), and why
-----------------------------------------------------
The DGD code starts the means uniformly in the softball with small equal
variances, whatever the latents. The estimators' training latents start
from whitened PCA scores instead (MLP decoders), and a mixture drawn in a
ball of radius 2 does not match them: on MNIST the estimator then
clustered the test digits with an adjusted Rand index (ARI) of about 0.4,
below ``GaussianMixture(10)`` on ``PCA(20)`` (0.51). :meth:`GaussianMixturePrior.
init_from` instead fits the mixture to the starting latents by EM
(scikit-learn's ``GaussianMixture``, so training starts at "a Gaussian
mixture on PCA" and refines it, as DEC and VaDE start from a fitted
mixture), and centres the hyper-priors on that fit (empirical Bayes): the
softball's radius on the latents' norms, each log-variance's centre on its
fitted value. Everything then follows the data's own scale; nothing is
tuned to a data set.

One more term is needed once the mixture fits the latents: an anchor on
the latents' scale. The reconstruction does not change when the latents
shrink by a factor and the decoder's first layer grows by its inverse, but
the mixture's density rises; with Adam's normalised steps the latents then
contract steadily, the components come to overlap and merge (measured
before the EM ridge ``INIT_RIDGE`` was added: MNIST at the estimator's
default learning rates and batch size, test ARI 0.04 after 60 epochs
against 0.57 with the anchor; digits with 10 latents and a latent learning
rate of 0.1, latent norm from 3.0 to 0.5 and ARI from 0.76 to 0.28, while
with the anchor the norm stays at 3.1 and the ARI at 0.79). :func:`prior_loss` adds ``len(batch) * 0.5 * (log(S_batch / S0) /
LATENT_SCALE_STD)^2``, a log-normal on the batch's mean squared latent norm
``S_batch`` around the start's ``S0`` (``latent_scale``). It removes only
the unidentified scale (as whitening fixes PCA's), it is a training term
(inference is unchanged and row-independent), and it is absent when the
mixture did not start from the data.

How the terms are scaled in a training objective
------------------------------------------------
The package sums reconstruction losses over a sample's features and over
the samples of a batch (see :mod:`._losses`). The prior keeps that unit, a
sum of nats per sample, so that its weight relative to the reconstruction
is the Bayesian one. BCE is a Bernoulli negative log-likelihood exactly;
squared error is ``2 sigma^2`` times a Gaussian's, so with ``loss="mse"``
the estimators multiply the prior's terms by ``2 sigma^2``: in training the
batch's mean squared residual per observed entry (no gradient), in
inference the fitted ``noise_variance_``. Unscaled, the prior's nats
outweighed the data on [0, 1] pixels (digits, MSE: test error 1.9x to 5.7x
the prior-free model's and ARI 0.65 / 0.46 with 10 / 20 latents; scaled,
1.03x / 1.06x and ARI 0.73 / 0.77):

* per sample: ``-log p(z_i)``, the mixture's negative log-density
  (:func:`prior_penalty`). It depends on the sample's own latent only, so
  inference stays row-independent;
* per batch: ``-parameter_weight * len(batch) * log p(theta)`` for the
  hyper-prior (:func:`prior_loss`). The DGD code adds the hyper-prior to
  every sample's density, i.e. ``parameter_weight=1``: over an epoch it
  counts ``n_train`` times. An exact MAP estimate counts it once per epoch,
  ``parameter_weight=1 / n_train``. The DGD weighting is much stronger; it
  holds the variances near their centres, which is what prevents the
  collapse above when the decoder is flexible;
* per batch, after :meth:`~GaussianMixturePrior.init_from`: the latent-scale
  anchor above.
"""

import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from torch.nn import functional as F

COVARIANCE_TYPES = ("full", "diag", "spherical")
# EM runs of init_from (k-means starts); the most likely fit is kept. A single
# run's clustering varies a lot with its start (ARI 0.60 to 0.74 on digits).
INIT_N_INIT = 10
# init_from runs EM on at most this many (evenly spaced) latents.
INIT_MAX_SAMPLES = 50_000
# init_from adds this fraction of the latents' mean variance to every variance
# (EM's reg_covar). Full covariances of whitened PCA scores overfit their
# noisy trailing dimensions; the ridge steadies EM. Train ARI of the EM fit
# to whitened PCA(20) scores, 5 runs, for ridges 1e-3 / 0.1 / 0.3 / 1:
# MNIST 8,000 0.51 / 0.62 / 0.55 / 0.40, digits 0.75 / 0.77 / 0.78 / 0.70
# (digits with 10 latents: 0.74 at 0.1, 0.00 at 1).
INIT_RIDGE = 0.1
# Standard deviation (in log) of the latent-scale anchor of prior_loss: the
# batch's mean squared latent norm stays within a few percent of the start's.
LATENT_SCALE_STD = 0.05
# init_from sets the softball's radius to this quantile of the latents' norms.
INIT_RADIUS_QUANTILE = 0.99
# Dirichlet concentration on the mixture weights of the estimators' mixture
# (bulkDGD's): discourages components that lose all their samples. Counted
# with every sample (the DGD weighting), it holds the weights near uniform; a
# flat one (1) let them drift and clustered MNIST worse even when the mixture
# starts from EM (test ARI 0.527 against 0.559, seed 0, latent learning rate
# 0.1, batch size 128).
PRIOR_WEIGHT_CONCENTRATION = 5.0


def _check_positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _as_generator(generator):
    """A local ``torch.Generator``: given, seeded from an int, or seeded from the OS."""
    if isinstance(generator, torch.Generator):
        return generator
    local = torch.Generator()
    if generator is None:
        local.seed()  # fresh entropy; torch's global RNG is not used
    else:
        local.manual_seed(int(generator))
    return local


def _uniform_in_ball(n, dim, radius, generator):
    """``n`` points drawn uniformly in the ``dim``-ball of ``radius`` (CPU, float32)."""
    direction = torch.randn(n, dim, generator=generator)
    direction /= direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    length = radius * torch.rand(n, 1, generator=generator) ** (1.0 / dim)
    return direction * length


class LatentPrior(nn.Module):
    """Base of the latent priors; see the module's notes for the protocol."""

    generative = False
    wants_data_start = False
    needs_units = True

    def neg_log_density(self, z):
        """``-log p(z_i)`` per row, in nats: shape (n_samples,)."""
        raise NotImplementedError

    def penalty(self, z, units=None):
        """Inference's per-row term, in the loss's units (``units`` per nat)."""
        return units * self.neg_log_density(z)

    def training_loss(self, z, units=None):
        """The batch's training term (a scalar to minimise), in the loss's units."""
        return self.penalty(z, units).sum()

    def start_from(self, latents, generator=None):
        """Adapt the prior to the training latents' start (nothing by default); returns self."""
        return self

    def start_candidates(self):
        """Latents inference may start from, shape (n_candidates, m), or None."""
        return None

    def fitted_attributes(self):
        """The estimator's fitted ``prior_*_`` attributes (numpy arrays) by name."""
        return {}


class GaussianPrior(LatentPrior):
    """The L2 penalty ``strength * ||z||^2`` of ``latent_l2``: an isotropic Gaussian.

    ``strength`` is in the reconstruction loss's units (the penalty does not
    scale with the likelihood's units per nat); as a density in nats it is
    ``N(0, I / (2 strength))`` when a loss unit is a nat (``loss="bce"``).

    Parameters
    ----------
    strength : float
        Positive weight of the squared norm.
    """

    needs_units = False

    def __init__(self, strength):
        super().__init__()
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 < strength < math.inf:
            raise ValueError(f"strength must be a positive finite number, got {strength!r}.")
        self.strength = strength

    def neg_log_density(self, z):
        m = z.shape[1]
        return self.strength * z.pow(2).sum(dim=1) + 0.5 * m * math.log(math.pi / self.strength)

    def penalty(self, z, units=None):
        return self.strength * z.pow(2).sum(dim=1)

    def training_loss(self, z, units=None):
        return self.strength * z.pow(2).sum()


class PriorSum(LatentPrior):
    """Several priors on the same latents (``latent_l2`` with a mixture): their terms add up."""

    def __init__(self, priors):
        super().__init__()
        self.priors = nn.ModuleList(priors)
        self.needs_units = any(p.needs_units for p in priors)

    def neg_log_density(self, z):
        return sum(p.neg_log_density(z) for p in self.priors)

    def penalty(self, z, units=None):
        return sum(p.penalty(z, units) for p in self.priors)

    def training_loss(self, z, units=None):
        return sum(p.training_loss(z, units) for p in self.priors)


def combine_priors(*priors):
    """The priors that are not None as one :class:`LatentPrior`, or None if there are none."""
    priors = [p for p in priors if p is not None]
    if len(priors) <= 1:
        return priors[0] if priors else None
    return PriorSum(priors)


class GaussianMixturePrior(LatentPrior):
    """Gaussian mixture prior on latent vectors, with DGD hyper-priors.

    Parameters
    ----------
    n_components : int
        Size of the latent vectors, m.
    n_prior_components : int, default=10
        Number of mixture components, K.
    covariance_type : {"full", "diag", "spherical"}, default="diag"
        "full": a full covariance matrix per component; "diag": one variance
        per component and latent dimension; "spherical": one variance per
        component.
    mean_radius : float, default=2.0
        Radius of the softball hyper-prior on the means: the latents' scale.
    mean_sharpness : float, default=5.0
        Steepness of the softball's edge (DGD's "hardness").
    weight_concentration : float, default=1.0
        Dirichlet concentration alpha of the weights' hyper-prior; 1 is flat,
        above 1 favours equal weights.
    log_variance_mean : float, default=None
        Centre of the Gaussian hyper-prior on the log-variances, and their
        initial value. None gives ``2 * log(mean_radius / n_prior_components)``:
        a component standard deviation of ``mean_radius / K``, so that K
        components fit in the ball without overlapping much (multiDGD uses
        ``mean_radius / (5 K)``).
    log_variance_std : float, default=1.0
        Standard deviation of that hyper-prior.
    generator : torch.Generator or int, default=None
        Draws the initial means uniformly in the ball (as DGD). An int seeds
        a local generator; None seeds one from the OS. torch's global RNG is
        never used.

    Attributes
    ----------
    loc : torch.nn.Parameter of shape (K, m)
        Component means.
    log_var : torch.nn.Parameter of shape (K, m) or (K, 1)
        Log-variances ("diag" or "spherical"); for "full", minus twice the
        log-diagonal of the precision Cholesky factors.
    precision_offdiag : torch.nn.Parameter of shape (K, m, m)
        Only for "full": the precision Cholesky factors' strictly upper
        parts (entries on and below the diagonal are ignored).
    logits : torch.nn.Parameter of shape (K,)
        Unconstrained; ``softmax`` gives the weights.
    log_variance_centre : torch.Tensor of shape (K, m) or (K, 1)
        Centres of the log-variances' hyper-prior (a buffer):
        ``log_variance_mean`` everywhere, or the fitted log-variances after
        :meth:`init_from`.
    latent_scale : float or None
        Mean squared norm of the latents :meth:`init_from` was given: the
        centre of :func:`prior_loss`'s latent-scale anchor. None (no anchor)
        before.

    Examples
    --------
    >>> import torch
    >>> prior = GaussianMixturePrior(2, 3, generator=0)
    >>> prior.log_prob(torch.zeros(4, 2)).shape
    torch.Size([4])
    >>> z, y = prior.sample(5, generator=0)
    >>> z.shape, y.shape
    (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(
        self,
        n_components,
        n_prior_components=10,
        *,
        covariance_type="diag",
        mean_radius=2.0,
        mean_sharpness=5.0,
        weight_concentration=1.0,
        log_variance_mean=None,
        log_variance_std=1.0,
        generator=None,
    ):
        super().__init__()
        _check_count("n_components", n_components)
        _check_count("n_prior_components", n_prior_components)
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
            )
        _check_positive("mean_radius", mean_radius)
        _check_positive("mean_sharpness", mean_sharpness)
        _check_positive("weight_concentration", weight_concentration)
        _check_positive("log_variance_std", log_variance_std)
        if log_variance_mean is None:
            log_variance_mean = 2 * math.log(mean_radius / n_prior_components)
        elif not math.isfinite(log_variance_mean):
            raise ValueError(f"log_variance_mean must be finite, got {log_variance_mean!r}.")
        self.n_components = n_components
        self.n_prior_components = n_prior_components
        self.covariance_type = covariance_type
        self.mean_radius = float(mean_radius)
        self.mean_sharpness = float(mean_sharpness)
        self.weight_concentration = float(weight_concentration)
        self.log_variance_mean = float(log_variance_mean)
        self.log_variance_std = float(log_variance_std)
        self.latent_scale = None

        K, m = n_prior_components, n_components
        means = _uniform_in_ball(K, m, self.mean_radius, _as_generator(generator))
        self.loc = nn.Parameter(means)
        width = 1 if covariance_type == "spherical" else m
        self.log_var = nn.Parameter(torch.full((K, width), self.log_variance_mean))
        # Centres of the log-variances' hyper-prior, one per entry (init_from
        # sets them to the fitted mixture's); a buffer, so it moves and saves.
        self.register_buffer("log_variance_centre", torch.full((K, width), self.log_variance_mean))
        if covariance_type == "full":
            self.precision_offdiag = nn.Parameter(torch.zeros(K, m, m))
        self.logits = nn.Parameter(torch.zeros(K))

    # ---- the fitted mixture, in sklearn.mixture.GaussianMixture's shapes -----------

    @property
    def weights(self):
        """Mixture weights, shape (K,) (detached)."""
        return torch.softmax(self.logits.detach(), dim=0)

    @property
    def means(self):
        """Component means, shape (K, m) (detached copy)."""
        return self.loc.detach().clone()

    @property
    def covariances(self):
        """Covariances (detached), in sklearn's shapes.

        (K, m, m) matrices for "full", (K, m) variances for "diag", (K,) for
        "spherical".
        """
        if self.covariance_type == "full":
            inverse = self._inverse_precision_cholesky().detach()  # Sigma = Q^T Q
            return inverse.transpose(1, 2) @ inverse
        variances = self.log_var.detach().exp()
        return variances if self.covariance_type == "diag" else variances[:, 0]

    def _precision_cholesky(self):
        """Upper-triangular P with ``Sigma^-1 = P P^T``, shape (K, m, m) ("full" only)."""
        diagonal = torch.diag_embed(torch.exp(-0.5 * self.log_var))
        return diagonal + torch.triu(self.precision_offdiag, diagonal=1)

    def _inverse_precision_cholesky(self):
        """``Q = P^-1`` (upper triangular): ``Sigma = Q^T Q``, and ``eps @ Q`` samples."""
        P = self._precision_cholesky()
        eye = torch.eye(self.n_components, dtype=P.dtype, device=P.device).expand_as(P)
        return torch.linalg.solve_triangular(P, eye, upper=True)

    @torch.no_grad()
    def set_parameters(self, weights, means, covariances):
        """Set the mixture from weights, means and variances (sklearn's shapes).

        Parameters
        ----------
        weights : array-like of shape (K,)
            Positive; normalised here.
        means : array-like of shape (K, m)
        covariances : array-like of shape (K, m, m), (K, m) or (K,)
            Symmetric positive definite matrices ("full"), positive
            variances ("diag") or one positive variance per component
            ("spherical").

        Returns
        -------
        self
        """
        K, m = self.n_prior_components, self.n_components
        like = dict(dtype=self.loc.dtype, device=self.loc.device)
        weights = torch.as_tensor(weights, **like)
        means = torch.as_tensor(means, **like)
        variances = torch.as_tensor(covariances, **like)
        expected = {"full": (K, m, m), "diag": (K, m), "spherical": (K,)}[self.covariance_type]
        if weights.shape != (K,) or means.shape != (K, m) or variances.shape != expected:
            raise ValueError(
                f"Expected weights {(K,)}, means {(K, m)} and covariances {expected}; got "
                f"{tuple(weights.shape)}, {tuple(means.shape)} and {tuple(variances.shape)}."
            )
        if self.covariance_type == "full":
            # sklearn's route: Sigma = L L^T, then P = (L^-1)^T is upper triangular.
            L, info = torch.linalg.cholesky_ex(variances)
            if bool((info != 0).any()):
                raise ValueError("covariances must be symmetric positive definite.")
            eye = torch.eye(m, **like).expand(K, m, m)
            P = torch.linalg.solve_triangular(L, eye, upper=False).transpose(1, 2)
            variances = torch.diagonal(P, dim1=1, dim2=2) ** -2
            self.precision_offdiag.copy_(torch.triu(P, diagonal=1))
        if not (bool((weights > 0).all()) and bool((variances > 0).all())):
            raise ValueError("weights and covariances must be positive.")
        self.logits.copy_(weights.log() - weights.sum().log())
        self.loc.copy_(means)
        self.log_var.copy_(variances.log().reshape(K, -1))
        return self

    # ---- densities -----------------------------------------------------------------

    def _check_latents(self, z):
        if not torch.is_tensor(z) or z.ndim != 2 or z.shape[1] != self.n_components:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(
                f"Expected latents of shape (n_samples, {self.n_components}), got {shape}."
            )

    def component_log_prob(self, z):
        """``log w_k + log N(z_i; mu_k, Sigma_k)`` for every sample and component.

        Differences to the means are formed first (n, K, m), which stays
        precise when a latent sits close to a mean; "diag" and "spherical"
        then work element-wise (each row exact, whatever the batch), "full"
        multiplies by the precision Cholesky factors.

        Parameters
        ----------
        z : torch.Tensor of shape (n_samples, m)

        Returns
        -------
        log_prob : torch.Tensor of shape (n_samples, K)
        """
        self._check_latents(z)
        log_var = self.log_var.expand(-1, self.n_components)  # (K, m)
        diff = z.unsqueeze(1) - self.loc  # (n, K, m)
        if self.covariance_type == "full":
            whitened = torch.einsum("nkm,kmj->nkj", diff, self._precision_cholesky())
            mahalanobis = (whitened * whitened).sum(dim=2)
        else:
            mahalanobis = (diff * diff * torch.exp(-log_var)).sum(dim=2)
        log_norm = -0.5 * (log_var.sum(dim=1) + self.n_components * math.log(2 * math.pi))
        return torch.log_softmax(self.logits, dim=0) + log_norm - 0.5 * mahalanobis

    def log_prob(self, z):
        """Log-density of each latent under the mixture, shape (n_samples,).

        ``logsumexp`` over the components: stable for latents far from every
        mean. The hyper-prior is not included (see :meth:`parameter_log_prior`).
        """
        return torch.logsumexp(self.component_log_prob(z), dim=1)

    def responsibilities(self, z):
        """Posterior component probabilities ``p(k | z_i)``, shape (n_samples, K)."""
        return torch.softmax(self.component_log_prob(z), dim=1)

    def forward(self, z):
        """Same as :meth:`log_prob`."""
        return self.log_prob(z)

    # ---- the latent-prior protocol (see the module's notes) --------------------------

    generative = True
    wants_data_start = True  # it clusters from a data-driven start, not from the DGD ball

    @classmethod
    def from_params(cls, n_components, params, generator=None):
        """The estimators' mixture: ``n_prior_components``, ``prior_covariance_type`` of ``params``."""
        return cls(
            n_components,
            params["n_prior_components"],
            covariance_type=params["prior_covariance_type"],
            weight_concentration=PRIOR_WEIGHT_CONCENTRATION,
            generator=generator,
        )

    def neg_log_density(self, z):
        return prior_penalty(self, z)

    def penalty(self, z, units=None):
        return units * prior_penalty(self, z)

    def training_loss(self, z, units=None):
        return units * prior_loss(self, z)

    def start_from(self, latents, generator=None):
        """:meth:`init_from`, when there are at least as many latents as components."""
        if len(latents) >= self.n_prior_components:
            self.init_from(latents, generator=generator)
        return self

    def start_candidates(self):
        return self.loc.detach()

    def fitted_attributes(self):
        """``prior_weights_``, ``prior_means_``, ``prior_covariances_`` in sklearn's shapes."""
        return {
            "prior_weights_": self.weights.cpu().numpy().astype(np.float64),
            "prior_means_": self.means.cpu().numpy().astype(np.float64),
            "prior_covariances_": self.covariances.cpu().numpy().astype(np.float64),
        }

    # ---- hyper-priors -----------------------------------------------------------------

    def parameter_log_prior(self):
        """Log-density of the mixture's own parameters under the DGD hyper-priors.

        The sum of a softball on each mean, a Dirichlet on the weights and a
        Gaussian on each log-variance entry (see the module's notes); the
        softball's normaliser is the ball's volume (exact for a hard edge).
        Finite for any parameter values.

        Returns
        -------
        log_prior : torch.Tensor, scalar
        """
        K, m = self.n_prior_components, self.n_components
        R, alpha = self.mean_radius, self.weight_concentration
        # Softball: uniform on the m-ball (log of one over its volume), with a
        # logistic edge at |mu| = R.
        log_inv_volume = math.lgamma(1 + m / 2) - m * (math.log(R) + 0.5 * math.log(math.pi))
        norms = self.loc.norm(dim=1)
        means = (log_inv_volume - F.softplus(self.mean_sharpness * (norms / R - 1))).sum()
        # Dirichlet(alpha, ..., alpha) on the weights.
        log_weights = torch.log_softmax(self.logits, dim=0)
        weights = math.lgamma(K * alpha) - K * math.lgamma(alpha) + (alpha - 1) * log_weights.sum()
        # Gaussian on every log-variance entry ("full": the conditional
        # variances, which fix each component's volume; its shape is free).
        s = self.log_variance_std
        standardised = (self.log_var - self.log_variance_centre) / s
        log_vars = (-0.5 * standardised**2 - math.log(s * math.sqrt(2 * math.pi))).sum()
        return means + weights + log_vars

    # ---- sampling and initialisation -----------------------------------------------

    @torch.no_grad()
    def sample(self, n_samples, generator=None):
        """Draw latents from the mixture.

        Parameters
        ----------
        n_samples : int
        generator : torch.Generator or int, default=None
            The only source of randomness (on the CPU); an int seeds a local
            generator. torch's global RNG is never used.

        Returns
        -------
        z : torch.Tensor of shape (n_samples, m)
            In the prior's dtype and on its device.
        y : torch.Tensor of int64, shape (n_samples,)
            The component each latent was drawn from.
        """
        _check_count("n_samples", n_samples)
        generator = _as_generator(generator)
        weights = self.weights.cpu().double()
        y = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
        noise = torch.randn(n_samples, self.n_components, generator=generator, dtype=torch.float64)
        if self.covariance_type == "full":
            Q = self._inverse_precision_cholesky().detach().cpu().double()
            offsets = torch.einsum("nm,nmj->nj", noise, Q[y])  # covariance Q^T Q
        else:
            std = (0.5 * self.log_var.detach().cpu().double()).exp()
            offsets = std.expand(-1, self.n_components)[y] * noise
        z = self.loc.detach().cpu().double()[y] + offsets
        like = dict(dtype=self.loc.dtype, device=self.loc.device)
        return z.to(**like), y.to(self.loc.device)

    @torch.no_grad()
    def init_from(self, latents, generator=None):
        """Fit the mixture to latent vectors by EM, and centre the hyper-priors on them.

        The mixture's weights, means and covariances become those of
        :class:`sklearn.mixture.GaussianMixture` (same covariance type,
        k-means initialisation, the best of ``INIT_N_INIT`` runs by
        likelihood, ``INIT_RIDGE`` times the latents' mean variance added
        to every variance) fitted to ``latents`` (to ``INIT_MAX_SAMPLES`` evenly
        spaced ones when there are more). The hyper-priors then follow the
        latents' own scale (empirical Bayes): ``mean_radius`` becomes the
        ``INIT_RADIUS_QUANTILE`` quantile of the latents' norms (at least
        the largest mean's norm), each log-variance's centre
        (``log_variance_centre``) its fitted value and ``log_variance_mean``
        their mean, so that the hyper-priors hold the fitted mixture where
        it is instead of pulling it to the default scale; ``latent_scale``,
        the latents' mean squared norm, turns on :func:`prior_loss`'s
        latent-scale anchor. Deterministic given ``generator``.

        The estimators call it on the training latents' data-driven start
        (whitened PCA scores), so that training begins at the Gaussian
        mixture of the PCA scores and refines it.

        Parameters
        ----------
        latents : torch.Tensor of shape (n_samples, m)
            At least K rows, e.g. the training latents' start.
        generator : torch.Generator or int, default=None
            Seeds EM's k-means initialisations; an int seeds a local generator.

        Returns
        -------
        self
        """
        from sklearn.mixture import (
            GaussianMixture,  # here: importing sklearn.mixture is slow
        )

        self._check_latents(latents)
        K = self.n_prior_components
        if len(latents) < K:
            raise ValueError(f"init_from needs at least n_prior_components={K} latents, got {len(latents)}.")
        seed = int(torch.randint(2**31 - 1, (1,), generator=_as_generator(generator)))
        Z = latents.detach().cpu().double().numpy()
        # EM on evenly spaced rows when there are many: the fit barely changes.
        Z_fit = Z[:: -(-len(Z) // INIT_MAX_SAMPLES)]
        # A ridge relative to the latents' spread (sklearn's reg_covar is
        # absolute): see INIT_RIDGE.
        ridge = INIT_RIDGE * max(float(Z.var(axis=0).mean()), 1e-12)
        with warnings.catch_warnings():
            # Fewer distinct latents than components: EM still returns a valid mixture.
            warnings.simplefilter("ignore", ConvergenceWarning)
            mixture = GaussianMixture(
                K, covariance_type=self.covariance_type, reg_covar=ridge, n_init=INIT_N_INIT, random_state=seed
            ).fit(Z_fit)
        self.set_parameters(mixture.weights_, mixture.means_, mixture.covariances_)
        norms = torch.as_tensor(Z).norm(dim=1)
        self.mean_radius = max(float(norms.quantile(INIT_RADIUS_QUANTILE)), float(self.loc.norm(dim=1).max()), 1e-6)
        self.log_variance_centre.copy_(self.log_var)
        self.log_variance_mean = float(self.log_var.mean())
        self.latent_scale = float((torch.as_tensor(Z) ** 2).sum(dim=1).mean())
        return self


# ---- the terms the training and inference code use -----------------------------------


def prior_penalty(prior, z):
    """Per-sample penalty ``-log p(z_i)`` of the latents under ``prior``.

    Row-independent: row i depends on ``z[i]`` only, so it can be added to
    the per-sample reconstruction losses of inference.

    Parameters
    ----------
    prior : GaussianMixturePrior
    z : torch.Tensor of shape (n_samples, m)

    Returns
    -------
    penalty : torch.Tensor of shape (n_samples,)
    """
    return -prior.log_prob(z)


def prior_loss(prior, z, parameter_weight=1.0):
    """The prior's part of a training batch's objective (a scalar to minimise).

    ``sum_i -log p(z_i) - parameter_weight * len(z) * log p(theta)``: the
    batch's latents under the mixture plus the hyper-prior of the mixture's
    parameters, in the package's unit (nats summed over the batch's samples,
    like the reconstruction losses). When ``prior.latent_scale`` is set (by
    :meth:`~GaussianMixturePrior.init_from`), plus the latent-scale anchor
    ``len(z) * 0.5 * (log(mean_i |z_i|^2 / latent_scale) / LATENT_SCALE_STD)^2``
    (see the module's notes).

    Parameters
    ----------
    prior : GaussianMixturePrior
    z : torch.Tensor of shape (batch_size, m)
        The batch's latents.
    parameter_weight : float, default=1.0
        Weight of the hyper-prior per sample. 1 is the DGD code's choice (the
        hyper-prior counted with every sample); ``1 / n_train`` counts it
        once per epoch (the exact MAP objective).

    Returns
    -------
    loss : torch.Tensor, scalar
    """
    loss = prior_penalty(prior, z).sum() - parameter_weight * len(z) * prior.parameter_log_prior()
    if prior.latent_scale is not None:
        log_ratio = (z.pow(2).sum(dim=1).mean() / prior.latent_scale).log()
        loss = loss + len(z) * 0.5 * (log_ratio / LATENT_SCALE_STD) ** 2
    return loss


@torch.no_grad()
def best_prior_starts(x, mask, prior, candidates, references, *, loss, n_starts=1, prior_weight=1.0):
    """The candidate latents with the lowest inference objective: inference starts.

    A sample's score for candidate c is the reconstruction loss of the
    decoded candidate on the sample's observed entries plus ``-log p(c)``
    under the mixture: the objective inference then minimises, at its start.
    Deterministic, and each row depends on its own sample only.

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, n_features)
        Samples; entries where ``mask`` is False are ignored.
    mask : torch.Tensor of bool of the same shape, or None
        True where an entry is observed.
    prior : GaussianMixturePrior
        In x's dtype and on its device.
    candidates : torch.Tensor of shape (n_candidates, m)
        Latents to choose from (e.g. the component means and training latents).
    references : torch.Tensor of shape (n_candidates, n_features)
        The decoded candidates (any trailing shape is flattened).
    loss : {"mse", "bce"}
        Reconstruction loss.
    n_starts : int, default=1
        Starts per sample, at most ``n_candidates``.
    prior_weight : float, default=1.0
        Factor of ``-log p(c)``: the prior's nats in the loss's units.

    Returns
    -------
    indices : torch.Tensor of int64, shape (n_samples, n_starts)
        Candidate indices, best first.
    z0 : torch.Tensor of shape (n_samples, n_starts, m)
        The corresponding candidates.
    """
    from ._inference import pairwise_losses  # here: _inference may import this module

    n = len(candidates)
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or not 1 <= n_starts <= n:
        raise ValueError(f"n_starts must be an integer in [1, {n}], got {n_starts!r}.")
    references = references.reshape(n, -1).to(x.dtype)
    scores = pairwise_losses(x, mask, references, loss) + prior_weight * prior.neg_log_density(candidates.to(x.dtype))
    # A stable sort: ties keep the candidates' order, whatever the chunk.
    indices = torch.sort(scores, dim=1, stable=True).indices[:, :n_starts]
    return indices, candidates[indices]


# The public names of ``latent_prior=``: a trainable prior's class, or None
# ("none": ``latent_l2`` alone). Adding a prior: one class and one line here.
LATENT_PRIORS = {
    "none": None,
    "gmm": GaussianMixturePrior,
}


def make_latent_prior(name, n_components, params, generator=None):
    """The trainable prior of ``latent_prior=name`` (None for "none"), from the estimator's ``params``."""
    cls = LATENT_PRIORS[name]
    return None if cls is None else cls.from_params(n_components, params, generator)


def prior_is_generative(name):
    """Whether ``latent_prior=name`` gives the estimator ``sample``, ``predict`` and ``predict_proba``."""
    cls = LATENT_PRIORS[name]
    return cls is not None and cls.generative


def prior_wants_data_start(name):
    """Whether ``latent_prior=name`` needs the training latents' data-driven (PCA) start."""
    cls = LATENT_PRIORS[name]
    return cls is not None and cls.wants_data_start
