"""Likelihoods: the noise model of the data given the decoder's output.

Every decision that depends on the reconstruction loss lives here, in one
class per likelihood; the rest of the package talks to a
:class:`Likelihood` object and never compares loss names. The public names
``loss="mse"`` and ``loss="bce"`` are keys of the registry
:data:`LIKELIHOODS`; :func:`get_likelihood` turns a name (or an object,
returned as it is) into an object.

The protocol
------------
A likelihood is a ``torch.nn.Module`` so that trainable parameters (a
negative binomial's per-feature dispersion, say) live on it: the estimators
train them with the decoder's weight optimiser, move them with the model
and store them in ``save`` files (the fitted ``likelihood_`` attribute).
Units: the package's losses are sums over observed entries of an
element-wise loss (see :mod:`._losses`); a likelihood's loss is its
negative log-likelihood up to a factor (:meth:`Likelihood.units_per_nat`)
and terms that do not depend on the decoder's output
(:meth:`Likelihood.log_normaliser`).

Class attributes

``name``
    The registry key (what the fitted ``loss_`` holds).
``output_activation``
    The last activation the package's MLP decoders get for it
    (``"identity"``, ``"logistic"``; see :class:`~.nn.MLPDecoder`).
``pca_is_optimum``
    Whether PCA is the optimum of a dense linear decoder under this loss
    (then the PCA start sets a linear decoder to PCA itself).
``checks_new_samples``
    Whether :meth:`Likelihood.check_rows` also checks the samples of
    ``transform``, ``score`` and the other methods after ``fit``, not only
    the training samples: the Bernoulli (values outside [0, 1] have no
    likelihood) and the count likelihoods (a sample without counts has no
    latent).

Methods a subclass defines (``f`` is what ``forward`` returns, on the
*link* scale; ``link`` is one of the strings :meth:`head` returns, private to
the class; ``offset`` is an optional ``(n, 1)`` tensor of per-row scales,
e.g. a count row's library size, that a count likelihood multiplies its
mean by; the Gaussian and Bernoulli ignore it)

``head(decoder) -> (forward, link)``
    The module whose output the loss is computed from (the decoder itself,
    or a view without its output activation, e.g. the logits before a
    Sigmoid) and what that output is.
``nll(f, x, link, offset=None)``
    Element-wise loss of shape ``x.shape``.
``derivatives(f, x, link, offset=None) -> (slope, weight)``
    First derivative of ``nll`` in ``f`` and its Gauss-Newton (Fisher)
    weight: a row's Gauss-Newton matrix in its latent is
    ``J^T diag(weight) J``, ``J = df/dz`` (Levenberg-Marquardt, Laplace).
``mean(f, link, offset=None)``
    The reconstruction (what the decoder returns) from ``f``.
``elementwise(x_hat, x, mask=None)``
    Element-wise loss from the reconstruction itself (``mask``: the
    observed entries, for likelihoods whose row offset depends on them).
``pairwise(x, mask, references)``
    Loss of every sample against every reference reconstruction, in closed
    form (inference starts rank candidates with it).
``units_per_nat(noise_variance=None)``, ``batch_units_per_nat(data, n_observed)``
    The factor turning nats (a prior's) into the loss's units: with the
    fitted noise variance, or estimated from a training batch's summed loss.
``log_normaliser(x, mask, noise_variance=None)``
    Per-row nats the loss leaves out, over the observed entries
    (``-log p(x | f) = loss / units_per_nat + this``): a float or an
    ``(n,)`` float64 tensor.
``check_rows(X, scale=None)``
    Checks X's values (chunk by chunk, never copying) and returns whether
    X has missing entries; see :func:`~._data.check_rows`.
``fit_noise_variance(decoder, data, latents, batch_size)``
    A noise parameter fitted after training (the Gaussian's variance,
    ``noise_variance_``), or None.

Optional methods (the defaults do nothing), for likelihoods with per-feature
parameters or per-row scales (the count likelihoods)

``row_offset(f, x, link, mask=None)``
    The rows' ``offset`` (an ``(n, 1)`` tensor without gradient, or None),
    computed from the data and the output; every caller of :meth:`nll` and
    :meth:`derivatives` passes it on.
``setup(n_features, data=None)``
    Sizes the trainable parameters (before training, and before ``load``
    fills them) and, given the training rows (a :class:`~._data.RowData`),
    starts them from the data.
``start_values(x)``
    The values the PCA start of the latents is computed from (a float64
    NumPy batch, NaN kept), e.g. log-normalised counts.
``expected(x_hat, library_size=None)``
    What ``inverse_transform`` returns for decoder outputs ``x_hat`` (a
    tensor), e.g. expected counts at a library size.

Adding a likelihood: one subclass here and one line in :data:`LIKELIHOODS`.
"""

