"""
=====================================================
Count data: a negative-binomial auto-decoder on cells
=====================================================

Single-cell RNA-seq tables are sparse matrices of counts: cells by genes,
mostly zeros, with totals (library sizes) that vary from cell to cell. The
usual reduction (scanpy's) scales each cell to 10,000 counts, takes
``log1p`` and runs PCA. An :class:`~sklearn_autodecoder.AutoDecoder` with
``loss="negative_binomial"`` models the counts themselves, as the Deep
Generative Decoder and scVI do: its decoder predicts each gene's proportion
of a cell's counts (a softmax), the cell's total scales it, and the noise is
negative binomial with a dispersion per gene learned with the decoder. It
takes the sparse matrix as it is (AnnData users pass ``adata.X``): rows are
sliced and densified one batch at a time.

This example compares, on simulated counts with known cell groups
(:func:`~sklearn_autodecoder.datasets.make_count_data`), PCA on
log-normalised counts, TruncatedSVD (no centring, sparse input), the NB
auto-decoder and the NB auto-decoder with a mixture prior (a clustering),
all with 3 components, on held-out cells: the kNN accuracy of the known
groups in latent space, and the held-out NB log-likelihood of the two
auto-decoders.
"""

# %%
# Data
# ----
# 1,250 cells, 1,000 genes, 5 groups; the last 250 cells are held out.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder.datasets import make_count_data

X, y = make_count_data(1250, n_features=1000, n_groups=5, library_size=500, library_size_spread=0.8,
                       group_separation=4.0, sparse=True, random_state=0)
try:  # AnnData users pass adata.X, a sparse matrix, as it is
    import anndata

    X = anndata.AnnData(X).X
except ImportError:
    pass
train, test = slice(0, 1000), slice(1000, 1250)
print(f"{X.shape[0]} cells x {X.shape[1]} genes, {X.nnz / np.prod(X.shape):.0%} non-zero, "
      f"library sizes {np.percentile(np.asarray(X.sum(axis=1)), [5, 95]).round()} (5-95%)")

# scanpy's normalize_total(target_sum=1e4) then log1p, kept sparse.
totals = np.asarray(X.sum(axis=1)).ravel()
log_normalised = X.multiply((1e4 / totals)[:, None]).tocsr()
log_normalised.data = np.log1p(log_normalised.data)

# %%
# Four reductions with 3 components
# ---------------------------------
# The auto-decoders train for a fixed 40 epochs (a few seconds each), short of
# convergence: their ConvergenceWarnings are silenced here.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
results = {}


def knn_accuracy(Z_train, Z_test):
    return KNeighborsClassifier(15).fit(Z_train, y[train]).score(Z_test, y[test])


for name, model in (("PCA on log1p", PCA(3, random_state=0)), ("TruncatedSVD on log1p", TruncatedSVD(3, random_state=0))):
    start = time.perf_counter()
    data = log_normalised.toarray() if isinstance(model, PCA) else log_normalised
    Z_train = model.fit_transform(data[train])
    Z_test = model.transform(data[test])
    results[name] = dict(Z=Z_test, knn=knn_accuracy(Z_train, Z_test), seconds=time.perf_counter() - start)

for name, prior in (("NB auto-decoder", {}), ("NB auto-decoder + mixture", dict(latent_prior="gmm", n_prior_components=5))):
    start = time.perf_counter()
    model = AutoDecoder(n_components=3, hidden_layer_sizes=(64,), loss="negative_binomial", max_iter=40,
                        batch_size=128, device="cpu", n_jobs=1, random_state=0, **prior).fit(X[train])
    Z_test = model.transform(X[test])
    results[name] = dict(Z=Z_test, knn=knn_accuracy(model.embedding_, Z_test), seconds=time.perf_counter() - start,
                         loglik=model.score(X[test]) * X.shape[1])

for name, r in results.items():
    loglik = f", held-out NB log-likelihood {r['loglik']:.1f} per cell" if "loglik" in r else ""
    print(f"{name:28s} kNN accuracy {r['knn']:.3f}, {r['seconds']:.1f} s{loglik}")

# %%
# The held-out cells in each latent space
# ---------------------------------------
# The first two latent coordinates, coloured by the known group.
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, (name, r) in zip(axes, results.items()):
    ax.scatter(r["Z"][:, 0], r["Z"][:, 1], c=y[test], cmap="tab10", s=8, vmin=0, vmax=9)
    ax.set_title(f"{name}\nkNN accuracy {r['knn']:.2f}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
fig.savefig("counts.png", dpi=80)
plt.show()

# %%
# The expected counts of a cell at a chosen library size
# ------------------------------------------------------
# ``inverse_transform`` returns expected counts: by default at the training
# cells' median total, or at ``library_size`` (a number, or one per cell).
expected = model.inverse_transform(Z_test[:2], library_size=1e4)
print(expected.sum(axis=1))
