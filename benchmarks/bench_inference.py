"""Latent inference speed and imputation quality on the MNIST preset.

Trains ``ConvAutoDecoder(preset="mnist")`` (inside an ``AutoDecoderImputer``)
on the first 8,000 digits of mnist10k, then on test digits from the last
2,000:

1. for each ``init`` strategy and a range of ``inference_max_iter``, the mean
   test loss (BCE summed over pixels) reached, the wall time, and the decoder
   evaluations per sample, against plain Adam from zero (constant step, no
   step cuts) run to convergence in the same run (the reference loss);
2. imputation RMSE on the missing pixels, (a) 50% of pixels missing at
   random and (b) a centred 14x14 square missing, for the auto-decoder
   imputer vs SimpleImputer, KNNImputer and IterativeImputer.

Run ``python benchmarks/bench_inference.py --threads 1`` (about 13 minutes on 2 shared CPU
cores). Tables are printed; plots go to ``benchmarks/results/``.
"""

import time
from contextlib import contextmanager

import numpy as np
from _common import REPO, parser, save, setup, table
from sklearn.base import clone
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from sklearn_autodecoder import AutoDecoderImputer, ConvAutoDecoder
from sklearn_autodecoder import _inference
from sklearn_autodecoder.datasets import load_mnist

DATA = REPO.parent / "shared" / "data" / "mnist10k"


@contextmanager
def count_rows(module):
    """Count the rows ``module`` evaluates (forward passes, per sample)."""
    counter = {"rows": 0}
    handle = module.register_forward_hook(lambda m, i, o: counter.__setitem__("rows", counter["rows"] + len(i[0])))
    try:
        yield counter
    finally:
        handle.remove()


@contextmanager
def plain_adam():
    """Constant-step Adam that stops at its first stall (no step cuts)."""
    saved = _inference.N_CUTS
    _inference.N_CUTS = 1
    try:
        yield
    finally:
        _inference.N_CUTS = saved


def mean_loss(model, X, Z):
    """Mean per-sample BCE (summed over pixels) of the decoded Z."""
    X_hat = np.clip(model.inverse_transform(Z), 1e-7, 1 - 1e-7)
    return float(-(X * np.log(X_hat) + (1 - X) * np.log(1 - X_hat)).sum(axis=1).mean())


def run(model, X, label, **params):
    model.set_params(**params)
    with count_rows(model.decoder_) as counter:
        start = time.perf_counter()
        Z = model.transform(X)
        seconds = time.perf_counter() - start
    return dict(
        strategy=label,
        steps=params.get("inference_max_iter"),
        loss=mean_loss(model, X, Z),
        seconds=seconds,
        evals=counter["rows"] / len(X),
    )


def inference_benchmark(model, X_test, args):
    rows = []
    with plain_adam():
        reference = run(
            model, X_test, "reference: plain Adam from zeros, lr 0.1",
            init="zeros", inference_learning_rate=0.1, inference_max_iter=args.reference_steps, tol=1e-5,
        )
    rows.append(reference)
    print(f"reference loss {reference['loss']:.3f} in {reference['seconds']:.1f} s", flush=True)
    with plain_adam():
        for steps in (50, 100):
            rows.append(run(model, X_test, "plain Adam from zeros, lr 0.1", init="zeros",
                            inference_learning_rate=0.1, inference_max_iter=steps, tol=1e-4))
    for init, lr, grid in [
        ("zeros", 0.1, (50, 100)),
        ("zeros", 0.3, (50, 100)),
        ("mean", 0.1, (50,)),
        ("nearest", 0.1, (20, 50)),
        ("encoder", 0.1, (1, 5, 10, 20, 30, 50)),
        ("encoder", 0.3, (5, 10, 20)),
    ]:
        for steps in grid:
            rows.append(run(model, X_test, f"{init}, lr {lr}, step cuts", init=init,
                            inference_learning_rate=lr, inference_max_iter=steps, tol=1e-4))
            print(rows[-1], flush=True)
    for row in rows:
        row["excess_%"] = 100 * (row["loss"] / reference["loss"] - 1)
        row["speedup"] = reference["seconds"] / row["seconds"]
    print(table(rows, ["strategy", "steps", "loss", "excess_%", "seconds", "speedup", "evals"], ".2f"))
    return rows


