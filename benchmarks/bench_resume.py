"""kill -9 at random points of a fit with a Checkpoint, then resume: bit-identical?

Fits an AutoDecoder (early stopping on, the default for small MLP fits) on
random low-rank data in a subprocess that saves a Checkpoint every epoch,
kills it with SIGKILL a random delay after a random epoch (seeded: during an
epoch or during a save), resumes the fit in this process from the checkpoint
left, and compares the final ``embedding_``, decoder weights, loss curve and
``n_iter_`` with an uninterrupted fit. Also reports the checkpoint's size and
the time one save takes.

Run: python benchmarks/bench_resume.py [--threads 1] [--kills 5] [--seed 0]
"""

import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from _common import REPO, parser, setup, table

sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout's package and test helpers
from test_checkpoint import _fitted_state, kill_during_fit

from sklearn_autodecoder import AutoDecoder, Checkpoint, _checkpoint


def same(a, b):
    a, b = _fitted_state(a), _fitted_state(b)
    for key in a:
        if isinstance(a[key], np.ndarray):
            if not np.array_equal(a[key], b[key]):
                return False
        elif isinstance(a[key], dict):
            if not all(torch.equal(a[key][k], b[key][k]) for k in a[key]):
                return False
        elif a[key] != b[key]:
            return False
    return True


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    setup(args)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the killed subprocesses' threads
    warnings.simplefilter("ignore")
    rng = np.random.RandomState(args.seed)
    X = rng.randn(args.samples, 5) @ rng.randn(5, 30) + 0.1 * rng.randn(args.samples, 30)
    params = dict(n_components=5, hidden_layer_sizes=(64,), max_iter=args.epochs, early_stopping=True,
                  n_iter_no_change=args.epochs, device="cpu", random_state=0, n_jobs=args.threads)
    reference = AutoDecoder(**params).fit(X)  # (also the warm-up of the timings)
    start = time.perf_counter()
    AutoDecoder(**params).fit(X)
    fit_time = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.save(folder / "X.npy", X)
        for trial in range(args.kills):
            checkpoint = folder / f"{trial}.ckpt"
            kill_epoch = int(rng.randint(1, args.epochs - 1))
            delay = float(rng.uniform(0, fit_time / args.epochs))
            last = kill_during_fit(folder / "X.npy", checkpoint, dict(params, every=1), kill_epoch, delay)
            saved_epoch = len(json.loads(zipfile.ZipFile(checkpoint).read("checkpoint.json"))["history"])
            start = time.perf_counter()
            resumed = AutoDecoder(**params, callbacks=[Checkpoint(checkpoint, every=1)]).fit(X)
            rows.append({
                "trial": trial,
                "killed after epoch": last,
                "delay (ms)": 1000 * delay,
                "checkpoint epoch": saved_epoch,
                "resume (s)": time.perf_counter() - start,
                "n_iter_": resumed.n_iter_,
                "bit-identical": same(resumed, reference),
            })
        path = folder / "size.ckpt"
        save, save_times = _checkpoint.Checkpoint._save, []

        def timed_save(self, net, stopped):  # the time of each save (capture and write)
            start = time.perf_counter()
            save(self, net, stopped)
            save_times.append(time.perf_counter() - start)

        _checkpoint.Checkpoint._save = timed_save
        try:
            AutoDecoder(**params, callbacks=[Checkpoint(path, every=1)]).fit(X)
        finally:
            _checkpoint.Checkpoint._save = save
        size = path.stat().st_size
    print(f"AutoDecoder on {args.samples} x 30, {args.epochs} epochs, early stopping on; "
          f"torch threads: {args.threads}; uninterrupted fit {fit_time:.2f} s"
          f"; checkpoint {size / 1024:.0f} KiB, {1000 * np.median(save_times):.1f} ms per save (median "
          f"of {len(save_times)})")
    print(table(rows, ["trial", "killed after epoch", "delay (ms)", "checkpoint epoch", "resume (s)",
                       "n_iter_", "bit-identical"], floatfmt=".2f"))
    print(f"bit-identical: {sum(r['bit-identical'] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
