"""Agreement between a true and a learned representation."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_array

from ._compat import StrOptions, validate_params

__all__ = ["representation_correlation"]


def _standardise(Z):
    Z = Z - Z.mean(axis=0)
    norm = np.linalg.norm(Z, axis=0)
    # A constant column correlates with nothing: give it 0, not NaN.
    return np.divide(Z, norm, out=np.zeros_like(Z), where=norm > 0)


@validate_params(
    {
        "Z_true": ["array-like"],
        "Z_learned": ["array-like"],
        "match": [StrOptions({"hungarian", "regression", "identity"})],
    },
    prefer_skip_nested_validation=True,
)
def representation_correlation(Z_true, Z_learned, *, match="hungarian"):
    """Per-component Pearson correlation between true and learned latents.

    A learned representation is at best the true one up to a permutation,
    sign and scale of its axes (or, without a structure that fixes the axes,
    any invertible linear map). ``match`` says how learned components are
    paired with the true ones before correlating.

    Parameters
    ----------
    Z_true : array-like of shape (n_samples, n_true)
        The true representation.
    Z_learned : array-like of shape (n_samples, n_learned)
        The learned representation of the same samples.
    match : {"hungarian", "regression", "identity"}, default="hungarian"
        - "hungarian": one learned component per true one, chosen by the
          Hungarian algorithm to maximise the total absolute correlation;
          true components left without a partner (``n_learned < n_true``)
          get 0.
        - "regression": each true component is regressed (least squares,
          with intercept) on all learned ones, and the correlation is that
          of the fit, i.e. the square root of its R^2. Invariant to any
          invertible linear map of the learned space; it overestimates
          with few samples per learned component.
        - "identity": component k with component k (the axes are already
          aligned, e.g. by a decoder ``connectivity`` mask).

    Returns
    -------
    correlation : ndarray of shape (n_true,)
        Absolute Pearson correlation of each true component with its match,
        in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder import representation_correlation
    >>> Z = np.random.RandomState(0).rand(100, 3)
    >>> representation_correlation(Z, -2 * Z[:, [2, 0, 1]] + 1).round(6)
    array([1., 1., 1.])
    """
    Z_true = _standardise(check_array(Z_true, dtype=np.float64, input_name="Z_true"))
    Z_learned = _standardise(check_array(Z_learned, dtype=np.float64, input_name="Z_learned"))
    if len(Z_true) != len(Z_learned):
        raise ValueError(
            f"Z_true and Z_learned must hold the same samples, got {len(Z_true)} and "
            f"{len(Z_learned)} rows."
        )
    if match == "regression":
        # Standardised columns: the fitted values' correlation is their norm.
        coef, *_ = np.linalg.lstsq(Z_learned, Z_true, rcond=None)
        return np.clip(np.linalg.norm(Z_learned @ coef, axis=0), 0.0, 1.0)
    corr = np.abs(Z_true.T @ Z_learned)
    if match == "identity":
        if Z_true.shape[1] != Z_learned.shape[1]:
            raise ValueError(
                f"match='identity' needs as many learned as true components, got "
                f"{Z_learned.shape[1]} and {Z_true.shape[1]}."
            )
        return np.clip(np.diag(corr).copy(), 0.0, 1.0)
    rows, cols = linear_sum_assignment(corr, maximize=True)
    result = np.zeros(Z_true.shape[1])
    result[rows] = corr[rows, cols]
    return np.clip(result, 0.0, 1.0)
