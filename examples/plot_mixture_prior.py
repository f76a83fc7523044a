"""
==================================================
A generative auto-decoder: mixture prior on digits
==================================================

With ``latent_prior="gmm"`` an :class:`~sklearn_autodecoder.AutoDecoder`
learns a Gaussian mixture on its latent vectors jointly with the decoder
(the Deep Generative Decoder of Schuster and Krogh). The fitted model is

* a clustering: :meth:`~sklearn_autodecoder.AutoDecoder.predict` gives each
  sample's most likely mixture component, in the style of
  :class:`sklearn.mixture.GaussianMixture`;
* a generative model: :meth:`~sklearn_autodecoder.AutoDecoder.sample` draws
  latents from the mixture and decodes them.

The mixture starts as the Gaussian mixture fitted by EM to the training
latents' start (their whitened PCA scores), and training refines both
together. This example compares the clusters with ``GaussianMixture`` and
``KMeans`` on PCA scores of the same size, and shows what each component
generates, on scikit-learn's 8x8 digits.
"""

# %%
# Data and model
# --------------
# Pixels scaled to [0, 1] and a Bernoulli (``loss="bce"``) decoder; ten
# mixture components for the ten digits (the labels are only used to score
# the clusters).
import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, confusion_matrix
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from sklearn_autodecoder import AutoDecoder

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=400, random_state=0)

model = AutoDecoder(
    n_components=20,
    hidden_layer_sizes=(64, 128),
    loss="bce",
    latent_prior="gmm",
    n_prior_components=10,
    device="cpu",
    random_state=0,
).fit(X_train)

# %%
# Clusters against the digits
# ---------------------------
# The adjusted Rand index (ARI) of the test digits' components against their
# labels (1 is a perfect match, 0 chance), next to a Gaussian mixture and
# k-means on PCA scores with as many dimensions as the latents.
# (scikit-learn's estimators run on one thread: data this small gains nothing
# from more, and on a shared machine the threads wait on each other.)
with threadpool_limits(limits=1):
    pca = PCA(20, random_state=0).fit(X_train)
    baselines = {
        "GaussianMixture(10) on PCA(20)": GaussianMixture(10, random_state=0).fit(pca.transform(X_train)),
        "KMeans(10) on PCA(20)": KMeans(10, n_init=10, random_state=0).fit(pca.transform(X_train)),
    }
labels = model.predict(X_test)
print(f"{'AutoDecoder(latent_prior=gmm)':>32}: test ARI {adjusted_rand_score(y_test, labels):.3f}")
for name, estimator in baselines.items():
    found = estimator.predict(pca.transform(X_test))
    print(f"{name:>32}: test ARI {adjusted_rand_score(y_test, found):.3f}")

# %%
# Which digits each component holds: the counts of test digits (columns) per
# component (rows), components ordered by their most frequent digit.
counts = confusion_matrix(y_test, labels, labels=range(10)).T
order = np.argsort(counts.argmax(axis=1), kind="stable")
fig, ax = plt.subplots(figsize=(5, 4.2))
ax.imshow(counts[order], cmap="Blues")
for i, k in enumerate(order):
    for d in range(10):
        if counts[k, d]:
            ax.text(d, i, counts[k, d], ha="center", va="center", fontsize=7,
                    color="white" if counts[k, d] > counts.max() / 2 else "black")
ax.set_xticks(range(10))
ax.set_yticks(range(10), [f"{k} (w={model.prior_weights_[k]:.2f})" for k in order], fontsize=7)
ax.set_xlabel("digit")
ax.set_ylabel("mixture component (weight)")
ax.set_title("Test digits per component", fontsize=9)
fig.tight_layout()

# %%
# What each component generates
# -----------------------------
# Each row: a component's decoded mean (framed), then digits drawn with
# ``sample`` from that component. ``sample`` returns the decoded samples and
# their components; a seeded call is reproducible.
X_new, components = model.sample(2000, random_state=0)
assert np.array_equal(X_new, model.sample(2000, random_state=0)[0])
print(f"samples: shape {X_new.shape}, pixel range [{X_new.min():.2f}, {X_new.max():.2f}]")
means = model.inverse_transform(model.prior_means_.astype(np.float32))
per_row = 8
fig, axes = plt.subplots(10, per_row + 1, figsize=(5.5, 6.5), gridspec_kw=dict(hspace=0.1, wspace=0.1))
for i, k in enumerate(order):
    images = [means[k], *X_new[components == k][:per_row]]
    for j, ax in enumerate(axes[i]):
        if j < len(images):
            ax.imshow(images[j].reshape(8, 8), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
            for spine in ax.spines.values():
                spine.set_color("tab:orange")
                spine.set_linewidth(2)
    axes[i, 0].set_ylabel(str(k), rotation=0, ha="right", va="center", fontsize=8)
fig.suptitle("Decoded component mean (orange), then samples; one row per component", fontsize=9)

# %%
# The decoded digits are probabilities (the ``loss="bce"`` decoder's
# output), hence in [0, 1] and somewhat blurred: a sample is the mean image
# of its latent, not a draw of binary pixels.
plt.show()
