"""
======================================
Paths between digits in latent space
======================================

:func:`~sklearn_autodecoder.interpolate` projects two samples onto a fitted
auto-decoder's manifold (``transform``), draws a path between their latent
vectors and decodes every point of it. The path is either the straight
segment (``method="linear"``) or the great circle with the norm changing
linearly (``method="spherical"``).

Three things to check as a reader:

1. The end frames of a path are the *projections* of the end digits, not the
   digits themselves: a path can only be as faithful as those projections.
2. The two methods coincide when the end latents point in similar
   directions, and differ when the angle between them is large: the straight
   segment then cuts towards the origin, into latents shorter than any the
   model was trained on.
3. What a decoded midpoint looks like depends on where it lies relative to
   the training latents.
"""

# %%
# Data and model
# --------------
# scikit-learn's 8x8 digits (set ``MNIST10K`` to a folder of 10,000 MNIST
# digits in IDX files, see :ref:`where MNIST comes from <mnist-data>`, to use
# 28x28 MNIST digits instead).
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder, interpolate
from sklearn_autodecoder.datasets import load_mnist


def load_images():
    """Images in [0, 1], labels and the image shape: 8x8 digits, or MNIST."""
    folder = os.environ.get("MNIST10K")
    if not folder:
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y, (8, 8)
    files = [
        os.path.join(folder, f"mnist10k-{kind}-idx{d}-ubyte.gz")
        for kind, d in (("images", 3), ("labels", 1))
    ]
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"MNIST10K={folder!r} has no {os.path.basename(path)}; "
                "unset MNIST10K to run on scikit-learn's digits."
            )
    X, y = load_mnist(*files)
    return X[:4000], y[:4000], (28, 28)


X, y, shape = load_images()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=300, random_state=0)
# An MLP decoder for the 8x8 digits; the published convolutional decoder
# (``preset="mnist"``) for MNIST.
common = dict(init="nearest", device="cpu", random_state=0)
if shape == (8, 8):
    model = AutoDecoder(n_components=8, hidden_layer_sizes=(64, 128), loss="bce", **common)
else:
    model = ConvAutoDecoder("mnist", max_iter=15, **common)
model.fit(X_train)
# A classifier trained on complete digits reads the decoded frames.
classifier = LogisticRegression(max_iter=2000).fit(X_train, y_train)

# %%
# Choosing the end digits
# -----------------------
# A projection can change a digit: a badly reconstructed 4 may decode as a 9,
# and its path then starts at a 9. So each end digit is taken among the test
# digits whose projection the classifier still reads as the right digit.
# Among those, for each pair of classes, one pair whose latents are at an
# angle close to the median of all such pairs (a typical pair) and the pair
# at the largest angle.
Z_test = model.transform(X_test)
X_projected = model.inverse_transform(Z_test)
faithful = classifier.predict(X_projected) == y_test
print(f"projections read as the right digit: {faithful.mean():.1%} of the test digits")


def angle(Z_a, Z_b):
    """Angles in degrees between the rows of Z_a and those of Z_b."""
    U_a = Z_a / np.linalg.norm(Z_a, axis=1, keepdims=True)
    U_b = Z_b / np.linalg.norm(Z_b, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip(U_a @ U_b.T, -1, 1)))


pairs, labels = [], []
for a, b in [(1, 7), (4, 9)]:
    ia = np.flatnonzero(faithful & (y_test == a))
    ib = np.flatnonzero(faithful & (y_test == b))
    angles = angle(Z_test[ia], Z_test[ib])
    typical = np.unravel_index(
        np.abs(angles - np.median(angles)).argmin(), angles.shape
    )
    widest = np.unravel_index(angles.argmax(), angles.shape)
    for kind, (i, j) in (("typical", typical), ("widest", widest)):
        pairs.append((ia[i], ib[j]))
        labels.append(f"{a} -> {b}, {kind}\n{angles[i, j]:.0f} degrees")
start, end = np.array(pairs).T

# %%
# Decoding the paths
# ------------------
# The path's first and last frames equal ``inverse_transform(transform(X))``
# of the end digits (inference is deterministic).
n_steps = 9
paths = {
    method: interpolate(model, X_test[start], X_test[end], n_steps, method=method)
    for method in ("linear", "spherical")
}
for method, (Z_path, X_path) in paths.items():
    gap = max(
        np.abs(X_path[:, 0] - X_projected[start]).max(),
        np.abs(X_path[:, -1] - X_projected[end]).max(),
    )
    print(
        f"{method:>9}: end frames vs projections of the end digits, max gap {gap:.1e}"
    )

