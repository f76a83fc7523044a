"""Decoder/encoder load: the formulas on known sizes and the fit-time warning."""

import warnings

import numpy as np
import pytest
from torch import nn

from sklearn_autodecoder import (
    AutoDecoder,
    ConvAutoDecoder,
    LowLoadWarning,
    decoder_load,
    encoder_load,
    n_free_parameters,
)
from sklearn_autodecoder.nn import MaskedLinear
from sklearn_autodecoder.presets import make_decoder, make_encoder


@pytest.mark.parametrize(
    "N, n, m, W, expected",
    [
        (10, 5, 2, 30, 1.0),  # 50 values, 30 + 20 parameters
        (100, 784, 20, 263_873, 78_400 / 265_873),
        (500, 784, 20, 263_873, 392_000 / 273_873),
        (1_000, 1_000, 100, 11_000, 1_000_000 / 111_000),
    ],
)
def test_decoder_load_formula(N, n, m, W, expected):
    assert decoder_load(N, n, m, W) == pytest.approx(expected)


def test_decoder_load_tends_to_n_over_m():
    # With ever more samples the weights stop mattering: load -> n / m.
    assert decoder_load(10**9, 784, 20, 263_873) == pytest.approx(784 / 20, rel=1e-4)


def test_encoder_load_formula():
    assert encoder_load(1_000, 100, 100_100) == pytest.approx(100_000 / 100_100)
    assert encoder_load(500, 20, make_encoder("mnist")) == pytest.approx(
        500 * 20 / n_free_parameters(make_encoder("mnist"))
    )


def test_loads_accept_a_module_and_count_masked_weights_out():
    assert decoder_load(500, 784, 20, make_decoder("mnist")) == pytest.approx(392_000 / 273_873)
    mask = np.zeros((4, 6), dtype=bool)
    mask[0, :3] = mask[1, 3:] = True
    layer = MaskedLinear(mask)
    assert n_free_parameters(layer) == 6 + 6  # six connections, six biases
    assert n_free_parameters(nn.Linear(4, 6)) == 30


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_loads_reject_bad_sizes(bad):
    with pytest.raises(ValueError):
        decoder_load(bad, 10, 2, 5)
    with pytest.raises(ValueError):
        encoder_load(10, 2, bad)


def test_fit_stores_the_load_and_warns_below_one():
    X = np.random.RandomState(0).rand(40, 6)
    # Linear decoder: W = 2*6 + 6 = 18; load = 240 / (18 + 80). early_stopping=False
    # (the old default): the load counts all 40 training rows.
    ad = AutoDecoder(n_components=2, hidden_layer_sizes=(), max_iter=1, random_state=0, device="cpu",
                     early_stopping=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowLoadWarning)
        ad.fit(X)
    assert ad.decoder_load_ == pytest.approx(240 / 98)
    with pytest.warns(LowLoadWarning, match=r"0\.\d+ < 1"):
        AutoDecoder(n_components=2, hidden_layer_sizes=(32,), max_iter=1, random_state=0).fit(X)


def test_load_counts_observed_entries_only():
    X = np.random.RandomState(0).rand(40, 6)
    X[:, :3] = np.nan  # half the entries missing: half the data values
    ad = AutoDecoder(n_components=2, hidden_layer_sizes=(), max_iter=1, random_state=0, device="cpu",
                     early_stopping=False)
    ad.fit(X)
    assert ad.decoder_load_ == pytest.approx(120 / 98)


def test_load_of_a_preset_fit():
    X = np.random.RandomState(0).rand(8, 784)
    with pytest.warns(LowLoadWarning):
        cad = ConvAutoDecoder("mnist", max_iter=1, random_state=0, device="cpu").fit(X)
    assert cad.decoder_load_ == pytest.approx(8 * 784 / (263_873 + 8 * 20))
