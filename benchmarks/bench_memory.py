"""Memory and throughput of the out-of-core data path (uint8 memmaps).

1. Peak RSS above the RSS after import, for each stage (fit, transform,
   score, inverse_transform), each in its own process, on uint8 memmaps of
   10,000 / 30,000 / 100,000 rows x 3,072 features and 20,000 x 27,648
   (STL-10's shape), against the memmap's size. The decoder is cheap (linear,
   8 components) and inference short: memory does not depend on them. The
   memmap's own pages count in RSS once read (they are file-backed and the
   kernel may drop them); the goal is at most the memmap's size + 512 MiB.
2. Samples/s of a training epoch (MLP decoder) from a uint8 memmap, from an
   in-memory float32 array, and from a bare torch loop over the same memmap
   with the same model and optimisers.

Usage::

    python benchmarks/bench_memory.py [--threads 1] [--sizes 10000x3072,...] [--dir /tmp]

Peak RSS is the kernel's high-water mark (VmHWM), reset after import through
``/proc/self/clear_refs`` (Linux).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, parser, proc_status, save, setup, table  # noqa: E402

MIB = 2**20
STAGES = ("fit", "transform", "score", "inverse_transform")


def run_stage(args):
    """Child process: one stage on the memmap; prints a JSON line."""
    import pickle

    import torch

    from sklearn_autodecoder import AutoDecoder

    torch.set_num_threads(args.threads)
    n, d = args.rows, args.features
    X = np.memmap(args.path, dtype=np.uint8, mode="r", shape=(n, d))
    model = None
    if args.stage != "fit":
        with open(args.model, "rb") as f:
            model = pickle.load(f)
        Z = np.zeros((n, model.n_components_), dtype=np.float32) if args.stage == "inverse_transform" else None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    base = proc_status("VmRSS")
    start = time.perf_counter()
    out_bytes = 0
    if args.stage == "fit":
        AutoDecoder(**_params()).fit(X)
    elif args.stage == "transform":
        out_bytes = model.transform(X).nbytes
    elif args.stage == "score":
        model.score(X)
    else:
        out_bytes = model.inverse_transform(Z).nbytes
    seconds = time.perf_counter() - start
    print(json.dumps({"peak": proc_status("VmHWM") - base, "seconds": seconds, "out": out_bytes}))


def _params():
    return dict(n_components=8, hidden_layer_sizes=(), max_iter=1, batch_size=256,
                inference_max_iter=3, device="cpu", random_state=0)


def memory_table(args, directory):
    import pickle

    from sklearn_autodecoder import AutoDecoder

    rows = []
    for size in args.sizes.split(","):
        n, d = map(int, size.split("x"))
        path = Path(directory) / f"x_{n}_{d}.u8"
        rng = np.random.RandomState(0)
        X = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n, d))
        for start in range(0, n, 1000):
            X[start : start + 1000] = rng.randint(0, 256, size=(min(1000, n - start), d))
        X.flush()
        del X
        model_path = Path(directory) / "model.pkl"
        small = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, d))[:500]
        with open(model_path, "wb") as f:
            pickle.dump(AutoDecoder(**_params()).fit(small), f)
        size_bytes = n * d
        for stage in STAGES:
            out = subprocess.run(
                [sys.executable, __file__, "--stage", stage, "--path", str(path), "--model", str(model_path),
                 "--rows", str(n), "--features", str(d), "--threads", str(args.threads)],
                capture_output=True, text=True, check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            limit = size_bytes + 512 * MIB + result["out"]
            rows.append({
                "rows x features": f"{n:,} x {d:,}",
                "stage": stage,
                "memmap MiB": size_bytes / MIB,
                "peak RSS above import, MiB": result["peak"] / MIB,
                "x memmap": result["peak"] / size_bytes,
                "output MiB": result["out"] / MIB,
                "within goal": "yes" if result["peak"] <= limit else "NO",
                "seconds": result["seconds"],
            })
        path.unlink()
    return rows


def throughput_table(args, directory, n=10000, d=3072, epochs=2):
    import torch

    from sklearn_autodecoder import AutoDecoder
    from sklearn_autodecoder._sparse_optim import make_latent_optimizer
    from sklearn_autodecoder.nn import LatentTable, MLPDecoder

    path = Path(directory) / "throughput.u8"
    rng = np.random.RandomState(0)
    X = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n, d))
    X[:] = rng.randint(0, 256, size=(n, d))
    X.flush()
    X_map = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, d))
    X_mem = np.asarray(X_map, dtype=np.float32)
    params = dict(n_components=32, hidden_layer_sizes=(256,), batch_size=64, device="cpu", random_state=0)

    def estimator(data):
        model = AutoDecoder(max_iter=epochs, **params).fit(data)
        return min(model.history_[:, "dur"])

    def bare(data):
        gen = torch.Generator().manual_seed(0)
        decoder = MLPDecoder(32, d, (256,))
        table_ = LatentTable(n, 32, init=0.01 * torch.randn(n, 32, generator=gen))
        weights = torch.optim.Adam(decoder.parameters(), lr=1e-3, weight_decay=1e-5)
        latents = make_latent_optimizer(table_.parameters(), "adam", 1e-2, 0.9)
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            order = torch.randperm(n, generator=gen).numpy()
            for i in range(0, n, 64):
                rows = np.sort(order[i : i + 64])
                x = torch.from_numpy(np.asarray(data[rows], dtype=np.float32))
                weights.zero_grad()
                latents.zero_grad()
                index = torch.from_numpy(rows)
                loss = (decoder(table_(index)) - x).pow(2).sum()
                loss.backward()
                weights.step()
                latents.step()
            times.append(time.perf_counter() - start)
        return min(times)

    results = {}
    for _ in range(2):  # interleaved rounds, best of each
        for name, fn, data in (("estimator, uint8 memmap", estimator, X_map),
                               ("estimator, in-memory float32", estimator, X_mem),
                               ("bare torch loop, uint8 memmap", bare, X_map)):
            results[name] = min(results.get(name, np.inf), fn(data))
    path.unlink()
    reference = results["estimator, in-memory float32"]
    return [{"source": name, "s/epoch": s, "samples/s": n / s, "vs in-memory float32": s / reference}
            for name, s in results.items()]


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000x3072,30000x3072,100000x3072,20000x27648")
    p.add_argument("--dir", default=None, help="where the temporary memmaps go")
    p.add_argument("--stage", choices=STAGES, help=argparse_hidden())
    p.add_argument("--path")
    p.add_argument("--model")
    p.add_argument("--rows", type=int)
    p.add_argument("--features", type=int)
    p.set_defaults(threads=1)
    args = p.parse_args()
    if args.stage:
        return run_stage(args)
    setup(args)
    print(f"torch threads: {args.threads}")
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        memory = memory_table(args, directory)
        print(table(memory, list(memory[0]), floatfmt=".2f"))
        speed = throughput_table(args, directory)
        print()
        print(table(speed, list(speed[0]), floatfmt=".3f"))
    _plot(memory)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def _plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = list(dict.fromkeys(r["rows x features"] for r in rows))
    width = 0.2
    for i, stage in enumerate(STAGES):
        values = [next(r["peak RSS above import, MiB"] for r in rows
                       if r["stage"] == stage and r["rows x features"] == label) for label in labels]
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=stage)
    sizes = [next(r["memmap MiB"] for r in rows if r["rows x features"] == label) for label in labels]
    ax.scatter(np.arange(len(labels)) + 1.5 * width, sizes, color="k", marker="_", s=400,
               label="memmap size", zorder=3)
    ax.set_xticks(np.arange(len(labels)) + 1.5 * width, labels)
    ax.set_ylabel("peak RSS above import (MiB)")
    ax.set_title("Out-of-core stages on uint8 memmaps")
    ax.legend(fontsize=8)
    RESULTS.mkdir(exist_ok=True)
    save(fig, "memory", rows)


if __name__ == "__main__":
    main()
