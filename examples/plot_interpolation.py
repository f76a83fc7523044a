"""Interpolating between two digits in an auto-decoder's latent space.

Each end digit is projected onto the decoder's manifold (``transform``); the
straight line (``method="linear"``) or the great circle
(``method="spherical"``) between the two latent vectors is decoded point by
point with :func:`sklearn_autodecoder.interpolate`.

Run ``python examples/plot_interpolation.py`` (under a minute on 2 CPU
cores); it saves ``examples/interpolation.png``.
"""

import numpy as np
from _mnist import fit_model, load_digits_split

from sklearn_autodecoder import interpolate

X_train, _, X_test, y_test = load_digits_split()
model = fit_model(X_train)

# Pairs of different digits: 1 -> 7, 3 -> 8, 4 -> 9.
first = lambda d: np.flatnonzero(y_test == d)[0]  # noqa: E731
pairs = [(1, 7), (3, 8), (4, 9)]
X_start = X_test[[first(a) for a, _ in pairs]]
X_end = X_test[[first(b) for _, b in pairs]]

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

n_steps = 9
fig, axes = plt.subplots(2 * len(pairs), n_steps + 2, figsize=(n_steps + 2, 2 * len(pairs)))
for m, method in enumerate(("linear", "spherical")):
    Z_path, X_path = interpolate(model, X_start, X_end, n_steps, method=method)
    for p in range(len(pairs)):
        row = axes[2 * p + m]
        images = [X_start[p], *X_path[p], X_end[p]]
        for c, image in enumerate(images):
            row[c].imshow(image.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            row[c].set_xticks([]), row[c].set_yticks([])
        row[0].set_ylabel(f"{pairs[p][0]}->{pairs[p][1]}\n{method}", fontsize=7, rotation=0, ha="right")
    norms = np.linalg.norm(Z_path, axis=2)
    print(f"{method:>9}: latent norm along the paths, min/max {norms.min():.2f}/{norms.max():.2f}")
axes[0, 0].set_title("input", fontsize=7)
axes[0, -1].set_title("input", fontsize=7)
fig.suptitle("Decoded latent paths (end columns: the original digits)")
fig.savefig(__file__.replace(".py", ".png").replace("plot_", ""), dpi=100, bbox_inches="tight")
