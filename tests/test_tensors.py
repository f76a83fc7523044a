"""torch tensors in and out: no float64 round trip, tensors back under array API dispatch."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_autodecoder import AutoDecoder, AutoEncoder

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def X32():
    return (load_digits().data[:120] / 16).astype(np.float32)


@pytest.fixture(scope="module", params=[AutoDecoder, AutoEncoder])
def fitted(request, X32):
    return request.param(n_components=3, max_iter=3, **CPU).fit(X32)


def test_float32_tensor_in_float32_ndarray_out(fitted, X32):
    X_t = torch.from_numpy(X32)
    Z = fitted.transform(X_t)
    assert isinstance(Z, np.ndarray) and Z.dtype == np.float32
    np.testing.assert_array_equal(Z, fitted.transform(X32))
    X_hat = fitted.inverse_transform(torch.from_numpy(Z))
    assert isinstance(X_hat, np.ndarray) and X_hat.dtype == np.float32
    assert fitted.score(X_t) == fitted.score(X32)


def test_fit_on_a_tensor_equals_fit_on_its_array(X32):
    from_tensor = AutoDecoder(n_components=3, max_iter=3, **CPU).fit(torch.from_numpy(X32).requires_grad_())
    from_array = AutoDecoder(n_components=3, max_iter=3, **CPU).fit(X32)
    np.testing.assert_array_equal(from_tensor.embedding_, from_array.embedding_)
    assert from_tensor.embedding_.dtype == np.float32


DISPATCH_SCRIPT = """
import numpy as np, sklearn, torch, warnings
from sklearn.datasets import load_digits
from sklearn_autodecoder import {cls}
warnings.simplefilter("ignore")
X32 = (load_digits().data[:120] / 16).astype(np.float32)
X_t = torch.from_numpy(X32)
fitted = {cls}(n_components=3, max_iter=3, device="cpu", random_state=0).fit(X32)
with sklearn.config_context(array_api_dispatch=True):
    Z = fitted.transform(X_t)
    X_hat = fitted.inverse_transform(Z)
    Z_fit = {cls}(n_components=3, max_iter=3, device="cpu", random_state=0).fit_transform(X_t)
    Z_array = fitted.transform(X32)  # ndarrays stay ndarrays
assert isinstance(Z, torch.Tensor) and Z.dtype == torch.float32 and Z.device == X_t.device, Z
assert isinstance(X_hat, torch.Tensor) and X_hat.shape == X_t.shape
assert isinstance(Z_fit, torch.Tensor)
assert isinstance(Z_array, np.ndarray)
np.testing.assert_array_equal(Z.numpy(), fitted.transform(X32))
print("ok")
"""


@pytest.mark.parametrize("cls", ["AutoDecoder", "AutoEncoder"])
def test_tensors_out_on_the_input_device_under_array_api_dispatch(cls):
    # scipy reads SCIPY_ARRAY_API at import, which array API dispatch needs:
    # a fresh interpreter.
    pytest.importorskip("array_api_compat")
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SCIPY_ARRAY_API": "1", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", DISPATCH_SCRIPT.format(cls=cls)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
