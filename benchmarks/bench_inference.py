"""Latent inference speed, quality and float32 row independence on the MNIST preset.

Trains ``ConvAutoDecoder(preset="mnist")`` on the first ``--n-train`` digits
of mnist10k (twice: with ``init="zeros"`` and with ``init="encoder"``, whose
difference in fit time is the amortised encoder's training cost), then on
``--n-test`` digits from the last 2,000:

1. for each inference strategy (start x optimiser x budget), the mean test
   loss (BCE from logits, summed over pixels), its excess over a converged
   reference (Adam from zeros, ``tol=1e-7``, up to ``--reference-steps``
   steps, per-row step cuts and early exit), the wall time and the speedup
   over the reference, all measured in the same process (the machine may be
   shared: compare ratios, not seconds across runs), and the decoder
   evaluations per test digit with their ratio to the reference's (a cost
   measure that does not depend on the machine's load);
2. what ``transform`` does at the estimator's defaults, timed the same way;
3. float32 row independence of ``transform``: the largest relative row
   difference ``||z_a - z_b|| / ||z_a||`` between ``inference_batch_size`` 7
   and 256, and between transforming every third row alone and the whole set;
4. with ``--impute``, imputation RMSE on missing pixels (50% at random, and a
   centred 14x14 square) against SimpleImputer, KNNImputer, IterativeImputer.

torch runs on ``--threads`` CPU threads (``torch.set_num_threads``; default
1). Run ``python benchmarks/bench_inference.py`` (about 10 minutes on a busy
2-core machine; ``--impute`` adds a few more). ``--data digits28``,
``shapes`` or ``mnist-inverted`` runs it on another 28x28 image set of
``benchmarks/_images.py`` (scikit-learn's digits upscaled, synthetic
shapes, MNIST inverted and shifted). Tables are printed; the plot
and CSVs go to ``benchmarks/results/``.
"""

import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from _common import REPO, parser, save, setup, table
from _images import IMAGE_SETS, load_images

from sklearn_autodecoder import AutoDecoderImputer, ConvAutoDecoder
from sklearn_autodecoder._amortized import encode
from sklearn_autodecoder._inference import _ChunkProblem, frozen, infer_latents
from sklearn_autodecoder._losses import decoded_losses
from sklearn_autodecoder.datasets import load_mnist

DATA = REPO.parent / "shared" / "data" / "mnist10k"

# (label, start, method, max_iter, tol, learning rate (lr: Adam's step, or
# L-BFGS's first step) in units of the training latents' RMS, chunk size)
STRATEGIES = [
    ("Adam, old default", "zeros", "adam", 100, 1e-4, 0.1, 256),
    ("Adam", "encoder", "adam", 20, 1e-4, 0.1, 256),
    ("Adam", "encoder", "adam", 40, 1e-4, 0.1, 256),
    ("L-BFGS", "zeros", "lbfgs", 100, 1e-3, 0.1, 256),
    ("L-BFGS", "zeros", "lbfgs", 100, 3e-4, 0.1, 256),
    ("L-BFGS", "zeros", "lbfgs", 100, 1e-4, 0.1, 256),
    ("L-BFGS", "zeros", "lbfgs", 100, 1e-4, 0.1, 64),
    ("L-BFGS", "mean", "lbfgs", 100, 1e-4, 0.1, 256),
    ("L-BFGS", "zeros", "lbfgs", 100, 2e-4, 0.1, 256),
    ("L-BFGS", "mean", "lbfgs", 100, 2e-4, 0.1, 256),
    ("L-BFGS", "mean", "lbfgs", 100, 2e-4, 1.0, 256),
    ("L-BFGS", "zeros", "lbfgs", 100, 2e-4, 1.0, 256),
    ("L-BFGS", "mean", "lbfgs", 100, 3e-4, 1.0, 256),
    ("L-BFGS", "nearest", "lbfgs", 100, 2e-4, 0.1, 256),
    ("L-BFGS", "nearest", "lbfgs", 100, 2e-4, 1.0, 256),
    ("L-BFGS", "encoder", "lbfgs", 100, 1e-3, 0.1, 256),
    ("L-BFGS", "encoder", "lbfgs", 100, 1e-4, 0.1, 256),
    ("Levenberg-Marquardt", "encoder", "lm", 5, 1e-4, 0.1, 256),
    ("Levenberg-Marquardt", "encoder", "lm", 10, 1e-4, 0.1, 256),
]