import inspect
import math
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._data import check_counts, check_rows, slices

# Values (rows x features) per batch of the count likelihoods' pass over the
# training rows in setup (library sizes, moments): 32 MiB in float64.
SETUP_BATCH_VALUES = 2**22
# Range of the negative binomial's moment start of theta (per feature).
THETA_START_MIN, THETA_START_MAX = 0.01, 1e4

# Floor of a fitted noise variance (a perfect fit must not give -inf).
MIN_NOISE_VARIANCE = 1e-12
# F.binary_cross_entropy clamps its logs at -100; the pairwise form does too,
# so that both rank candidates alike.
_LOG_FLOOR = -100.0

# Modules that only reshape: a Sigmoid followed by these is still the
# decoder's output activation (sigmoid commutes with a reshape).
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)

# decoder -> its logit view (or None): built once per decoder object, since
# building an nn.Sequential costs about as much as a small decoder's forward.
_LOGIT_VIEWS = weakref.WeakKeyDictionary()
# decoder -> its log-proportion head (count likelihoods), or None.
_LOG_PROPORTION_HEADS = weakref.WeakKeyDictionary()


def masked_sum(elements, mask=None):
    """Sum each row of ``elements`` over its observed (``mask`` True) entries."""
    if mask is not None:
        # torch.where (not a product) so that a NaN/inf in a hidden entry's
        # loss cannot leak into the sum or its gradient.
        elements = torch.where(mask, elements, torch.zeros((), dtype=elements.dtype, device=elements.device))
    return elements.sum(dim=1)


