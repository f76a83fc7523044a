"""torch tensors as input and output of the estimators.

A torch tensor is taken as it is: a CPU tensor is viewed as an ndarray
without a copy (a float32 tensor stays float32: no float64 round trip), a
tensor on another device is copied to the host once. Results are ndarrays,
except under ``sklearn.config_context(array_api_dispatch=True)``, where a
tensor input gets a tensor back on its own device, as scikit-learn's
array-API estimators (e.g. ``PCA``) return them.
"""

import functools

import torch
from sklearn import get_config


def host_array(X):
    """``X`` as an ndarray if it is a torch tensor (a view for a CPU tensor), else ``X``."""
    if not isinstance(X, torch.Tensor):
        return X
    X = X.detach()
    if X.dtype == torch.bfloat16:  # numpy has no bfloat16
        X = X.float()
    return X.resolve_conj().resolve_neg().cpu().numpy()


def like_input(result, X):
    """``result`` (an ndarray) as a tensor on X's device when X is a tensor under array API dispatch."""
    if isinstance(X, torch.Tensor) and get_config().get("array_api_dispatch", False):
        return torch.from_numpy(result).to(X.device)
    return result


def tensors_in(method):
    """Decorate ``method(self, X, ...)`` to take a torch tensor ``X`` as an ndarray."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        return method(self, host_array(X), *args, **kwargs)

    return wrapper


def tensors_in_out(method):
    """Like :func:`tensors_in`, and a tensor ``X`` gets its result as :func:`like_input` says."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        return like_input(method(self, host_array(X), *args, **kwargs), X)

    return wrapper
