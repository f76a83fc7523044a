"""Simulated gene-regulation data with a known sparse linear decoder.

After Schuster and Krogh (2021, sec. 3.3): the activities of a few
*regulators* (the true representation) drive many *genes* (the features)
through a sparse regulator-gene graph, so the data have an exactly known
low-dimensional representation and decoder structure to recover.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

from ._compat import Interval, validate_params

__all__ = ["make_regulatory_data"]


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left")],
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