class Likelihood(nn.Module):
    """Base class of the likelihoods: the noise model that ``loss=`` names.

    Subclasses set the class attributes ``name``, ``output_activation`` and
    ``pca_is_optimum`` and define the element-wise methods below (see
    :mod:`sklearn_autodecoder._likelihoods` for the protocol). Trainable
    parameters are ``nn.Parameter`` attributes: the estimators train them
    with the decoder's weights and store them in ``likelihood_``.
    Constructor arguments are stored under their own names, as in
    scikit-learn estimators, so that :meth:`get_params` (and so
    ``sklearn.base.clone`` and ``save``) can rebuild the object.

    See Also
    --------
    GaussianLikelihood : Squared error, ``loss="mse"``.
    BernoulliLikelihood : Binary cross-entropy, ``loss="bce"``.
    """

    name = None
    output_activation = "identity"
    pca_is_optimum = False
    checks_new_samples = False

    def get_params(self, deep=True):
        """The constructor arguments, read back from the attributes of the same name.

        Parameters
        ----------
        deep : bool, default=True
            Ignored (a likelihood holds no estimators); present for
            scikit-learn's ``clone`` and ``get_params(deep=True)``.

        Returns
        -------
        params : dict
        """
        signature = inspect.signature(type(self).__init__)
        return {
            p.name: getattr(self, p.name)
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())

    def head(self, decoder):
        """The module the loss is computed from, and what it outputs.

        Parameters
        ----------
        decoder : torch.nn.Module

        Returns
        -------
        forward : torch.nn.Module
            ``decoder``, or a view of it (sharing its parameters) without
            its output activation.
        link : str
            What ``forward`` outputs, in this class's terms (passed back to
            :meth:`nll`, :meth:`derivatives` and :meth:`mean`).
        """
        return decoder, "identity"

    def nll(self, f, x, link, offset=None):
        """Element-wise loss of the output ``f`` (of :meth:`head`) against ``x``.

        Parameters
        ----------
        f : torch.Tensor of shape (n_samples, n_features)
        x : torch.Tensor of the same shape
        link : str
            What ``f`` is (see :meth:`head`).
        offset : torch.Tensor of shape (n_samples, 1), default=None
            Per-row scale of the mean (a count row's library size); None
            for none.

        Returns
        -------
        loss : torch.Tensor of x's shape
        """
        raise NotImplementedError

    def derivatives(self, f, x, link, offset=None):
        """First derivative of :meth:`nll` in ``f``, and its Gauss-Newton (Fisher) weight.

        Parameters
        ----------
        f, x, link, offset
            As for :meth:`nll`.

        Returns
        -------
        slope, weight : torch.Tensor, each of f's shape
        """
        raise NotImplementedError

    def mean(self, f, link, offset=None):
        """The reconstruction (what the decoder returns) from the output ``f`` of :meth:`head`.

        Parameters
        ----------
        f, link, offset
            As for :meth:`nll`.

        Returns
        -------
        x_hat : torch.Tensor of f's shape
        """
        return f

    def elementwise(self, x_hat, x, mask=None):
        """Element-wise loss of reconstructions ``x_hat`` (the decoder's outputs) against ``x``.

        Parameters
        ----------
        x_hat, x : torch.Tensor of shape (n_samples, n_features)
        mask : torch.Tensor of bool of x's shape, or None
            True where an entry is observed (a likelihood that scales by
            the row's observed total uses it; the others ignore it).

        Returns
        -------
        loss : torch.Tensor of x's shape
        """
        return self.nll(x_hat, x, "identity")

    def pairwise(self, x, mask, references):
        """Loss of every sample against every reference reconstruction, in closed form.

        Parameters
        ----------
        x : torch.Tensor of shape (n_samples, n_features)
        mask : torch.Tensor of bool of x's shape, or None
            True where an entry is observed; the others count nothing.
        references : torch.Tensor of shape (n_references, n_features)

        Returns
        -------
        losses : torch.Tensor of shape (n_samples, n_references)
        """
        raise NotImplementedError

    def units_per_nat(self, noise_variance=None):
        """The factor that turns nats (a prior's) into this loss's units.

        Parameters
        ----------
        noise_variance : float or torch.Tensor, default=None
            The fitted noise parameter, for a likelihood that has one.

        Returns
        -------
        factor : float or torch.Tensor
        """
        return 1.0

    def batch_units_per_nat(self, data, n_observed):
        """:meth:`units_per_nat` in training, estimated from a batch.

        Parameters
        ----------
        data : torch.Tensor, scalar
            The batch's summed loss.
        n_observed : int or torch.Tensor
            Its observed entries.

        Returns
        -------
        factor : float or torch.Tensor
        """
        return self.units_per_nat()

    def log_normaliser(self, x, mask, noise_variance=None):
        """Per-row nats the loss leaves out: ``-log p(x | f) = loss / units_per_nat + this``.

        Parameters
        ----------
        x : torch.Tensor of shape (n_samples, n_features)
        mask : torch.Tensor of bool of x's shape, or None
        noise_variance : float, default=None

        Returns
        -------
        nats : float or torch.Tensor of float64, shape (n_samples,)
        """
        return 0.0

    def check_rows(self, X, scale=None):
        """Check X's values for this likelihood, chunk by chunk; whether X has NaN.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        scale : float, default=None
            Factor applied to the values before use (8-bit pixels: 1/255).

        Returns
        -------
        has_nan : bool
        """
        return check_rows(X, scale=scale)

    def row_offset(self, f, x, link, mask=None):
        return None

    def setup(self, n_features, data=None):
        pass

    def start_values(self, x):
        return x

    def completion(self, x_hat, x, mask):
        """The expected values of a sample's entries given its decoding and observed entries.

        What an imputer fills a missing entry with. The decoding itself here;
        the count likelihoods scale their decoded proportions to the row's
        library size, estimated from its observed entries.

        Parameters
        ----------
        x_hat : torch.Tensor of shape (n, n_features)
            The decodings (``inverse_transform`` of the inferred latents).
        x : torch.Tensor of shape (n, n_features)
            The samples; entries where ``mask`` is False are ignored (NaN allowed).
        mask : torch.Tensor of bool, shape (n, n_features)
            True where an entry is observed.

        Returns
        -------
        torch.Tensor of shape (n, n_features)
        """
        return x_hat

    def expected(self, x_hat, library_size=None):
        if library_size is not None:
            raise ValueError(
                f"library_size applies to the count likelihoods; loss={self.name!r} has none."
            )
        return x_hat

    def fit_noise_variance(self, decoder, data, latents, batch_size):
        """The noise parameter fitted after training, or None (the default: none).

        Parameters
        ----------
        decoder : torch.nn.Module
            The fitted decoder.
        data : RowData
            The training rows.
        latents : ndarray of shape (n_samples, n_components)
            Their fitted latents.
        batch_size : int

        Returns
        -------
        noise_variance : float or None
        """
        return None