import matplotlib.pyplot as plt

fig, axes = plt.subplots(
    2 * len(pairs),
    n_steps + 2,
    figsize=(8.5, 1.0 * 2 * len(pairs)),
    gridspec_kw=dict(hspace=0.45, wspace=0.08),
)
for p, (label, s, e) in enumerate(zip(labels, start, end)):
    for m, (method, (_, X_path)) in enumerate(paths.items()):
        row = axes[2 * p + m]
        frames = [X_test[s], *X_path[p], X_test[e]]
        read = classifier.predict(X_path[p])
        for c, (ax, image) in enumerate(zip(row, frames)):
            ax.imshow(image.reshape(shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if 0 < c <= n_steps:
                ax.set_title(str(read[c - 1]), fontsize=7, pad=1)
            else:
                for spine in ax.spines.values():
                    spine.set_color("tab:orange")
                    spine.set_linewidth(2)
        row[0].set_ylabel(
            f"{label}\n{method}" if m == 0 else method,
            rotation=0,
            ha="right",
            va="center",
            fontsize=7,
        )
fig.suptitle(
    "Orange frames: the end digits; between them, the decoded path\n"
    "(from the first digit's projection to the second's; numbers: the digit read)",
    fontsize=9,
)

# %%
# Where the paths run
# -------------------
# The norm of the latent along each path, against the range of the training
# latents' norms (5th to 95th percentile, grey band). The spherical path keeps
# within the range of its end points; the straight one dips towards the
# origin, the deeper the wider the angle, and for the widest pairs it leaves
# the band: its midpoint is a latent the decoder never saw in training.
norms = np.linalg.norm(model.embedding_, axis=1)
low, high = np.percentile(norms, [5, 95])
t = np.linspace(0, 1, n_steps)
fig, axes = plt.subplots(1, len(pairs), figsize=(10, 2.6), sharey=True)
for p, ax in enumerate(axes):
    ax.axhspan(low, high, color="0.85", label="training latents, 5-95%")
    for method, style in (("linear", "-o"), ("spherical", "-s")):
        ax.plot(
            t, np.linalg.norm(paths[method][0][p], axis=1), style, ms=3, label=method
        )
    ax.set_title(labels[p].replace("\n", ", "), fontsize=8)
    ax.set_xlabel("position on the path")
axes[0].set_ylabel("latent norm")
axes[0].legend(fontsize=7)
fig.tight_layout()

# %%
# How much the two methods differ
# -------------------------------
# For 300 random pairs of test digits: the angle between their latents, and
# the mean absolute pixel difference between the linear and the spherical
# path's decoded midpoints.
rng = np.random.RandomState(0)
i, j = rng.randint(len(X_test), size=(2, 300))
mid = n_steps // 2
midpoints = {
    method: interpolate(model, X_test[i], X_test[j], n_steps, method=method)[1][:, mid]
    for method in ("linear", "spherical")
}
difference = np.abs(midpoints["linear"] - midpoints["spherical"]).mean(axis=1)
pair_angle = np.diag(angle(Z_test[i], Z_test[j]))
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.scatter(pair_angle, difference, s=8)
ax.set_xlabel("angle between the end latents (degrees)")
ax.set_ylabel("mean |linear - spherical|\nat the midpoint")
fig.tight_layout()
plt.show()
for lo, hi in ((0, 60), (60, 120), (120, 180)):
    sel = (pair_angle >= lo) & (pair_angle < hi)
    if sel.any():
        print(
            f"angle {lo:>3}-{hi:<3} degrees: {sel.sum():>3} pairs, "
            f"mean pixel difference {difference[sel].mean():.3f}"
        )

# %%
# Reading the result
# ------------------
# * The end frames are the projections of the end digits, to numerical
#   precision (printed above). If a path "starts at the wrong digit", the
#   model's projection of that digit is wrong, not the interpolation; the
#   end digits here were chosen among the faithfully projected ones.
# * For pairs at small angles the two methods decode to nearly the same
#   images, which is why they are easy to confuse. At wide angles the
#   straight path passes through short latents, and its middle frames drift
#   towards whatever the decoder makes of latents near the origin, while the
#   spherical path stays among latents of training-like length.
# * Neither path is "the" transition between two digits: the decoder was
#   trained only on the training latents, and what lies between them is not
#   constrained by any data.
