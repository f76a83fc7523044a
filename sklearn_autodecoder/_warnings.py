"""Warnings that point at the user's line, whatever wrappers lie between.

A fixed ``stacklevel`` is right for one call path only: ``fit`` reached
through scikit-learn's ``_fit_context``, ``fit_transform``, a ``Pipeline``
or a search adds frames of its own. :func:`warn` counts the frames of this
package and of the libraries it runs under (scikit-learn, skorch, torch,
joblib, threadpoolctl, contextlib) and attributes the warning to the first
frame outside them: the user's line.
"""

import contextlib
import os
import sys
import warnings

import joblib
import skorch
import sklearn
import threadpoolctl
import torch


def _prefix(module):
    path = os.path.dirname(os.path.abspath(module.__file__))
    return path + os.sep


_INTERNAL_DIRS = tuple(
    _prefix(module) for module in (sys.modules[__package__], sklearn, skorch, torch, joblib)
)
_INTERNAL_FILES = tuple(os.path.abspath(m.__file__) for m in (contextlib, threadpoolctl))


def _internal(filename):
    filename = os.path.abspath(filename)
    return filename.startswith(_INTERNAL_DIRS) or filename in _INTERNAL_FILES


def warn(message, category):
    """``warnings.warn`` attributed to the first frame outside the package and its libraries."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and _internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