class GaussianLikelihood(Likelihood):
    """Gaussian noise: the squared error ``(f - x)^2`` (``loss="mse"``).

    It is ``2 sigma^2`` times the Gaussian's negative log-likelihood (less
    its normaliser), sigma^2 the noise variance: fitted after training
    (``noise_variance_``), or a training batch's mean squared residual.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder import AutoDecoder, GaussianLikelihood
    >>> X = np.random.RandomState(0).rand(30, 4)
    >>> ad = AutoDecoder(loss=GaussianLikelihood(), max_iter=2, random_state=0).fit(X)
    >>> ad.loss_
    'mse'
    """

    name = "mse"
    pca_is_optimum = True

    def nll(self, f, x, link="identity", offset=None):
        return (f - x) ** 2

    def derivatives(self, f, x, link="identity", offset=None):
        return 2 * (f - x), torch.full_like(f, 2.0)

    def pairwise(self, x, mask, references):
        w = torch.ones_like(x) if mask is None else mask.to(x.dtype)
        x = x * w  # zero the placeholders so that they add nothing
        # sum_j w_j (x_j - r_j)^2 = sum w x^2 - 2 (w x) . r + w . r^2
        return (x * x).sum(1, keepdim=True) - 2 * x @ references.T + w @ (references * references).T

    def units_per_nat(self, noise_variance=None):
        if noise_variance is None:
            raise ValueError("The Gaussian likelihood's units need its noise variance.")
        return 2.0 * noise_variance

    def batch_units_per_nat(self, data, n_observed):
        # The batch's mean squared residual, without gradient.
        variance = (data.detach() / n_observed).clamp_min(torch.finfo(data.dtype).tiny)
        return self.units_per_nat(variance)

    def log_normaliser(self, x, mask, noise_variance=None):
        n_observed = (torch.ones_like(x) if mask is None else mask).sum(dim=1).double()
        return 0.5 * n_observed * math.log(2 * math.pi * noise_variance)

    @torch.no_grad()
    def fit_noise_variance(self, decoder, data, latents, batch_size):
        """The noise variance as probabilistic PCA estimates it.

        The residual sum of squares of the training rows ``data`` (a
        :class:`~._data.RowData`) at their fitted ``latents``, over the
        observed entries, divided by their number less the latents' degrees
        of freedom (``n_components`` per sample); floored at
        ``MIN_NOISE_VARIANCE``.
        """
        total, count = 0.0, 0
        Z = torch.as_tensor(latents, dtype=torch.float32)
        was_training = decoder.training
        decoder.eval()
        try:
            for rows, x, mask in data.batches(slices(len(data), batch_size)):
                z = Z[rows].to(data.device)
                total += float(masked_sum(self.elementwise(decoder(z).float(), x), mask).sum())
                count += x.numel() if mask is None else int(mask.sum())
        finally:
            decoder.train(was_training)
        dof = max(count - Z.numel(), 1)
        return max(total / dof, MIN_NOISE_VARIANCE)


