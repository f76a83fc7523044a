"""Auto-decoder vs PCA on scikit-learn's digits, offline, in well under a minute.

Run ``python -m sklearn_autodecoder.demo``: it fits PCA and an auto-decoder
with the same number of components on 75% of the 8x8 digits, projects the
held-out 25% onto each model, prints both test reconstruction errors and
saves a picture of originals and reconstructions.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from sklearn_autodecoder import AutoDecoder


def run(n_components=8, max_iter=500, output="autodecoder_demo.png", random_state=0):
    """Fit both models, print their test errors, save the picture.

    Returns
    -------
    results : dict
        Test mean squared errors ``{"pca": ..., "autodecoder": ...}`` (pixels
        scaled to [0, 1]).
    """
    X = load_digits().data / 16.0
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=random_state)

    start = time.perf_counter()
    pca = PCA(n_components).fit(X_train)
    pca_hat = pca.inverse_transform(pca.transform(X_test))
    pca_time = time.perf_counter() - start

    start = time.perf_counter()
    ad = AutoDecoder(
        n_components, hidden_layer_sizes=(128,), max_iter=max_iter, random_state=random_state
    ).fit(X_train)
    ad_hat = ad.inverse_transform(ad.transform(X_test))
    ad_time = time.perf_counter() - start

    results = {
        "pca": float(np.mean((pca_hat - X_test) ** 2)),
        "autodecoder": float(np.mean((ad_hat - X_test) ** 2)),
    }
    print(f"digits: {len(X_train)} train / {len(X_test)} test images, n_components={n_components}")
    print(f"{'model':<12} {'test MSE':>10} {'seconds':>8}")
    print(f"{'PCA':<12} {results['pca']:>10.5f} {pca_time:>8.2f}")
    print(f"{'AutoDecoder':<12} {results['autodecoder']:>10.5f} {ad_time:>8.2f}  (device: {ad.device_})")
    print(f"auto-decoder error / PCA error: {results['autodecoder'] / results['pca']:.2f}")
    if output:
        _save_grid(X_test[:10], pca_hat[:10], ad_hat[:10], output)
    return results


def _save_grid(originals, pca_hat, ad_hat, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture saved (pip install matplotlib).")
        return
    rows = [("original", originals), ("PCA", pca_hat), ("auto-decoder", ad_hat)]
    fig, axes = plt.subplots(len(rows), len(originals), figsize=(len(originals), len(rows) + 0.3))
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(np.clip(image, 0, 1).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=500, help="most training epochs")
    parser.add_argument("--output", default="autodecoder_demo.png", help="PNG path ('' for none)")
    args = parser.parse_args(argv)
    run(args.n_components, args.max_iter, args.output)


if __name__ == "__main__":
    main()
