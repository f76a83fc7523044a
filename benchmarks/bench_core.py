"""Core benchmark: ConvAutoDecoder(preset="mnist") vs PCA, and the training loop's overhead.

On the MNIST subset in ``../shared/data/mnist10k`` (first 8,000 images for
training, last 2,000 for testing):

1. test reconstruction MSE of the auto-decoder (latents inferred with the
   decoder frozen) and of PCA with the same ``n_components``;
2. seconds per training epoch of the estimator (skorch loop, callbacks,
   history) and of a bare torch loop training the same decoder and latents
   with the same optimisers and batches, interleaved in the same process.

Usage::

    python benchmarks/bench_core.py [--epochs 30] [--data ../shared/data/mnist10k]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from sklearn_autodecoder import ConvAutoDecoder
from sklearn_autodecoder._sparse_optim import SparseSGD
from sklearn_autodecoder.datasets import load_mnist
from sklearn_autodecoder.nn import LatentTable
from sklearn_autodecoder.presets import PRESETS, make_decoder

ROOT = Path(__file__).resolve().parents[1]


def load(data_dir):
    X, _ = load_mnist(data_dir / "mnist10k-images-idx3-ubyte.gz")
    return X[:8000], X[8000:]


def bare_epochs(X, n_epochs, seed=0):
    """Seconds per epoch of a plain torch loop with the preset's settings."""
    settings = PRESETS["mnist"].defaults
    torch.manual_seed(seed)
    decoder = torch.nn.Sequential(make_decoder("mnist"), torch.nn.Flatten())
    latents = LatentTable(len(X), 20, init=0.01 * torch.randn(len(X), 20))
    weight_opt = torch.optim.Adam(decoder.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"])
    latent_opt = SparseSGD(latents.parameters(), lr=settings["latent_learning_rate"], momentum=settings["latent_momentum"])
    X_t = torch.as_tensor(X)
    generator = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), settings["batch_size"]):
            rows = order[i : i + settings["batch_size"]]
            weight_opt.zero_grad()
            latent_opt.zero_grad()
            x_hat = decoder(latents(rows))
            loss = torch.nn.functional.binary_cross_entropy(x_hat, X_t[rows], reduction="sum")
            loss.backward()
            weight_opt.step()
            latent_opt.step()
        times.append(time.perf_counter() - start)
    return times


def estimator_epochs(X, n_epochs, seed=0):
    """Seconds per epoch of ConvAutoDecoder.fit (from skorch's history)."""
    cad = ConvAutoDecoder("mnist", max_iter=n_epochs, device="cpu", random_state=seed).fit(X)
    return [row["dur"] for row in cad.history_]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs for the MSE comparison")
    parser.add_argument("--overhead-epochs", type=int, default=3, help="epochs per timing round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mnist10k")
    args = parser.parse_args(argv)
    X_train, X_test = load(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; train {X_train.shape}, test {X_test.shape}")

    # 1. Reconstruction quality.
    start = time.perf_counter()
    cad = ConvAutoDecoder("mnist", max_iter=args.epochs, device="cpu", random_state=0).fit(X_train)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    ad_hat = cad.inverse_transform(cad.transform(X_test))
    infer_time = time.perf_counter() - start
    pca = PCA(cad.n_components_).fit(X_train)
    pca_hat = pca.inverse_transform(pca.transform(X_test))
    mse_ad = float(np.mean((ad_hat - X_test) ** 2))
    mse_pca = float(np.mean((pca_hat - X_test) ** 2))

    # 2. Loop overhead, interleaved so that both see the same machine load.
    bare, est = [], []
    for _ in range(args.rounds):
        bare += bare_epochs(X_train, args.overhead_epochs)
        est += estimator_epochs(X_train, args.overhead_epochs)
    # Medians: robust to a stray slow epoch on a shared machine.
    bare_epoch, est_epoch = float(np.median(bare)), float(np.median(est))

    print()
    print("| quantity | value |")
    print("|---|---|")
    print(f"| n_components | {cad.n_components_} |")
    print(f"| auto-decoder epochs | {args.epochs} (fit {fit_time:.1f} s, test inference {infer_time:.1f} s) |")
    print(f"| test MSE, PCA | {mse_pca:.5f} |")
    print(f"| test MSE, auto-decoder | {mse_ad:.5f} |")
    print(f"| MSE ratio auto-decoder / PCA (target <= 0.5) | {mse_ad / mse_pca:.3f} |")
    print(f"| s/epoch, bare torch loop (median of {len(bare)}) | {bare_epoch:.3f} |")
    print(f"| s/epoch, ConvAutoDecoder.fit (median of {len(est)}) | {est_epoch:.3f} |")
    print(f"| overhead ratio estimator / bare (target <= 1.15) | {est_epoch / bare_epoch:.3f} |")


if __name__ == "__main__":
    main()
