"""Auto-decoder vs autoencoder on shrinking MNIST training sets (per-pixel test BCE).

Both models use the "mnist" preset: the same decoder (263,873 weights) and
training settings; the autoencoder adds the mirrored encoder. The test set
is taken from the end of ../shared/data/mnist10k (the fixed last 2,000
images; by default their last 500, to keep the auto-decoder's inference
affordable on a CPU); training sets are the first N images.

On 2 CPU cores the published 200 epochs are out of reach, so each model gets
the same budget of gradient steps (``--steps``) at every size, with at least
``--min-epochs`` epochs: a fixed-epoch budget would give the large sets many
times the compute of the small ones, and a fixed-step budget keeps the cost
per size about constant. The auto-decoder's latents move once per epoch, so
its large-set results are the more under-trained ones.

Test error: the auto-decoder infers each test latent with the decoder frozen
(``transform``, then ``inverse_transform``); the autoencoder encodes it (one
forward pass). Both report the binary cross-entropy per pixel.

Run: python benchmarks/bench_small_data.py   (about 45 minutes on 2 busy CPU cores)
The published budget: --steps 0 --min-epochs 200 --test-size 2000 --inference-iter 100
"""

import math
import time

import torch

from _common import REPO, parser, save, setup, table
from sklearn_autodecoder import ConvAutoDecoder, ConvAutoEncoder
from sklearn_autodecoder.datasets import load_mnist

DATA = REPO.parent / "shared" / "data" / "mnist10k"  # ../shared beside the repository
# Per-pixel test BCE from Schuster & Krogh (2021): (auto-decoder, autoencoder).
PAPER = {500: (0.103, 0.152), 2000: (0.089, 0.106), 5000: (0.083, 0.093), 15000: (0.082, 0.084)}
BATCH = 128  # the preset's


def bce_per_pixel(X, X_hat):
    X_hat = torch.as_tensor(X_hat, dtype=torch.float64)
    return float(torch.nn.functional.binary_cross_entropy(X_hat, torch.as_tensor(X, dtype=torch.float64)))


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000, 8000])
    p.add_argument("--steps", type=int, default=480, help="gradient steps per model and size")
    p.add_argument("--min-epochs", type=int, default=4)
    p.add_argument("--test-size", type=int, default=2000, help="last images of the file (at most 2000)")
    p.add_argument("--inference-iter", type=int, default=100, help="Adam steps per test latent")
    args = p.parse_args()
    setup(args)
    X, _ = load_mnist(f"{DATA}/mnist10k-images-idx3-ubyte.gz")
    X_test = X[-args.test_size:]
    rows = []
    for n in args.sizes:
        epochs = max(args.min_epochs, round(args.steps / math.ceil(n / BATCH)))
        row = dict(n_train=n, epochs=epochs, steps=epochs * math.ceil(n / BATCH))
        X_train = X[:n]
        for name, cls, extra in [
            ("AD", ConvAutoDecoder, dict(inference_max_iter=args.inference_iter)),
            ("AE", ConvAutoEncoder, {}),
        ]:
            est = cls("mnist", max_iter=epochs, random_state=args.seed, device="cpu", **extra)
            start = time.perf_counter()
            est.fit(X_train)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            X_hat = est.inverse_transform(est.transform(X_test))
            row[f"{name} test BCE"] = bce_per_pixel(X_test, X_hat)
            # Training error: the learnt latents (AD) or the encoder (AE).
            Z_train = est.embedding_ if name == "AD" else est.transform(X_train)
            row[f"{name} train BCE"] = bce_per_pixel(X_train, est.inverse_transform(Z_train))
            row[f"{name} fit s"] = round(fit_s, 1)
            row[f"{name} transform s"] = round(time.perf_counter() - start, 1)
            row["decoder load"] = round(est.decoder_load_, 2)
        row["paper AD"], row["paper AE"] = PAPER.get(n, (None, None))
        rows.append(row)
        print(row, flush=True)
    print()
    print(table(rows, ["n_train", "epochs", "steps", "decoder load", "AD test BCE", "AE test BCE",
                       "paper AD", "paper AE", "AD train BCE", "AE train BCE", "AD fit s", "AE fit s",
                       "AD transform s"]))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sizes = [r["n_train"] for r in rows]
    ax.plot(sizes, [r["AD test BCE"] for r in rows], "o-", label="auto-decoder (this run)")
    ax.plot(sizes, [r["AE test BCE"] for r in rows], "s-", label="autoencoder (this run)")
    paper = sorted(PAPER.items())
    ax.plot([k for k, _ in paper], [v[0] for _, v in paper], "o--", color="C0", alpha=0.5,
            label="auto-decoder (paper, 200 epochs)")
    ax.plot([k for k, _ in paper], [v[1] for _, v in paper], "s--", color="C1", alpha=0.5,
            label="autoencoder (paper, 200 epochs)")
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("test BCE per pixel")
    ax.set_title(f"MNIST, equal step budget ({args.steps} steps, >= {args.min_epochs} epochs)")
    ax.legend(fontsize=7)
    save(fig, "small_data", rows)


if __name__ == "__main__":
    main()
