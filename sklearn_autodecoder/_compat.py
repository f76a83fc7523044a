"""Private scikit-learn APIs, imported in one place.

scikit-learn does not promise stability for these names; pinning
``scikit-learn>=1.6,<2`` and importing them only here keeps a future break
to a single file.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions, HasMethods, validate_params
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "HasMethods",
    "Interval",
    "StrOptions",
    "_fit_context",
    "check_is_fitted",
    "validate_data",
    "validate_params",
]