def mean_loss(decoder, X, Z):
    """Mean per-sample BCE (from logits, summed over pixels) of the decoded Z."""
    with torch.no_grad(), frozen(decoder):
        return float(decoded_losses(decoder, torch.as_tensor(Z), torch.as_tensor(X), "bce").mean())


def starts(model):
    """``init(x, mask)`` per start strategy, as the estimator builds them."""
    latents = torch.as_tensor(model.embedding_)
    mean = latents.mean(dim=0, keepdim=True)
    init = model.init
    model.set_params(init="nearest")  # the estimator's own nearest start (training decodings)
    nearest = model._init_function(model.decoder_, latents.dtype, torch.device("cpu"))
    model.set_params(init=init)
    return {
        "nearest": nearest,
        "zeros": lambda x, m: torch.zeros(len(x), latents.shape[1]),
        "mean": lambda x, m: mean.expand(len(x), -1).clone(),
        "encoder": lambda x, m: encode(model.encoder_, x, m),
    }


class EvaluationCount:
    """Counts the decoder passes of inference, per row (padding included).

    A pass is a forward and backward for "adam" and "lbfgs", a forward-mode
    pass per latent dimension for "lm": a cost measure that, unlike
    seconds, does not depend on the machine's load.
    """

    def __init__(self):
        self.rows = 0

    @contextmanager
    def __call__(self):
        self.rows = 0
        originals = {name: getattr(_ChunkProblem, name) for name in ("losses_and_grads", "linearise")}

        def counting(method, per_row):
            def wrapped(problem, z, rows):
                # Evaluations run on multiples of 16 rows.
                self.rows += (len(z) + (-len(z) % 16)) * per_row(z)
                return method(problem, z, rows)

            return wrapped

        passes = {"losses_and_grads": lambda z: 1, "linearise": lambda z: z.shape[1]}
        try:
            for name, method in originals.items():
                setattr(_ChunkProblem, name, counting(method, passes[name]))
            yield self
        finally:
            for name, method in originals.items():
                setattr(_ChunkProblem, name, method)


COUNT = EvaluationCount()


def run(model, X, label, start, method, max_iter, tol, lr, batch_size):
    rms = float(np.sqrt((model.embedding_**2).mean()))
    X_t = torch.as_tensor(X)
    init = starts(model)[start]  # built outside the timing (fit builds nearest's decodings)
    with COUNT():
        begin = time.perf_counter()
        result = infer_latents(
            model.decoder_, X_t, init, loss="bce", method=method, max_iter=max_iter,
            learning_rate=lr * rms, tol=tol, batch_size=batch_size,
        )
        seconds = time.perf_counter() - begin
    return dict(
        strategy=label, start=start, method=method, max_iter=max_iter, tol=f"{tol:g}", lr=f"{lr:g}", chunk=batch_size,
        mean_iter=float(result.n_iter.float().mean()), unconverged_pct=100 * float((~result.converged).float().mean()),
        evals=COUNT.rows / len(X), loss=mean_loss(model.decoder_, X, result.latents), seconds=seconds,
    )