class BernoulliLikelihood(Likelihood):
    """Bernoulli entries: binary cross-entropy (``loss="bce"``), X in [0, 1].

    Computed from the decoder's logits wherever the decoder ends with a
    ``Sigmoid`` (:func:`split_output_activation`): on probabilities a
    saturated output has an exactly zero gradient, and the logs clamp at
    -100. On a decoder without a trailing Sigmoid, the clamped probability
    form.

    Examples
    --------
    >>> import torch
    >>> from sklearn_autodecoder import BernoulliLikelihood
    >>> bce = BernoulliLikelihood()
    >>> bce.nll(torch.tensor([[20.0]]), torch.tensor([[0.0]]), "logit")  # exact when saturated
    tensor([[20.]])
    """

    name = "bce"
    output_activation = "logistic"
    checks_new_samples = True

    def head(self, decoder):
        logits = split_output_activation(decoder)
        return (decoder, "probability") if logits is None else (logits, "logit")

    def nll(self, f, x, link="probability", offset=None):
        if link == "logit":
            return F.binary_cross_entropy_with_logits(f, x, reduction="none")
        return F.binary_cross_entropy(f, x, reduction="none")

    def derivatives(self, f, x, link="probability", offset=None):
        if link == "logit":
            p = torch.sigmoid(f)
            return p - x, p * (1 - p)
        # Probabilities: d/dp of -x log p - (1 - x) log(1 - p), and its Fisher weight.
        tiny = torch.finfo(f.dtype).eps
        p = f.clamp(tiny, 1 - tiny)
        var = p * (1 - p)
        return (p - x) / var, 1 / var

    def mean(self, f, link="probability", offset=None):
        return torch.sigmoid(f) if link == "logit" else f

    def elementwise(self, x_hat, x, mask=None):
        return self.nll(x_hat, x, "probability")

    def pairwise(self, x, mask, references):
        # Probabilities with logs clamped at -100: this only ranks candidates.
        w = torch.ones_like(x) if mask is None else mask.to(x.dtype)
        x = x * w
        log_r = references.log().clamp(min=_LOG_FLOOR)
        log_1mr = torch.log1p(-references).clamp(min=_LOG_FLOOR)
        return -(x @ log_r.T) - (w - x) @ log_1mr.T

    def check_rows(self, X, scale=None):
        return check_rows(X, scale=scale, unit_interval=True)


# ---- count likelihoods (Poisson, negative binomial) -----------------------------------


