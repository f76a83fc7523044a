"""The amortised encoder trained at the end of fit (init="encoder")."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import sklearn_autodecoder._amortized as amortized
from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder
from sklearn_autodecoder._data import RowData
from sklearn_autodecoder._amortized import encode, encoder_input, fit_encoder
from sklearn_autodecoder._inference import _chunks
from sklearn_autodecoder.presets import ConvDecoderSpec

FAST = dict(
    n_components=3, hidden_layer_sizes=(16,), max_iter=60, init="encoder", encoder_max_iter=150,
    inference_max_iter=30, device="cpu", random_state=0,
)


def encode_in_chunks(encoder, X, mask, batch_size, device):
    """:func:`encode` over ``X`` in chunks of ``batch_size`` rows."""
    return torch.cat([encode(encoder, x, m) for x, m in _chunks(X, mask, batch_size, device)])


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:150] / 16.0


@pytest.fixture(scope="module")
def model(X):
    return AutoDecoder(**FAST).fit(X)


def test_encoder_regresses_the_training_latents(model, X):
    curve = model.encoder_loss_curve_
    assert len(curve) == FAST["encoder_max_iter"] and curve[-1] < 0.7 * curve[0]
    Z = encode_in_chunks(model.encoder_, torch.as_tensor(X, dtype=torch.float32), None, 64, "cpu").numpy()
    error = np.mean((Z - model.embedding_) ** 2)
    assert error < 0.5 * np.mean((model.embedding_ - model.embedding_.mean(0)) ** 2)


def test_encoder_is_seeded_and_leaves_global_rng(X):
    before = torch.get_rng_state()
    a = AutoDecoder(**dict(FAST, max_iter=2, encoder_max_iter=2)).fit(X)
    assert torch.equal(torch.get_rng_state(), before)
    b = AutoDecoder(**dict(FAST, max_iter=2, encoder_max_iter=2)).fit(X)
    for pa, pb in zip(a.encoder_.parameters(), b.encoder_.parameters()):
        assert torch.equal(pa, pb)


def test_masked_copies_teach_partial_inputs():
    # Latent = mean of the features: a masked input needs a learnt rescaling.
    g = torch.Generator().manual_seed(0)
    X = torch.rand(400, 10, generator=g)
    Z = X.mean(dim=1, keepdim=True)
    mask = torch.rand(X.shape, generator=g) < 0.5

    def error(fraction):
        encoder = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        init = torch.Generator().manual_seed(0)  # the same start for both fractions
        with torch.no_grad():
            for p in encoder.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=init))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(amortized, "MAX_HIDDEN_FRACTION", fraction)
            fit_encoder(encoder, RowData(X.numpy(), torch.float32, "cpu"), Z, max_iter=40, batch_size=32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            return float((encoder(encoder_input(X, mask)) - Z).pow(2).mean())

    assert error(0.75) < 0.5 * error(0.0)


def test_pickle_round_trip_keeps_encoder(model, X):
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.transform(X[:10]), model.transform(X[:10]))


def test_float64_input_uses_a_float64_copy(model, X):
    Z64 = model.transform(X[:10].astype(np.float64))
    Z32 = model.transform(X[:10].astype(np.float32))
    assert Z64.dtype == np.float64 and Z32.dtype == np.float32
    # Both stop once the predicted gain is below tol of the loss: the latents
    # agree to that resolution, not to float32's.
    np.testing.assert_allclose(Z64, Z32, atol=1e-2)
    assert next(model.encoder_.parameters()).dtype == torch.float32


def test_conv_autodecoder_gets_the_mirrored_encoder():
    spec = ConvDecoderSpec(
        image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2),
        layers=((1, 4, 2, 1),), defaults=dict(loss="bce", max_iter=3, batch_size=16),
    )
    X = np.random.RandomState(0).rand(40, 16)
    cad = ConvAutoDecoder(spec, init="encoder", encoder_max_iter=2, device="cpu", random_state=0).fit(X)
    assert isinstance(cad.encoder_[1][0], torch.nn.Conv2d)
    assert cad.transform(X[:5]).shape == (5, 3)