def inference_benchmark(model, X_test, args):
    reference = run(model, X_test, "reference: Adam to convergence", "zeros", "adam", args.reference_steps, 1e-7, 0.1, 256)
    print(f"reference loss {reference['loss']:.3f} in {reference['seconds']:.1f} s", flush=True)
    rows = [reference]
    for spec in STRATEGIES:
        rows.append(run(model, X_test, *spec))
        print({k: rows[-1][k] for k in ("strategy", "start", "max_iter", "tol", "loss", "seconds")}, flush=True)
    # What transform does at the estimator's defaults (whatever they are),
    # and with the settings recommended from the table.
    fitted = model.get_params()
    tol_name = "inference_tol" if "inference_tol" in fitted else "tol"
    for label, params in [
        ("transform() at the defaults", dict(init=ConvAutoDecoder("mnist").init)),
        ("transform(), inference_tol=1e-4", dict(init=ConvAutoDecoder("mnist").init, **{tol_name: 1e-4})),
    ]:
        model.set_params(**params)
        with COUNT():
            begin = time.perf_counter()
            Z = model.transform(X_test)
            seconds = time.perf_counter() - begin
        rows.append(dict(strategy=label, start=model.init, loss=mean_loss(model.decoder_, X_test, Z),
                         evals=COUNT.rows / len(X_test), seconds=seconds))
        model.set_params(**{k: fitted[k] for k in params})
    # One pass of the amortised encoder over the test set, for scale.
    begin = time.perf_counter()
    Z = torch.cat([encode(model.encoder_, x, None) for x in torch.as_tensor(X_test).split(256)])
    rows.append(dict(strategy="encoder pass only", start="encoder", loss=mean_loss(model.decoder_, X_test, Z),
                     seconds=time.perf_counter() - begin))
    # The reference once more, last: the machine's load may drift during the run.
    again = run(model, X_test, "reference (rerun)", "zeros", "adam", args.reference_steps, 1e-7, 0.1, 256)
    rows.append(again)
    reference_seconds = 0.5 * (reference["seconds"] + again["seconds"])
    for row in rows:
        row["excess_%"] = 100 * (row["loss"] / reference["loss"] - 1)
        row["speedup"] = reference_seconds / row["seconds"]
        if row.get("evals"):
            row["evals_speedup"] = reference["evals"] / row["evals"]
    columns = ["strategy", "start", "method", "max_iter", "tol", "lr", "chunk", "mean_iter", "unconverged_pct",
               "loss", "excess_%", "evals", "evals_speedup", "seconds", "speedup"]
    print(table(rows, columns, ".3f"))
    return rows


def float32_benchmark(model, X_test):
    """Largest relative row differences of transform in float32."""

    def rel(a, b):
        return float((np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)).max())

    X32 = X_test.astype(np.float32)
    whole = model.set_params(inference_batch_size=256).transform(X32)
    chunk7 = model.set_params(inference_batch_size=7).transform(X32)
    subset = model.set_params(inference_batch_size=256).transform(X32[::3])
    rows = [
        dict(comparison="inference_batch_size 7 vs 256", max_rel_row_diff=rel(whole, chunk7)),
        dict(comparison="every third row alone vs whole set", max_rel_row_diff=rel(whole[::3], subset)),
    ]
    print(table(rows, ["comparison", "max_rel_row_diff"], ".2e"))
    return rows


def impute_benchmark(X_train, X_test, args):
    from sklearn.base import clone
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    model = ConvAutoDecoder("mnist", max_iter=args.epochs, device="cpu", random_state=args.seed)
    rng = np.random.RandomState(args.seed)
    square = np.zeros((28, 28), dtype=bool)
    square[7:21, 7:21] = True
    masks = {"50% at random": rng.rand(*X_test.shape) < 0.5,
             "centred 14x14 square": np.broadcast_to(square.ravel(), X_test.shape)}
    fills = {}
    for name, imputer in {
        "AutoDecoderImputer(ConvAutoDecoder)": AutoDecoderImputer(model),
        "SimpleImputer(mean)": SimpleImputer(),
        "KNNImputer(5)": KNNImputer(n_neighbors=5),
        "IterativeImputer(n_nearest_features=20, max_iter=3)": IterativeImputer(
            n_nearest_features=20, max_iter=3, min_value=0, max_value=1, random_state=args.seed),
    }.items():
        fills[name] = clone(imputer).fit(X_train).transform
    rows = []
    for mask_name, mask in masks.items():
        X_masked = np.where(mask, np.nan, X_test)
        for name, fill in fills.items():
            begin = time.perf_counter()
            X_filled = fill(X_masked)
            rows.append(dict(mask=mask_name, imputer=name, seconds=time.perf_counter() - begin,
                             rmse=float(np.sqrt(np.mean((X_filled[mask] - X_test[mask]) ** 2)))))
    print(table(rows, ["mask", "imputer", "rmse", "seconds"], ".4f"))
    return rows