class _CountLikelihood(Likelihood):
    """Base of the count likelihoods: a log link on proportions times the library size.

    The package's MLP decoders end with a softmax over the features for
    them: the decoder predicts each feature's *proportion* of a sample's
    counts, and the sample's library size (its observed total count) scales
    it, ``mu = library_size * proportion`` (the Deep Generative Decoder's
    scaling factor, scVI's library size). The loss works from the
    log-proportions (``log_softmax`` of the pre-softmax output: exact and
    safe, never ``log 0``). A decoder without a trailing ``Softmax`` is read
    as predicting positive, unnormalised proportions (link ``"rate"``).

    The library size is the profile maximum-likelihood scale of the row,
    ``total of the observed counts / total of the observed proportions``
    (:meth:`row_offset`): the row's total when every entry is observed;
    with missing entries, the proportions are renormalised over the
    observed ones. It is held fixed (no gradient), which for the Poisson
    is exact (the scale is at its optimum).

    The loss is the exact negative log-likelihood, ``lgamma`` terms
    included: it is non-negative, and :meth:`score` is the mean
    log-likelihood per entry.
    """

    output_activation = "softmax"
    pca_is_optimum = False
    checks_new_samples = True

    def __init__(self):
        super().__init__()
        # The training rows' median total count (set by setup): the default
        # library size of inverse_transform; saved with the model.
        self.register_buffer("library_size", torch.tensor(float("nan"), device="cpu"))  # moved with the module

    def setup(self, n_features, data=None):
        if data is not None:
            # Preallocated: small tensors kept between the large batches would
            # fragment the heap (measured: RSS growing by every batch's size).
            totals = np.empty(len(data))
            step = max(1, SETUP_BATCH_VALUES // data.n_features)  # bounded float64 temporaries
            for rows in slices(len(data), step):
                # On the host, in float64 (sums of many counts; MPS has no float64).
                x, mask = data.host_batch(rows)
                x = x.double()
                row_totals = x.sum(dim=1, keepdim=True)  # placeholders of missing entries are 0
                totals[rows] = row_totals[:, 0].numpy()
                self._accumulate(x, row_totals, mask)
            self.library_size.fill_(float(np.median(totals)))
            self._finish_accumulation()

    def _accumulate(self, x, totals, mask):
        pass

    def _finish_accumulation(self):
        pass

    def start_values(self, x):
        """log1p of the counts normalised to the median library size (scanpy's convention)."""
        totals = np.nansum(x, axis=1, keepdims=True)
        target = float(self.library_size) if torch.isfinite(self.library_size) else 1e4
        return np.log1p(x * (target / np.maximum(totals, 1.0)))

    def completion(self, x_hat, x, mask):
        """Expected counts at the row's own library size, from its observed entries (:meth:`row_offset`)."""
        return self.row_offset(x_hat, x, "rate", mask) * x_hat

    def expected(self, x_hat, library_size=None):
        """Expected counts at ``library_size`` (default: ``library_size``, the training median)."""
        if library_size is None:
            if not torch.isfinite(self.library_size):
                raise ValueError(
                    "This model has no training library size (fitted under torch.distributed): "
                    "pass library_size to inverse_transform."
                )
            library_size = self.library_size.to(x_hat.dtype)
        proportions = x_hat / x_hat.sum(dim=1, keepdim=True).clamp_min(torch.finfo(x_hat.dtype).tiny)
        return library_size * proportions

    def head(self, decoder):
        try:
            forward = _LOG_PROPORTION_HEADS[decoder]
        except KeyError:  # built once per decoder, as the logit views are
            scores = split_output_activation(decoder, nn.Softmax)
            forward = None if scores is None else nn.Sequential(scores, nn.LogSoftmax(dim=1))
            _LOG_PROPORTION_HEADS[decoder] = forward
        return (decoder, "rate") if forward is None else (forward, "log_proportion")

    @staticmethod
    def _log_proportion(f, link):
        if link == "rate":
            return torch.log(f.clamp_min(torch.finfo(f.dtype).tiny))
        return f

    def row_offset(self, f, x, link, mask=None):
        """The rows' library sizes, shape (n, 1), without gradient (see the class doc)."""
        p = torch.exp(self._log_proportion(f.detach(), link))
        xs = x.detach()
        if mask is not None:
            xs = torch.where(mask, xs, torch.zeros((), dtype=xs.dtype, device=xs.device))
            p = torch.where(mask, p, torch.zeros((), dtype=p.dtype, device=p.device))
        total = xs.sum(dim=1, keepdim=True)
        return total / p.sum(dim=1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)

    def _log_mean(self, f, x, link, offset):
        f = f.to(x.dtype)  # lgamma and exp in the data's precision, not autocast's
        if offset is None:
            offset = self.row_offset(f, x, link)
        return torch.log(offset.clamp_min(torch.finfo(f.dtype).tiny)) + self._log_proportion(f, link)

    def mean(self, f, link="log_proportion", offset=None):
        p = torch.exp(self._log_proportion(f, link))
        return p if offset is None else offset * p

    def elementwise(self, x_hat, x, mask=None):
        return self.nll(x_hat, x, "rate", self.row_offset(x_hat, x, "rate", mask))

    def pairwise(self, x, mask, references):
        # The Poisson loss of each sample against each reference proportion
        # vector, with the row's profile scale: a closed form by matrix
        # products. The negative binomial ranks its candidates with it too
        # (its own form has no such product structure).
        w = torch.ones_like(x) if mask is None else mask.to(x.dtype)
        x = x * w
        tiny = torch.finfo(references.dtype).tiny
        log_r = torch.log(references.clamp_min(tiny))
        total = x.sum(dim=1, keepdim=True)
        observed_share = (w @ references.T).clamp_min(tiny)
        log_scale = torch.log(total.clamp_min(tiny)) - torch.log(observed_share)
        constant = torch.lgamma(x + 1).sum(dim=1, keepdim=True)
        return total - x @ log_r.T - total * log_scale + constant

    def check_rows(self, X, scale=None):
        has_nan = check_rows(X, scale=scale)
        check_counts(X, loss=self.name)
        return has_nan



class PoissonLikelihood(_CountLikelihood):
    """Poisson counts (``loss="poisson"``): ``-log p(x) = mu - x log mu + lgamma(x + 1)``.

    ``mu`` is the row's library size times the decoded proportion (see
    :class:`_CountLikelihood`). With a linear decoder this is Poisson PCA
    (GLM-PCA) with the library size as offset.
    """

    name = "poisson"

    def nll(self, f, x, link="log_proportion", offset=None):
        log_mu = self._log_mean(f, x, link, offset)
        return torch.exp(log_mu) - x * log_mu + torch.lgamma(x + 1)

    def derivatives(self, f, x, link="log_proportion", offset=None):
        log_mu = self._log_mean(f, x, link, offset)
        mu = torch.exp(log_mu)
        slope, weight = mu - x, mu  # in log mu; the Fisher weight is the variance
        if link == "rate":  # f is the proportion itself: d log mu / d f = 1 / f
            inverse = 1 / f.clamp_min(torch.finfo(f.dtype).tiny)
            return slope * inverse, weight * inverse**2
        return slope, weight


class NegativeBinomialLikelihood(_CountLikelihood):
    """Negative-binomial (NB2) counts with a learned dispersion per feature (``loss="negative_binomial"``).

    Mean ``mu`` as for the Poisson, variance ``mu + mu^2 / theta``::

        -log p(x) = lgamma(theta) + lgamma(x + 1) - lgamma(x + theta)
                    - theta log(theta / (theta + mu)) - x log(mu / (theta + mu))

    ``theta > 0`` is one trainable parameter per feature, stored as its log
    (``log_dispersion``), trained with the decoder by the weight optimiser
    and saved with the model; it starts at 1. theta -> infinity gives the
    Poisson.
    """

    name = "negative_binomial"

    def setup(self, n_features, data=None):
        """One log-dispersion per feature; from the data, a method-of-moments start.

        The moments ignore the latent structure (which adds variance), so
        the start errs on the over-dispersed side; training refines it.
        """
        # Built on the host: the estimator moves the likelihood to its device after
        # setup, and the moments accumulate host batches in float64.
        self.log_dispersion = nn.Parameter(torch.zeros(n_features, device="cpu"))
        self._moments = torch.zeros(5, n_features, dtype=torch.float64, device="cpu")
        super().setup(n_features, data)
        del self._moments

    def _accumulate(self, x, totals, mask):
        # Products and sums without batch-sized temporaries (bounded memory).
        moments = self._moments
        moments[0] += x.sum(dim=0)
        moments[1] += torch.einsum("ij,ij->j", x, x)
        moments[2] += (totals.T @ x)[0]
        if mask is None:
            moments[3] += totals.sum()
            moments[4] += (totals * totals).sum()
        else:
            observed = mask.double()
            moments[3] += (totals.T @ observed)[0]
            moments[4] += ((totals * totals).T @ observed)[0]

    def _finish_accumulation(self):
        s1, s2, sxt, st, st2 = self._moments
        p = s1 / st.clamp_min(1e-300)
        excess = s2 - 2 * p * sxt + p * p * st2 - s1  # sum of (x - t p)^2 - t p
        inverse = excess / (p * p * st2).clamp_min(1e-300)
        theta = (1 / inverse.clamp_min(1e-4)).clamp(THETA_START_MIN, THETA_START_MAX)
        with torch.no_grad():
            self.log_dispersion.copy_(torch.log(theta).float())

    @property
    def dispersion(self):
        """theta per feature (a tensor)."""
        return torch.exp(self.log_dispersion)

    def _log_theta(self, f):
        if not hasattr(self, "log_dispersion"):
            raise RuntimeError("The negative binomial's dispersion is sized by setup(n_features).")
        return self.log_dispersion.to(f.dtype)

    def nll(self, f, x, link="log_proportion", offset=None):
        log_mu = self._log_mean(f, x, link, offset)
        log_theta = self._log_theta(f)
        theta = torch.exp(log_theta)
        log_sum = torch.logaddexp(log_theta, log_mu)  # log(theta + mu), safe
        return (
            torch.lgamma(theta) + torch.lgamma(x + 1) - torch.lgamma(x + theta)
            - theta * (log_theta - log_sum) - x * (log_mu - log_sum)
        )

    def derivatives(self, f, x, link="log_proportion", offset=None):
        log_mu = self._log_mean(f, x, link, offset)
        log_theta = self._log_theta(f)
        share = torch.sigmoid(log_theta - log_mu)  # theta / (theta + mu)
        mu = torch.exp(log_mu)
        slope, weight = share * (mu - x), share * mu
        if link == "rate":
            inverse = 1 / f.clamp_min(torch.finfo(f.dtype).tiny)
            return slope * inverse, weight * inverse**2
        return slope, weight


# The public names of ``loss=``: adding a likelihood is one line here.
LIKELIHOODS = {
    "mse": GaussianLikelihood,
    "bce": BernoulliLikelihood,
    "poisson": PoissonLikelihood,
    "negative_binomial": NegativeBinomialLikelihood,
}


def get_likelihood(loss):
    """The :class:`Likelihood` object of ``loss``: a registry name, or an object (returned as is).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if isinstance(loss, Likelihood):
        return loss
    cls = LIKELIHOODS.get(loss) if isinstance(loss, str) else None
    if cls is None:
        raise ValueError(f"Unknown loss {loss!r}; expected one of {tuple(LIKELIHOODS)}.")
    return cls()


def loss_name(loss):
    """The registry name of ``loss`` (a name or a :class:`Likelihood`)."""
    return get_likelihood(loss).name


# ---- the decoder's output activation (the Bernoulli's logits) ----------------------


def _without_activation(module, kind):
    """``module`` minus its trailing ``kind`` module, sharing the others; or None."""
    if isinstance(module, kind):
        return nn.Identity()
    if not isinstance(module, nn.Sequential):
        return None
    children = list(module)
    for i in range(len(children) - 1, -1, -1):
        if isinstance(children[i], _RESHAPES):
            continue
        inner = _without_activation(children[i], kind)
        if inner is None:
            return None
        return nn.Sequential(*children[:i], inner, *children[i + 1 :])
    return None


def _trailing_activation(module):
    """The trailing Sigmoid or Softmax module of ``module`` (through reshapes), or None."""
    if isinstance(module, (nn.Sigmoid, nn.Softmax)):
        return module
    if isinstance(module, nn.Sequential):
        for child in reversed(list(module)):
            if not isinstance(child, _RESHAPES):
                return _trailing_activation(child)
    return None


def split_output_activation(decoder, kind=nn.Sigmoid):
    """The decoder's logits: ``decoder`` without its final ``nn.Sigmoid`` (or ``kind``).

    The Sigmoid may be the last module of an ``nn.Sequential`` (at any
    nesting depth), followed only by reshaping modules (``Flatten``,
    ``Unflatten``, ``Identity``), as in the MLP decoders and the conv presets.

    Parameters
    ----------
    decoder : torch.nn.Module
    kind : type, default=nn.Sigmoid
        The output activation to remove (``nn.Softmax`` for the count
        likelihoods' proportions).

    Returns
    -------
    logits : torch.nn.Module or None
        A module sharing ``decoder``'s submodules (and so its parameters and
        train/eval modes) that stops before the activation; None when
        ``decoder`` has no such trailing activation. It is cached per decoder
        object: replacing a submodule of ``decoder`` afterwards is not seen.
    """
    views = _LOGIT_VIEWS.setdefault(decoder, {})
    if kind not in views:
        views[kind] = _without_activation(decoder, kind)
    return views[kind]


def wrap_keeping_logits(decoder, wrap):
    """``wrap(decoder)``, with the trailing Sigmoid (or Softmax) kept outside the wrapper.

    A wrapper (``torch.compile``, DistributedDataParallel) hides the
    decoder's layers, so :func:`split_output_activation` would no longer find
    its logits and BCE would fall back to the clamped probability form.
    Wrapping the logit view instead and applying the activation after it
    keeps the exact logit form.

    Parameters
    ----------
    decoder : torch.nn.Module
    wrap : callable
        ``module -> module``; may return its argument unchanged.

    Returns
    -------
    module : torch.nn.Module
        Computes what ``decoder`` computes, with the same parameters.
    """
    activation = _trailing_activation(decoder)
    logits = None if activation is None else split_output_activation(decoder, type(activation))
    if logits is None:
        return wrap(decoder)
    wrapped = wrap(logits)
    if wrapped is logits:  # nothing to see through
        return wrap(decoder)
    return nn.Sequential(wrapped, activation)
