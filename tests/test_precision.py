"""Mixed precision: bfloat16 autocast on the CPU, float16 refused there."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder
from sklearn_autodecoder.datasets import load_mnist
from _checks import TINY_BN_SPEC

MNIST10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist10k"
CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def mnist():
    path = MNIST10K / "mnist10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip("the shared MNIST subset is not beside the repository")
    X, _ = load_mnist(path)
    return X[:2000], X[8000:8500]


def test_bfloat16_fits_and_infers_as_well_as_float32(mnist):
    X_train, X_test = mnist
    params = dict(n_components=16, hidden_layer_sizes=(128,), loss="bce", max_iter=15, **CPU)
    mse = {}
    for precision in ("float32", "bfloat16"):
        model = AutoDecoder(precision=precision, **params).fit(X_train)
        Z = model.transform(X_test)
        assert Z.dtype == np.float32 and model.embedding_.dtype == np.float32
        mse[precision] = np.mean((model.inverse_transform(Z) - X_test) ** 2)
    assert mse["bfloat16"] <= 1.10 * mse["float32"], mse
    # The decoder's weights stay float32: only the forward passes are autocast.
    assert next(model.decoder_.parameters()).dtype == torch.float32


@pytest.mark.parametrize("cls, args", [(AutoEncoder, ()), (ConvAutoDecoder, (TINY_BN_SPEC,))])
def test_bfloat16_runs_for_every_family(cls, args):
    X = np.random.RandomState(0).rand(64, 4).astype(np.float32)
    model = cls(*args, max_iter=3, precision="bfloat16", **CPU).fit(X)
    assert np.isfinite(model.score(X))
    assert model.inverse_transform(model.transform(X)).dtype == np.float32


def test_float16_needs_cuda():
    X = np.random.RandomState(0).rand(20, 4)
    with pytest.raises(ValueError, match="precision='float16' needs a CUDA device"):
        AutoDecoder(precision="float16", max_iter=1, **CPU).fit(X)


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(module):
        def run(*args):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    X = np.random.RandomState(0).rand(64, 4).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*running the network eagerly"):
        compiled = AutoDecoder(n_components=2, max_iter=3, compile=True, **CPU).fit(X)
    plain = AutoDecoder(n_components=2, max_iter=3, **CPU).fit(X)
    np.testing.assert_allclose(compiled.embedding_, plain.embedding_, rtol=1e-6)
    assert type(compiled.decoder_) is type(plain.decoder_)  # the fitted decoder stays plain


def test_compiled_bce_training_keeps_the_logit_loss(monkeypatch):
    # With the compiler a pass-through, a compiled fit must compute exactly
    # what the plain one does: BCE from the logits, not from the clamped
    # probabilities of a decoder whose Sigmoid the wrapper hides.
    monkeypatch.setattr(torch, "compile", lambda module: module.forward)
    X = np.random.RandomState(0).rand(64, 4).astype(np.float32)
    compiled = AutoDecoder(n_components=2, loss="bce", max_iter=3, compile=True, **CPU).fit(X)
    plain = AutoDecoder(n_components=2, loss="bce", max_iter=3, **CPU).fit(X)
    np.testing.assert_array_equal(compiled.embedding_, plain.embedding_)


def test_conv_decoders_go_channels_last_on_cuda_only():
    from sklearn_autodecoder._devices import prefer_channels_last
    from sklearn_autodecoder.presets import make_decoder

    decoder = make_decoder("mnist")
    conv = next(m for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    prefer_channels_last(decoder, torch.device("cpu"))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    prefer_channels_last(decoder, torch.device("cuda"))  # only the decision needs CUDA
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_inference_runs_in_float32_whatever_the_precision(mnist):
    # Latent inference compares losses at float32 resolution: under bfloat16
    # autocast about half the rows wandered on rounding noise to inference_max_iter
    # (a ConvergenceWarning) at 3x the iterations. transform and score ignore the
    # precision; the fit's training passes keep it.
    X_train, X_test = mnist
    model = AutoDecoder(n_components=16, hidden_layer_sizes=(128,), loss="bce", max_iter=3, **CPU).fit(X_train)
    Z = model.transform(X_test)
    score = model.score(X_test)
    model.set_params(precision="bfloat16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(model.transform(X_test), Z)
        assert model.score(X_test) == score
