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
``fits_noise_variance``
    Whether the estimator fits a noise variance after training (the
    Gaussian's ``noise_variance_``), used by :meth:`units_per_nat` and
    :meth:`log_normaliser`.
``pca_is_optimum``
    Whether PCA is the optimum of a dense linear decoder under this loss
    (then the PCA start sets a linear decoder to PCA itself).

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
``elementwise(x_hat, x)``
    Element-wise loss from the reconstruction itself.
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

Adding a likelihood: one subclass here and one line in :data:`LIKELIHOODS`.
"""

import inspect
import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from ._data import check_rows

# F.binary_cross_entropy clamps its logs at -100; the pairwise form does too,
# so that both rank candidates alike.
_LOG_FLOOR = -100.0

# Modules that only reshape: a Sigmoid followed by these is still the
# decoder's output activation (sigmoid commutes with a reshape).
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)

# decoder -> its logit view (or None): built once per decoder object, since
# building an nn.Sequential costs about as much as a small decoder's forward.
_LOGIT_VIEWS = weakref.WeakKeyDictionary()


class Likelihood(nn.Module):
    """Base class of the likelihoods (the noise model of ``loss=``); see the module doc.

    Subclasses set the class attributes and define the element-wise
    methods; trainable parameters are ``nn.Parameter`` attributes.
    Constructor arguments are stored under their own names (as scikit-learn
    estimators do) so that :meth:`get_params` can rebuild the object.
    """

    name = None
    output_activation = "identity"
    fits_noise_variance = False
    pca_is_optimum = False

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
        return decoder, "identity"

    def nll(self, f, x, link, offset=None):
        raise NotImplementedError

    def derivatives(self, f, x, link, offset=None):
        raise NotImplementedError

    def mean(self, f, link, offset=None):
        return f

    def elementwise(self, x_hat, x):
        return self.nll(x_hat, x, "identity")

    def pairwise(self, x, mask, references):
        raise NotImplementedError

    def units_per_nat(self, noise_variance=None):
        return 1.0

    def batch_units_per_nat(self, data, n_observed):
        return self.units_per_nat()

    def log_normaliser(self, x, mask, noise_variance=None):
        return 0.0

    def check_rows(self, X, scale=None):
        return check_rows(X, scale=scale)


class GaussianLikelihood(Likelihood):
    """Gaussian noise: the squared error ``(f - x)^2`` (``loss="mse"``).

    It is ``2 sigma^2`` times the Gaussian's negative log-likelihood (less
    its normaliser), sigma^2 the noise variance: fitted after training
    (``noise_variance_``), or a training batch's mean squared residual.
    """

    name = "mse"
    fits_noise_variance = True
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


class BernoulliLikelihood(Likelihood):
    """Bernoulli entries: binary cross-entropy (``loss="bce"``), X in [0, 1].

    Computed from the decoder's logits wherever the decoder ends with a
    ``Sigmoid`` (:func:`split_output_activation`): on probabilities a
    saturated output has an exactly zero gradient, and the logs clamp at
    -100. On a decoder without a trailing Sigmoid, the clamped probability
    form.
    """

    name = "bce"
    output_activation = "logistic"

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

    def elementwise(self, x_hat, x):
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


# The public names of ``loss=``: adding a likelihood is one line here.
LIKELIHOODS = {
    "mse": GaussianLikelihood,
    "bce": BernoulliLikelihood,
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


def _without_sigmoid(module):
    """``module`` minus its trailing Sigmoid, sharing the other modules; or None."""
    if isinstance(module, nn.Sigmoid):
        return nn.Identity()
    if not isinstance(module, nn.Sequential):
        return None
    children = list(module)
    for i in range(len(children) - 1, -1, -1):
        if isinstance(children[i], _RESHAPES):
            continue
        inner = _without_sigmoid(children[i])
        if inner is None:
            return None
        return nn.Sequential(*children[:i], inner, *children[i + 1 :])
    return None


def split_output_activation(decoder):
    """The decoder's logits: ``decoder`` without its final ``nn.Sigmoid``.

    The Sigmoid may be the last module of an ``nn.Sequential`` (at any
    nesting depth), followed only by reshaping modules (``Flatten``,
    ``Unflatten``, ``Identity``), as in the MLP decoders and the conv presets.

    Parameters
    ----------
    decoder : torch.nn.Module

    Returns
    -------
    logits : torch.nn.Module or None
        A module sharing ``decoder``'s submodules (and so its parameters and
        train/eval modes) that stops before the Sigmoid; None when
        ``decoder`` has no such trailing Sigmoid. It is cached per decoder
        object: replacing a submodule of ``decoder`` afterwards is not seen.
    """
    try:
        return _LOGIT_VIEWS[decoder]
    except KeyError:
        view = _without_sigmoid(decoder)
        _LOGIT_VIEWS[decoder] = view
        return view


def wrap_keeping_logits(decoder, wrap):
    """``wrap(decoder)``, with the trailing Sigmoid kept outside the wrapper.

    A wrapper (``torch.compile``, DistributedDataParallel) hides the
    decoder's layers, so :func:`split_output_activation` would no longer find
    its logits and BCE would fall back to the clamped probability form.
    Wrapping the logit view instead and applying the Sigmoid after it keeps
    the exact logit form.

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
    logits = split_output_activation(decoder)
    if logits is None:
        return wrap(decoder)
    wrapped = wrap(logits)
    if wrapped is logits:  # nothing to see through
        return wrap(decoder)
    return nn.Sequential(wrapped, nn.Sigmoid())
