"""Shared setup of the examples: the mnist10k digits and a quickly fitted model."""

import os
from pathlib import Path

from sklearn_autodecoder import ConvAutoDecoder
from sklearn_autodecoder.datasets import load_mnist

DATA = Path(os.environ.get("MNIST10K", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist10k"))


def load_digits_split(n_train=2000, n_test=500):
    """Train digits (the first ones) and test digits (the last ones), with labels."""
    X, y = load_mnist(DATA / "mnist10k-images-idx3-ubyte.gz", DATA / "mnist10k-labels-idx1-ubyte.gz")
    return X[:n_train], y[:n_train], X[-n_test:], y[-n_test:]


def fit_model(X_train, epochs=6, **params):
    """The MNIST preset decoder with an amortised encoder for fast inference."""
    params = {"init": "encoder", "encoder_max_iter": 10, "inference_max_iter": 50, **params}
    return ConvAutoDecoder("mnist", max_iter=epochs, device="cpu", random_state=0, **params).fit(X_train)
