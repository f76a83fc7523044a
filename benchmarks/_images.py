"""28x28 image sets besides MNIST, made offline, for the benchmarks of the MNIST preset.

* ``digits28``: scikit-learn's 8x8 digits (1,797 images, 10 classes),
  upscaled to 28x28 (bilinear, a 24x24 digit in a 2-pixel border, as MNIST
  centres its digits in 20x20 of 28x28), pixels / 16;
* ``shapes``: synthetic anti-aliased outlines and filled shapes (circle,
  square, triangle, cross, ring; each filled or outlined: 10 classes) at a
  random position, size and stroke width, with a little noise;
* ``mnist-inverted``: MNIST (the shared mnist10k subset) with other
  preprocessing: inverted (1 - x) and shifted by up to 3 pixels.

Each loader returns ``(X_train, y_train, X_test, y_test)``, float32 in
[0, 1], flat (n, 784), deterministic.
"""

from pathlib import Path

import numpy as np
import torch

IMAGE_SETS = ("mnist", "digits28", "shapes", "mnist-inverted")
MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist10k"


def _split(X, y, n_test, seed=0):
    order = np.random.RandomState(seed).permutation(len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def digits28(n_test=400):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    up = torch.nn.functional.interpolate(images, size=(24, 24), mode="bilinear", align_corners=False)
    X = torch.nn.functional.pad(up, (2, 2, 2, 2)).clamp(0, 1).reshape(len(images), -1).numpy()
    return _split(X, digits.target, n_test)


def _shape_image(kind, filled, rng):
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32) + 0.5
    cx, cy = rng.uniform(9, 19, 2)
    r = rng.uniform(5, 9)
    width = rng.uniform(1.2, 2.5)
    angle = rng.uniform(0, np.pi / 2)
    dx, dy = xx - cx, yy - cy
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if kind == "circle":
        d = np.hypot(dx, dy) - r  # signed distance to the outline
    elif kind == "square":
        d = np.maximum(np.abs(u), np.abs(v)) - 0.8 * r
    elif kind == "triangle":
        d = np.full_like(u, -np.inf)
        for k in range(3):
            a = angle + 2 * np.pi * k / 3
            d = np.maximum(d, np.cos(a) * dx + np.sin(a) * dy - 0.5 * r)
    elif kind == "cross":
        arm = 0.3 * r
        d = np.minimum(np.maximum(np.abs(u) - r, np.abs(v) - arm), np.maximum(np.abs(v) - r, np.abs(u) - arm))
    else:  # ring: two outlines
        d = np.abs(np.hypot(dx, dy) - 0.75 * r) - 0.25 * r
    # Anti-aliased: one pixel of ramp at the edge.
    image = np.clip(0.5 - d, 0, 1) if filled else np.clip(0.5 + width / 2 - np.abs(d), 0, 1)
    return np.clip(image + 0.05 * rng.randn(28, 28) * image, 0, 1)


def shapes(n=3000, n_test=500, seed=0):
    rng = np.random.RandomState(seed)
    kinds = ["circle", "square", "triangle", "cross", "ring"]
    y = rng.randint(10, size=n)
    X = np.stack([_shape_image(kinds[c % 5], c >= 5, rng).ravel() for c in y]).astype(np.float32)
    return _split(X, y, n_test, seed)


def mnist(n_train=5000, n_test=1000, folder=MNIST):
    from sklearn_autodecoder.datasets import load_mnist

    X, y = load_mnist(Path(folder) / "mnist10k-images-idx3-ubyte.gz", Path(folder) / "mnist10k-labels-idx1-ubyte.gz")
    return X[:n_train], y[:n_train], X[-n_test:], y[-n_test:]


def mnist_inverted(n_train=5000, n_test=1000, folder=MNIST, seed=0):
    X_train, y_train, X_test, y_test = mnist(n_train, n_test, folder)
    rng = np.random.RandomState(seed)

    def transform(X):
        images = 1.0 - X.reshape(-1, 28, 28)
        shifts = rng.randint(-3, 4, size=(len(images), 2))
        out = np.stack([np.roll(image, tuple(s), axis=(0, 1)) for image, s in zip(images, shifts)])
        return out.reshape(len(X), -1).astype(np.float32)

    return transform(X_train), y_train, transform(X_test), y_test


def load_images(name, n_train=None, n_test=None):
    """``(X_train, y_train, X_test, y_test)`` of one of ``IMAGE_SETS``, optionally cut."""
    loaders = {"mnist": mnist, "digits28": digits28, "shapes": shapes, "mnist-inverted": mnist_inverted}
    X_train, y_train, X_test, y_test = loaders[name]()
    return X_train[:n_train], y_train[:n_train], X_test[:n_test], y_test[:n_test]
