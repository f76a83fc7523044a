"""Simulated data with a known representation.

:func:`make_regulatory_data`, after Schuster and Krogh (2021, sec. 3.3): the
activities of a few *regulators* (the true representation) drive many
*genes* (the features) through a sparse regulator-gene graph, so the data
have an exactly known low-dimensional representation and decoder structure
to recover.

:func:`make_count_data`: negative-binomial counts (single-cell RNA-seq like)
from latent groups, with varying library sizes.
"""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.utils import check_random_state

from ._compat import IntegerInterval, Interval, validate_params

__all__ = ["make_count_data", "make_regulatory_data"]

# Rows drawn together by make_count_data: the draws do not depend on
# n_samples, so a larger n_samples extends the same data set.
COUNT_CHUNK_ROWS = 1024


@validate_params(
    {
        "n_samples": [IntegerInterval(1, None, closed="left")],
        "n_features": [IntegerInterval(1, None, closed="left")],
        "n_components": [IntegerInterval(1, None, closed="left")],
        "connectivity": [Interval(Real, 0, 1, closed="right")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "shape": [Interval(Real, 0, None, closed="neither")],
        "return_weights": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_regulatory_data(
    n_samples=1000,
    n_features=1000,
    n_components=100,
    *,
    connectivity=0.1,
    noise=0.1,
    shape=2.0,
    return_weights=False,
    random_state=None,
):
    """Generate gene-expression-like data from sparse regulatory programs.

    Each sample has ``n_components`` regulator activities ``Z`` drawn
    i.i.d. from Gamma(``shape``, 1). Each (regulator, gene) pair is
    connected with probability ``connectivity`` (every gene gets at least
    one regulator), with a weight drawn from U(0, 1). The expression is::

        X = ReLU(Z @ W + noise * E),    E ~ N(0, 1) i.i.d.

    where ``W`` holds the weights on the connections and zeros elsewhere. As
    weights and activities are positive, the ReLU only clips noise. The
    graph fixes the latent axes, so a linear decoder restricted to it
    (``AutoDecoder(hidden_layer_sizes=(), connectivity=C)``) can recover
    each regulator up to scale and offset.

    The graph and weights are drawn first, from ``random_state`` alone: a
    larger ``n_samples`` with the same seed extends the same data set (the
    first rows are unchanged), which gives test samples of the same model.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_features : int, default=1000
        Number of genes.
    n_components : int, default=100
        Number of regulators (the true representation's size).
    connectivity : float, default=0.1
        Probability that a regulator acts on a gene (the graph's density).
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added before the ReLU.
    shape : float, default=2.0
        Shape parameter of the regulators' Gamma distribution (scale 1).
    return_weights : bool, default=False
        Also return the weight matrix ``W``.
    random_state : int, RandomState instance or None, default=None
        Seed of the graph, the weights, the activities and the noise.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Non-negative expression values.
    Z : ndarray of shape (n_samples, n_components)
        True regulator activities (the representation).
    connectivity : ndarray of bool, shape (n_components, n_features)
        The regulator-gene graph, usable as ``AutoDecoder(connectivity=...)``.
    W : ndarray of shape (n_components, n_features)
        The weights, zero off the graph. Only when ``return_weights`` is True.

    Examples
    --------
    >>> from sklearn_autodecoder.datasets import make_regulatory_data
    >>> X, Z, C = make_regulatory_data(50, n_features=200, n_components=10, random_state=0)
    >>> X.shape, Z.shape, C.shape
    ((50, 200), (50, 10), (10, 200))
    """
    rng = check_random_state(random_state)
    graph = rng.uniform(size=(n_components, n_features)) < connectivity
    # Every gene needs a regulator, or its column is pure noise.
    orphans = np.flatnonzero(~graph.any(axis=0))
    graph[rng.randint(n_components, size=len(orphans)), orphans] = True
    W = np.where(graph, rng.uniform(size=graph.shape), 0.0)
    Z = rng.gamma(shape, 1.0, size=(n_samples, n_components))
    X = np.maximum(Z @ W + noise * rng.standard_normal((n_samples, n_features)), 0.0)
    if return_weights:
        return X, Z, graph, W
    return X, Z, graph


@validate_params(
    {
        "n_samples": [IntegerInterval(1, None, closed="left")],
        "n_features": [IntegerInterval(2, None, closed="left")],
        "n_groups": [IntegerInterval(1, None, closed="left")],
        "n_components": [IntegerInterval(1, None, closed="left")],
        "group_separation": [Interval(Real, 0, None, closed="left")],
        "effect_size": [Interval(Real, 0, None, closed="left")],
        "library_size": [Interval(Real, 0, None, closed="neither")],
        "library_size_spread": [Interval(Real, 0, None, closed="left")],
        "dispersion": [Interval(Real, 0, None, closed="neither"), None],
        "sparse": ["boolean"],
        "return_params": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_count_data(
    n_samples=1000,
    n_features=2000,
    n_groups=5,
    *,
    n_components=10,
    group_separation=3.0,
    effect_size=0.5,
    library_size=2000.0,
    library_size_spread=0.5,
    dispersion=5.0,
    sparse=False,
    return_params=False,
    random_state=None,
):
    """Generate negative-binomial counts with latent groups and varying library sizes.

    A single-cell RNA-seq like model (the generative model of scVI and of
    the Deep Generative Decoder with a linear decoder). Each sample (cell)
    belongs to one of ``n_groups`` groups, drawn uniformly; its latent
    vector is ``z = c_group + e``, ``e ~ N(0, I)``, with group centres drawn
    from N(0, ``group_separation``^2 / (2 ``n_components``) I), so that two
    centres lie about ``group_separation`` within-group standard deviations
    apart. The features' (genes') proportions are a softmax::

        p = softmax(b + z @ W),    mu = L * p,
        x ~ NegativeBinomial(mean=mu, dispersion=theta)   (variance mu + mu^2 / theta)

    with baseline log-proportions ``b ~ N(0, 1)``, loadings
    ``W ~ N(0, effect_size^2 / n_components)`` (``z @ W`` has standard
    deviation about ``effect_size``), a library size (expected total count)
    ``L = library_size * exp(library_size_spread * N(0, 1))`` per sample, and
    a dispersion ``theta`` per feature, ``dispersion`` times a Gamma(4, 1/4)
    draw (mean ``dispersion``). The counts are drawn as a Gamma-Poisson
    mixture. Rows whose counts are all zero are drawn again.

    The model's parameters are drawn first, from ``random_state`` alone, and
    the samples in fixed chunks of rows: a larger ``n_samples`` with the
    same seed extends the same data set (the first rows are unchanged),
    which gives held-out samples of the same model.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples (cells).
    n_features : int, default=2000
        Number of features (genes).
    n_groups : int, default=5
        Number of groups (cell types); the labels ``y``.
    n_components : int, default=10
        Size of the true latent vectors.
    group_separation : float, default=3.0
        Typical distance between two group centres, in units of the
        within-group standard deviation.
    effect_size : float, default=0.5
        Standard deviation of the latent part ``z @ W`` of the
        log-proportions.
    library_size : float, default=2000.0
        Median expected total count of a sample.
    library_size_spread : float, default=0.5
        Standard deviation of the log library size.
    dispersion : float or None, default=5.0
        Mean of the per-feature NB dispersion ``theta`` (larger: closer to
        Poisson). None draws Poisson counts.
    sparse : bool, default=False
        Return X as a ``scipy.sparse.csr_matrix`` (built chunk by chunk,
        never dense whole), as single-cell tools store counts.
    return_params : bool, default=False
        Also return the model's parameters.
    random_state : int, RandomState instance or None, default=None
        Seed of the parameters and the draws.

    Returns
    -------
    X : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_features)
        The counts, as float32 (exact integers).
    y : ndarray of shape (n_samples,)
        The group of each sample (int64).
    params : dict
        Only when ``return_params`` is True: ``"latent"`` (n_samples,
        n_components), ``"library_size"`` (n_samples,), the expected totals
        ``L``, ``"centres"`` (n_groups, n_components), ``"baseline"``
        (n_features,), ``"weights"`` (n_components, n_features) and
        ``"dispersion"`` (n_features,), None for Poisson counts.

    Examples
    --------
    >>> from sklearn_autodecoder.datasets import make_count_data
    >>> X, y = make_count_data(100, n_features=50, n_groups=3, random_state=0)
    >>> X.shape, y.shape, bool((X.sum(axis=1) > 0).all())
    ((100, 50), (100,), True)
    """
    rng = check_random_state(random_state)
    centres = rng.normal(0, group_separation / np.sqrt(2 * n_components), (n_groups, n_components))
    baseline = rng.normal(0, 1, n_features)
    weights = rng.normal(0, effect_size / np.sqrt(n_components), (n_components, n_features))
    theta = None if dispersion is None else dispersion * rng.gamma(4.0, 0.25, n_features)
    parts, labels, latents, libraries = [], [], [], []
    n_drawn = 0
    while n_drawn < n_samples:
        y = rng.randint(n_groups, size=COUNT_CHUNK_ROWS)
        z = centres[y] + rng.standard_normal((COUNT_CHUNK_ROWS, n_components))
        L = library_size * np.exp(library_size_spread * rng.standard_normal(COUNT_CHUNK_ROWS))
        mu = L[:, None] * softmax(baseline + z @ weights, axis=1)
        rate = mu if theta is None else rng.gamma(theta, mu / theta)
        counts = rng.poisson(rate).astype(np.float32)
        keep = np.flatnonzero(counts.any(axis=1))[: n_samples - n_drawn]
        parts.append(sp.csr_matrix(counts[keep]) if sparse else counts[keep])
        labels.append(y[keep])
        latents.append(z[keep])
        libraries.append(L[keep])
        n_drawn += len(keep)
    X = sp.vstack(parts, format="csr") if sparse else np.concatenate(parts)
    y = np.concatenate(labels).astype(np.int64)
    if not return_params:
        return X, y
    params = {
        "latent": np.concatenate(latents),
        "library_size": np.concatenate(libraries),
        "centres": centres,
        "baseline": baseline,
        "weights": weights,
        "dispersion": theta,
    }
    return X, y, params