def plot(rows, data="mnist"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows[1:]:
        if "method" not in row or row["strategy"].startswith("reference"):
            continue
        marker = {"adam": "s", "lbfgs": "o", "lm": "^"}[row["method"]]
        ax.scatter(row["speedup"], max(row["excess_%"], 1e-3), marker=marker, label=f"{row['strategy']}, {row['start']}, "
                   f"{row['max_iter']} it, tol {row['tol']}, chunk {row['chunk']}")
    ax.axhline(0.2, color="grey", ls="--", lw=0.8)
    ax.axvline(10, color="grey", ls=":", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="speedup over Adam run to convergence",
           ylabel="test loss above the reference (%)", title="Latent inference (ConvAutoDecoder, mnist preset)")
    ax.legend(fontsize=6)
    save(fig, "inference_speed" if data == "mnist" else f"inference_speed_{Path(data).name}", rows)


def main():
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(threads=1)
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    p.add_argument("--encoder-epochs", type=int, default=20)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=500, help="test digits (of the last 2,000)")
    p.add_argument("--reference-steps", type=int, default=1000)
    p.add_argument("--impute", action="store_true", help="also run the imputation comparison")
    p.add_argument("--data", default="mnist", help="'mnist' (the mnist10k subset), another image set of "
                   f"benchmarks/_images.py {IMAGE_SETS[1:]}, or a folder of mnist10k IDX files")
    args = p.parse_args()
    setup(args)
    print(f"torch threads: {torch.get_num_threads()}; data: {args.data}")
    if args.data in IMAGE_SETS[1:]:
        X_train, _, X_test, _ = load_images(args.data, args.n_train, args.n_test)
    else:
        folder = DATA if args.data == "mnist" else Path(args.data)
        X, _ = load_mnist(folder / "mnist10k-images-idx3-ubyte.gz")
        X_train, X_test = X[: args.n_train], X[-2000:][: args.n_test]
    print(f"{len(X_train)} training / {len(X_test)} test images")

    params = dict(max_iter=args.epochs, device="cpu", random_state=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        begin = time.perf_counter()
        ConvAutoDecoder("mnist", init="zeros", **params).fit(X_train)
        fit_zeros = time.perf_counter() - begin
        begin = time.perf_counter()
        model = ConvAutoDecoder("mnist", init="encoder", encoder_max_iter=args.encoder_epochs, **params).fit(X_train)
        fit_encoder = time.perf_counter() - begin
    print(f"fit: {fit_zeros:.1f} s with init='zeros' ({args.epochs} epochs on {args.n_train} digits), "
          f"{fit_encoder:.1f} s with init='encoder' ({args.encoder_epochs} encoder epochs): the encoder costs "
          f"{fit_encoder - fit_zeros:.1f} s, {100 * (fit_encoder / fit_zeros - 1):.0f}% of the fit", flush=True)

    rows = inference_benchmark(model, X_test, args)
    model.set_params(init=ConvAutoDecoder("mnist").init)  # transform as a user gets it
    f32 = float32_benchmark(model, X_test)
    plot(rows, args.data)
    import pandas as pd

    name = "inference_float32" if args.data == "mnist" else f"inference_float32_{Path(args.data).name}"
    pd.DataFrame(f32).to_csv(REPO / "benchmarks" / "results" / f"{name}.csv", index=False)
    if args.impute:
        impute_benchmark(X_train, X_test, args)


if __name__ == "__main__":
    main()
