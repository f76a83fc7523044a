"""Choosing n_components without labels: a scorer from the held-out likelihood.

The likelihood itself is the estimators' ``score_samples`` (Laplace's
approximation, :mod:`._laplace`).
"""

import numpy as np


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
