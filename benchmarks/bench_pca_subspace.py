"""Linear auto-decoder vs PCA: principal angles between the learnt subspaces.

A linear decoder x = W z + b trained with free latents minimises the same
squared error as PCA, so its column space should be PCA's m-dimensional
subspace (its columns need not be orthogonal or ordered: only the span is
determined). The benchmark fits ``AutoDecoder(hidden_layer_sizes=())`` and,
for comparison, the linear ``AutoEncoder``, on

* synthetic low-rank data (rank m plus isotropic noise), and
* the MNIST 10k subset (first 2,000 images, m = 10), where the spectrum
  decays smoothly and the trailing directions are hard to pin down,

and reports the largest and the mean principal angle
(``scipy.linalg.subspace_angles``) to PCA's subspace, with the angle of a
random m-dimensional subspace for scale.

Run: python benchmarks/bench_pca_subspace.py [--epochs 100]
"""

import warnings

import numpy as np
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from _common import REPO, parser, save, setup, table
from sklearn_autodecoder import AutoDecoder, AutoEncoder
from sklearn_autodecoder.datasets import load_mnist

DATA = REPO.parent / "shared" / "data" / "mnist10k"  # ../shared beside the repository


def low_rank(n_samples, n_features, rank, noise, rng):
    basis = np.linalg.qr(rng.randn(n_features, rank))[0]
    scales = np.linspace(3.0, 1.0, rank)
    return (rng.randn(n_samples, rank) * scales) @ basis.T + noise * rng.randn(n_samples, n_features)


def angles(A, B):
    return np.degrees(subspace_angles(A, B))


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=100)
    args = p.parse_args()
    setup(args)
    rng = np.random.RandomState(args.seed)
    mnist, _ = load_mnist(f"{DATA}/mnist10k-images-idx3-ubyte.gz")
    datasets = {
        "low rank 1000x50, m=5": (low_rank(1000, 50, 5, 0.05, rng), 5),
        "MNIST 2000x784, m=10": (mnist[:2000].astype(np.float64), 10),
    }
    rows, curves = [], {}
    for name, (X, m) in datasets.items():
        pca = PCA(n_components=m).fit(X).components_.T
        random = angles(rng.randn(X.shape[1], m), pca)
        for label, cls, extra in [
            ("auto-decoder", AutoDecoder, dict(latent_learning_rate=0.05)),
            ("autoencoder", AutoEncoder, {}),
        ]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = cls(n_components=m, hidden_layer_sizes=(), learning_rate=1e-2, max_iter=args.epochs,
                          batch_size=64, random_state=args.seed, device="cpu", **extra).fit(X)
            theta = angles(est.decoder_[0].weight.detach().numpy(), pca)
            curves[(name, label)] = np.sort(theta)
            rows.append({"data": name, "model": label, "epochs": args.epochs,
                         "max angle (deg)": float(theta.max()), "mean angle (deg)": float(theta.mean()),
                         "random subspace max (deg)": float(random.max())})
            print(rows[-1], flush=True)
    print()
    print(table(rows, ["data", "model", "epochs", "max angle (deg)", "mean angle (deg)",
                       "random subspace max (deg)"], floatfmt=".2f"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(8, 3))
    for ax, name in zip(axes, datasets):
        for label in ("auto-decoder", "autoencoder"):
            theta = curves[(name, label)]
            ax.plot(np.arange(1, len(theta) + 1), theta, "o-", label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("principal angle index")
        ax.set_ylabel("degrees")
    axes[0].legend(fontsize=8)
    save(fig, "pca_subspace", rows)


if __name__ == "__main__":
    main()
