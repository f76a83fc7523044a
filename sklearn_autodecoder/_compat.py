"""Private scikit-learn APIs, imported in one place.

scikit-learn does not promise stability for these names; pinning
``scikit-learn>=1.6,<2`` and importing them only here keeps a future break
to a single file.
"""

from numbers import Integral

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions, HasMethods, validate_params
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "HasMethods",
    "IntegerInterval",
    "Interval",
    "StrOptions",
    "_fit_context",
    "check_is_fitted",
    "validate_data",
    "validate_params",
]


class IntegerInterval(Interval):
    """An ``Interval(Integral, ...)`` that refuses booleans.

    ``True`` is an ``Integral`` to Python, so scikit-learn's ``Interval``
    takes ``n_components=True`` as 1; a bool for a count is a mistake.
    """

    def __init__(self, left, right, *, closed):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)
