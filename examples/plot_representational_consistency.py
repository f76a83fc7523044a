"""
Representational consistency of autoencoders and auto-decoders
===============================================================

Networks trained from different random seeds reach similar losses, but do
they represent the data alike? Representational similarity analysis answers
layer by layer: a layer's *representational dissimilarity matrix* (RDM) holds
1 - the Pearson correlation between its activations for each pair of
stimuli, and the layer's *representational consistency* is the mean Pearson
correlation of its RDMs across differently seeded instances (Mehrer et al.
2020). Durbha, Goerttler et al. (2022) found that in autoencoders it falls
through the encoder to a minimum at the bottleneck and rises again through
the decoder.

Here we train a few seeds of an :class:`~sklearn_autodecoder.AutoEncoder`
and of an :class:`~sklearn_autodecoder.AutoDecoder` with the same decoder,
read every layer with :func:`~sklearn_autodecoder.analysis.layer_activations`
and compare the two curves. An auto-decoder has no encoder: its first layer
is the latent vector that inference finds for each stimulus.

The data are scikit-learn's 8x8 digits. To use 28x28 MNIST digits
instead, set the environment variable ``MNIST10K`` to a folder holding
10,000 of them as ``mnist10k-images-idx3-ubyte.gz`` and
``mnist10k-labels-idx1-ubyte.gz`` (slower; see
:ref:`where MNIST comes from <mnist-data>`).
"""

# %%
# Data and models
# ---------------
# The stimuli are held-out digits; each instance trains on the rest, with its
# own seed (initial weights and batch order).
import os
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from sklearn_autodecoder import AutoDecoder, AutoEncoder, LowLoadWarning
from sklearn_autodecoder.analysis import (
    layer_activations,
    linear_cka,
    plot_mds,
    plot_rdm,
    rdm,
    representational_consistency,
)


def load_data():
    """Training samples, and the held-out stimuli sorted by label."""
    folder = os.environ.get("MNIST10K")
    if folder:
        from sklearn_autodecoder.datasets import load_mnist

        images = Path(folder) / "mnist10k-images-idx3-ubyte.gz"
        labels = Path(folder) / "mnist10k-labels-idx1-ubyte.gz"
        if not (images.exists() and labels.exists()):
            raise FileNotFoundError(
                f"MNIST10K={folder!r} does not hold {images.name} and {labels.name}; "
                "unset MNIST10K to use scikit-learn's digits."
            )
        X, y = load_mnist(images, labels)
        X_train, X_test, y_test = X[:2000], X[-500:], y[-500:]
    else:
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        X_train, X_test, y_test = X[:-500], X[-500:], y[-500:]
    order = np.argsort(y_test, kind="stable")
    return X_train, X_test[order], y_test[order]


X_train, X_stimuli, y_stimuli = load_data()

N_SEEDS = 6
SETTINGS = dict(n_components=8, hidden_layer_sizes=(64, 128), device="cpu")

activations = {"AutoEncoder": [], "AutoDecoder": []}
with warnings.catch_warnings():
    # Few samples for the decoder's weights on the small digits set: known, and
    # the same for every seed.
    warnings.simplefilter("ignore", LowLoadWarning)
    for seed in range(N_SEEDS):
        for name, Estimator in (("AutoEncoder", AutoEncoder), ("AutoDecoder", AutoDecoder)):
            model = Estimator(random_state=seed, **SETTINGS).fit(X_train)
            activations[name].append(layer_activations(model, X_stimuli))
print("AutoEncoder layers:", list(activations["AutoEncoder"][0]))
print("AutoDecoder layers:", list(activations["AutoDecoder"][0]))

# %%
# Consistency per layer
# ---------------------
# Layer by layer, the mean over pairs of seeds of the Pearson correlation of
# the RDMs (the paper's measure), and, as a second opinion, the mean linear
# CKA, which unlike a correlation RDM does not change when a layer's units
# are rotated (the latent space of either model is only defined up to such
# a transform).