def impute_benchmark(imputer, X_train, X_test, args):
    rng = np.random.RandomState(args.seed)
    random_mask = rng.rand(*X_test.shape) < 0.5
    square = np.zeros((28, 28), dtype=bool)
    square[7:21, 7:21] = True
    masks = {"50% at random": random_mask, "centred 14x14 square": np.broadcast_to(square.ravel(), X_test.shape)}
    others = {
        "SimpleImputer(mean)": SimpleImputer(),
        "KNNImputer(5)": KNNImputer(n_neighbors=5),
        # 784 features: a few nearest features and rounds keep it to minutes.
        f"IterativeImputer(n_nearest_features={args.iterative_features}, max_iter=3)": IterativeImputer(
            n_nearest_features=args.iterative_features, max_iter=3, min_value=0, max_value=1,
            random_state=args.seed,
        ),
    }
    # name -> fill(X_masked); the auto-decoder imputer is fitted already.
    fills = {
        f"AutoDecoderImputer(n_candidates={k})": lambda X, k=k: imputer.set_params(n_candidates=k).transform(X)
        for k in (1, args.candidates)
    }
    for name, other in others.items():
        start = time.perf_counter()
        fills[name] = clone(other).fit(X_train).transform
        print(f"fitted {name} in {time.perf_counter() - start:.1f} s", flush=True)
    rows, pictures = [], {}
    for mask_name, mask in masks.items():
        X_masked = np.where(mask, np.nan, X_test)
        for name, fill in fills.items():
            start = time.perf_counter()
            X_filled = fill(X_masked)
            seconds = time.perf_counter() - start
            rmse = float(np.sqrt(np.mean((X_filled[mask] - X_test[mask]) ** 2)))
            rows.append(dict(mask=mask_name, imputer=name, rmse=rmse, seconds=seconds))
            pictures[mask_name, name] = X_filled
            print(rows[-1], flush=True)
    print(table(rows, ["mask", "imputer", "rmse", "seconds"], ".4f"))
    return rows, pictures, masks


def plot(rows, imp_rows, pictures, masks, X_test):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    reference = rows[0]
    for label in dict.fromkeys(r["strategy"] for r in rows[1:]):
        part = [r for r in rows if r["strategy"] == label]
        for ax, key in zip(axes, ("seconds", "evals")):
            ax.plot([r[key] for r in part], [r["excess_%"] for r in part], "o-", label=label)
    for ax, key in zip(axes, ("wall time (s)", "decoder evaluations per sample")):
        ax.axhline(1, color="grey", ls="--", lw=0.8)
        ax.set(xscale="log", yscale="symlog", xlabel=key, ylabel="test loss above reference (%)")
    for ax, key in zip(axes, ("seconds", "evals")):  # the reference, and 10x less
        ax.axvline(reference[key], color="k", lw=0.8)
        ax.axvline(reference[key] / 10, color="k", lw=0.8, ls=":")
    axes[1].legend(fontsize=7)
    fig.suptitle("Latent inference on MNIST (ConvAutoDecoder, test digits)")
    save(fig, "inference_speed", rows)

    names = list(dict.fromkeys(name for _, name in pictures))
    fig, axes = plt.subplots(2 * (len(names) + 2), 8, figsize=(8, 2 * (len(names) + 2)))
    for block, (mask_name, mask) in enumerate(masks.items()):
        shown = [("original", X_test), ("masked", np.where(mask, 0.5, X_test))]
        shown += [(name, pictures[mask_name, name]) for name in names]
        for r, (name, images) in enumerate(shown):
            row = block * len(shown) + r
            for c in range(8):
                ax = axes[row, c]
                ax.imshow(images[c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
            label = name.replace("AutoDecoderImputer(n_candidates=", "auto-decoder k=").split("(")[0]
            axes[row, 0].set_ylabel(label.rstrip(")"), fontsize=6, rotation=0, ha="right")
    save(fig, "inference_imputation", imp_rows)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("--encoder-epochs", type=int, default=30)
    p.add_argument("--n-test", type=int, default=500, help="test digits (of the last 2,000)")
    p.add_argument("--reference-steps", type=int, default=500)
    p.add_argument("--iterative-features", type=int, default=20)
    p.add_argument("--candidates", type=int, default=8, help="n_candidates of the second imputer row")
    args = p.parse_args()
    setup(args)
    X, _ = load_mnist(DATA / "mnist10k-images-idx3-ubyte.gz")
    X_train, X_test = X[:8000], X[-2000:][: args.n_test]

    start = time.perf_counter()
    imputer = AutoDecoderImputer(
        ConvAutoDecoder("mnist", max_iter=args.epochs, init="encoder",
                        encoder_max_iter=args.encoder_epochs, device="cpu", random_state=args.seed)
    ).fit(X_train)
    model = imputer.estimator_
    print(f"fitted in {time.perf_counter() - start:.1f} s (decoder {args.epochs} epochs, "
          f"encoder {args.encoder_epochs}); last training loss {model.loss_curve_[-1]:.2f}", flush=True)

    rows = inference_benchmark(model, X_test, args)
    model.set_params(init="encoder", inference_learning_rate=0.1, inference_max_iter=50, tol=1e-4)
    imp_rows, pictures, masks = impute_benchmark(imputer, X_train, X_test, args)
    plot(rows, imp_rows, pictures, masks, X_test)


if __name__ == "__main__":
    main()
