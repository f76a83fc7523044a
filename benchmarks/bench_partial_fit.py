"""partial_fit over chunks against fit, at equal epochs, on the MNIST subset.

An ``AutoDecoder`` with a small MLP decoder is trained on the first
``--n-train`` images of ``../shared/data/mnist10k`` in two ways, from the
same seed:

* ``fit`` for ``--epochs`` epochs (no early stopping, no convergence stop);
* ``--epochs`` passes of ``partial_fit`` over the training images cut into
  chunks of ``--chunk`` rows (one epoch over each chunk per call): the same
  number of epochs over the data, each chunk's latents inferred afresh at
  each call, only the decoder kept.

Both are scored on the last ``--n-test`` images (latents inferred with the
decoder frozen); the table gives their test reconstruction MSE, the ratio
partial_fit / fit (goal: within 10%) and the wall times, on one thread.

Usage::

    python benchmarks/bench_partial_fit.py [--epochs 10] [--chunk 1000]
"""

import time
import warnings
from pathlib import Path

import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder.datasets import load_mnist

from _common import parser

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(threads=1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mnist10k")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, _ = load_mnist(args.data / "mnist10k-images-idx3-ubyte.gz")
    X_train, X_test = X[: args.n_train], X[-args.n_test :]
    params = dict(
        n_components=16, hidden_layer_sizes=(64,), batch_size=128, tol=0.0,
        n_jobs=args.threads, device="cpu", random_state=args.seed,
    )
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); train {X_train.shape}, test {X_test.shape}; "
        f"{args.epochs} epochs; chunks of {args.chunk} rows"
    )
    rows = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: every epoch runs, by design
        full = AutoDecoder(max_iter=args.epochs, **params).fit(X_train)
    rows.append(("fit", full, time.perf_counter() - start))
    streamed = AutoDecoder(**params)
    start = time.perf_counter()
    for _ in range(args.epochs):
        for i in range(0, len(X_train), args.chunk):
            streamed.partial_fit(X_train[i : i + args.chunk])
    rows.append((f"partial_fit x {args.epochs} passes", streamed, time.perf_counter() - start))
    results = []
    for name, model, seconds in rows:
        start = time.perf_counter()
        mse = -model.score(X_test)
        results.append((name, mse, seconds, time.perf_counter() - start))
    reference = results[0][1]
    print("\n| training | test MSE | ratio to fit | train s | score s |")
    print("|---|---|---|---|---|")
    for name, mse, seconds, score_seconds in results:
        print(f"| {name} | {mse:.5f} | {mse / reference:.3f} | {seconds:.1f} | {score_seconds:.1f} |")


if __name__ == "__main__":
    main()