def per_layer(runs):
    names = list(runs[0])
    consistency = [representational_consistency([run[n] for run in runs]) for n in names]
    cka = [np.mean([linear_cka(a[n], b[n]) for a, b in combinations(runs, 2)]) for n in names]
    return names, np.array(consistency), np.array(cka)


results = {name: per_layer(runs) for name, runs in activations.items()}
for name, (layers, consistency, cka) in results.items():
    print(f"\n{name}: {'layer':<18} {'units':>5} {'consistency':>11} {'CKA':>6}")
    for layer, c, k in zip(layers, consistency, cka):
        width = activations[name][0][layer].shape[1]
        print(f"{'':<{len(name) + 1}} {layer:<18} {width:>5} {c:>11.3f} {k:>6.3f}")

# %%
# The curves, the AutoDecoder's layers aligned with the AutoEncoder's
# decoder (the latent layer first). Below: the MDS map of every RDM of the
# AutoEncoder (one point per layer and seed; a consistent layer's points
# cluster) and one auto-decoder's latent RDM, stimuli sorted by digit.
import matplotlib.pyplot as plt  # noqa: E402

ae_layers = results["AutoEncoder"][0]
offset = ae_layers.index("latent")
# Tick labels: the part of the network and the layer's width, e.g. "enc 128".
widths = [activations["AutoEncoder"][0][n].shape[1] for n in ae_layers]
labels = [f"{n.split('.')[0][:3] if '.' in n else n} {w}" for n, w in zip(ae_layers, widths)]
labels[-1] = f"output {widths[-1]}"

fig, axes = plt.subplots(2, 2, figsize=(11, 9))
panels = (
    (axes[0, 0], 1, "RDM consistency (Pearson of RDMs)"),
    (axes[0, 1], 2, "Mean pairwise linear CKA"),
)
for ax, column, title in panels:
    for name, marker in (("AutoEncoder", "o"), ("AutoDecoder", "s")):
        values = results[name][column]
        x = np.arange(len(values)) + (offset if name == "AutoDecoder" else 0)
        ax.plot(x, values, marker=marker, label=name)
    ax.axvline(offset, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel("mean over pairs of seeds")
    ax.legend()
    ax.grid(alpha=0.3)

ae_runs = activations["AutoEncoder"]
rdms = [rdm(run[layer]) for layer in ae_layers for run in ae_runs]
plot_mds(rdms, [label for label in labels for _ in ae_runs], ax=axes[1, 0], random_state=0)
axes[1, 0].set_title(f"AutoEncoder RDMs: {len(ae_layers)} layers x {len(ae_runs)} seeds (MDS)")
plot_rdm(rdm(activations["AutoDecoder"][0]["latent"]), ax=axes[1, 1])
axes[1, 1].set_title("AutoDecoder latent RDM (stimuli sorted by digit)")
fig.tight_layout()
fig.savefig("representational_consistency.png", dpi=80)

# %%
# Reading the curves
# ------------------
# For the autoencoder the RDM consistency falls from the input (1 by
# construction) through the encoder to its minimum at the bottleneck and
# rises through the decoder to the output: the shape Durbha, Goerttler et al.
# report. Under linear CKA the bottleneck is at most a shallow dip, about
# level with the encoder layer before it: much of its low RDM consistency
# comes from the arbitrary rotation of a linear latent layer, which a
# correlation RDM sees (it centres each stimulus across units) and CKA does
# not. The hidden layers' ReLUs fix their units, so both measures agree
# there.
#
# The auto-decoder's curve starts lowest at its latent layer and rises
# through the decoder, but stays below the autoencoder's at every decoder
# layer, under both measures: without an encoder tying each latent to its
# input, the instances agree less about how the stimuli relate. The MDS map
# shows the same from the other side: the autoencoder's latent RDMs (one per
# seed) lie far apart, its other layers' RDMs cluster. The printed table
# gives this run's figures; other seeds move them by about 0.01-0.02.
