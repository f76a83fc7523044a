"""Count data: negative-binomial auto-decoders against PCA on log-normalised counts.

1. Quality and time on simulated counts
   (:func:`~sklearn_autodecoder.datasets.make_count_data`: NB counts, 5
   groups, a 10-dimensional log-linear latent model, library sizes with a
   log-spread of 0.8), given as a sparse CSR matrix, 80% of the cells for
   fitting, 20% held out. For each ``n_components``:

   * PCA and TruncatedSVD on log1p-normalised counts (scanpy's convention:
     each cell scaled to 10,000 counts, then ``log1p``);
   * GLM-PCA-style linear decoders, ``AutoDecoder(hidden_layer_sizes=(),
     loss="poisson")`` and ``loss="negative_binomial"``;
   * the NB auto-decoder with an MLP decoder (one hidden layer of 128);
   * two oracles, the ceiling of any method: kNN on each cell's MAP latent
     under the generating model itself (true weights, baseline, dispersions;
     what remains is the counts' noise), and on the true latents.

   Columns: fit and transform (held-out cells) time; held-out
   log-likelihood per cell at the inferred latent (``score`` times the
   number of genes: Poisson or NB, each model's own); the Laplace marginal
   log-likelihood per cell (``score_samples``); the kNN accuracy (k=15) of
   the known groups, a kNN classifier fitted on the training cells' latents
   (``embedding_``, PCA scores) and scored on the held-out cells' latents.
2. Peak memory of the sparse path, each stage (fit, transform, score) in
   its own process on a CSR matrix of random counts (a linear NB decoder, 8
   components, one epoch, 3 inference steps): peak RSS above the RSS with
   the matrix loaded (the goal: within 512 MiB plus the output), with
   glibc's default allocator and with allocations above 1 MiB mapped on
   their own (``MALLOC_MMAP_THRESHOLD_``), which shows how much of the peak
   is heap fragmentation rather than memory in use.

Usage::

    python benchmarks/bench_counts.py [--threads 1] [--cells 2000,20000] [--genes 2000]
        [--components 3,10] [--max-iter 60] [--memory 100000x20000] [--density 0.05]
    python benchmarks/bench_counts.py --quick   # 2,000 cells; memory on 20,000 x 20,000

Peak RSS is the kernel's high-water mark (VmHWM), reset after the matrix is
built through ``/proc/self/clear_refs`` (Linux).
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parser, proc_status, setup, table  # noqa: E402

MIB = 2**20
STAGES = ("fit", "transform", "score")
HELD_OUT = 0.2


def log1p_normalised(X, target=1e4):
    """scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p``, kept sparse."""
    totals = np.asarray(X.sum(axis=1)).ravel()
    scaled = X.multiply((target / totals)[:, None]).tocsr()
    scaled.data = np.log1p(scaled.data)
    return scaled


def knn_accuracy(Z_train, y_train, Z_test, y_test):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(15).fit(Z_train, y_train).score(Z_test, y_test)


def true_decoder_latents(X, params, chunk=2048):
    """Each cell's MAP latent under the generating model itself (an oracle: the best a
    decoder can do; what is left is the counts' noise), with a N(0, I) prior."""
    import torch

    W, b, theta = (torch.as_tensor(params[k], dtype=torch.float64) for k in ("weights", "baseline", "dispersion"))
    out = []
    for start in range(0, X.shape[0], chunk):
        x = torch.as_tensor(X[start : start + chunk].toarray(), dtype=torch.float64)
        total = x.sum(1, keepdim=True)
        z = torch.zeros(len(x), W.shape[0], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([z], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            mu = total * torch.softmax(b + z @ W, dim=1)
            log_lik = x * torch.log(mu / (mu + theta)) + theta * torch.log(theta / (mu + theta))
            loss = -log_lik.sum() + 0.5 * (z * z).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        out.append(z.detach().numpy())
    return np.concatenate(out)


def quality_rows(n_cells, args):
    from sklearn.decomposition import PCA, TruncatedSVD

    from sklearn_autodecoder import AutoDecoder
    from sklearn_autodecoder.datasets import make_count_data

    n_total = int(round(n_cells / (1 - HELD_OUT)))
    X, y, truth = make_count_data(n_total, args.genes, n_groups=5, n_components=10, library_size=500,
                                  library_size_spread=0.8, group_separation=4.0, sparse=True,
                                  return_params=True, random_state=args.seed)
    train, test = slice(0, n_cells), slice(n_cells, n_total)
    L = log1p_normalised(X)
    start = time.perf_counter()
    Z = true_decoder_latents(X, truth)
    rows = [{"cells": n_cells, "n_components": 10, "method": "oracle: MAP under the true decoder",
             "transform s": time.perf_counter() - start,
             "kNN accuracy": knn_accuracy(Z[train], y[train], Z[test], y[test])},
            {"cells": n_cells, "n_components": 10, "method": "oracle: the true latents",
             "kNN accuracy": knn_accuracy(truth["latent"][train], y[train], truth["latent"][test], y[test])}]
    for k in args.components:
        base = {"cells": n_cells, "n_components": k}
        for name, make in (("PCA on log1p", lambda: PCA(k, random_state=args.seed)),
                           ("TruncatedSVD on log1p", lambda: TruncatedSVD(k, random_state=args.seed))):
            start = time.perf_counter()
            model = make()
            # PCA centres, so it takes the (small, 2,000-gene) dense matrix; SVD stays sparse.
            data = L.toarray() if name.startswith("PCA") else L
            Z_train = model.fit_transform(data[train])
            fit = time.perf_counter() - start
            start = time.perf_counter()
            Z_test = model.transform(data[test])
            rows.append({**base, "method": name, "fit s": fit, "transform s": time.perf_counter() - start,
                         "kNN accuracy": knn_accuracy(Z_train, y[train], Z_test, y[test])})
        for name, params in (
            ("Poisson linear (GLM-PCA)", dict(loss="poisson", hidden_layer_sizes=())),
            ("NB linear (GLM-PCA)", dict(loss="negative_binomial", hidden_layer_sizes=())),
            ("NB auto-decoder, MLP (128)", dict(loss="negative_binomial", hidden_layer_sizes=(128,))),
        ):
            model = AutoDecoder(n_components=k, max_iter=args.max_iter, batch_size=128, n_jobs=args.threads,
                                random_state=args.seed, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: the budget is fixed
                start = time.perf_counter()
                model.fit(X[train])
                fit = time.perf_counter() - start
                start = time.perf_counter()
                Z_test = model.transform(X[test])
                transform = time.perf_counter() - start
                conditional = model.score(X[test]) * args.genes
                marginal = float(np.mean(model.score_samples(X[test])))
            rows.append({**base, "method": name, "fit s": fit, "transform s": transform,
                         "held-out log-lik. at z* per cell": conditional,
                         "held-out Laplace log p(x) per cell": marginal,
                         "kNN accuracy": knn_accuracy(model.embedding_, y[train], Z_test, y[test]),
                         "epochs": model.n_iter_})
    return rows


# ---- memory of the sparse path, one process per stage --------------------------------


def random_counts(n, d, density, seed):
    """A CSR matrix of counts (1 + Poisson(1) at random positions), built in row chunks."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    parts = []
    step = max(1, 2**24 // d)
    for start in range(0, n, step):
        rows = min(step, n - start)
        mask = rng.random((rows, d), dtype=np.float32) < density
        mask[:, 0] = True  # no empty row
        r, c = np.nonzero(mask)
        values = (1 + rng.poisson(1.0, len(r))).astype(np.float32)
        parts.append(sp.csr_matrix((values, (r, c)), shape=(rows, d)))
    return sp.vstack(parts, format="csr")


def _memory_params():
    return dict(n_components=8, hidden_layer_sizes=(), loss="negative_binomial", max_iter=1, batch_size=256,
                inference_max_iter=3, device="cpu", random_state=0)


def run_stage(args):
    """Child process: one stage on the CSR matrix; prints a JSON line."""
    import torch

    from sklearn_autodecoder import AutoDecoder

    torch.set_num_threads(args.threads)
    n, d = map(int, args.memory.split("x"))
    X = random_counts(n, d, args.density, args.seed)
    model = None
    if args.stage != "fit":
        with open(args.model, "rb") as f:
            model = pickle.load(f)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    base = proc_status("VmRSS")
    start = time.perf_counter()
    out_bytes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.stage == "fit":
            AutoDecoder(**_memory_params()).fit(X)
        elif args.stage == "transform":
            out_bytes = model.transform(X).nbytes
        else:
            model.score(X)
    seconds = time.perf_counter() - start
    stored = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    print(json.dumps({"peak": proc_status("VmHWM") - base, "seconds": seconds, "out": out_bytes, "csr": stored}))


def memory_rows(args, directory):
    from sklearn_autodecoder import AutoDecoder

    n, d = map(int, args.memory.split("x"))
    model_path = Path(directory) / "model.pkl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = random_counts(min(n, 500), d, args.density, args.seed + 1)
        model = AutoDecoder(**_memory_params()).fit(small)
    with open(model_path, "wb") as f:
        pickle.dump(model, f)
    rows = []
    for stage in STAGES:
        results = {}
        # Each stage twice: with glibc's default allocator, whose heap keeps the
        # holes that batch-sized temporaries leave (RSS then grows with the number
        # of batches), and with every allocation above 1 MiB mapped on its own
        # (MALLOC_MMAP_THRESHOLD_): the memory the stage really holds.
        for allocator, env in (("default", {}), ("mmap above 1 MiB", {"MALLOC_MMAP_THRESHOLD_": str(MIB)})):
            out = subprocess.run(
                [sys.executable, __file__, "--stage", stage, "--model", str(model_path), "--memory", args.memory,
                 "--density", str(args.density), "--threads", str(args.threads), "--seed", str(args.seed)],
                capture_output=True, text=True, check=True, env={**os.environ, **env},
            )
            results[allocator] = json.loads(out.stdout.strip().splitlines()[-1])
        result = results["default"]
        rows.append({
            "rows x genes": f"{n:,} x {d:,}",
            "stage": stage,
            "CSR MiB": result["csr"] / MIB,
            "dense float32 MiB": n * d * 4 / MIB,
            "peak RSS above the loaded CSR, MiB": result["peak"] / MIB,
            "same, allocations > 1 MiB mapped, MiB": results["mmap above 1 MiB"]["peak"] / MIB,
            "output MiB": result["out"] / MIB,
            "within 512 MiB + output": "yes" if result["peak"] <= 512 * MIB + result["out"] else "NO",
            "seconds": result["seconds"],
        })
    return rows


def main():
    import argparse

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--cells", default="2000,20000", help="training cells, comma-separated")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--components", default="3,10")
    p.add_argument("--max-iter", type=int, default=60, help="training epochs of the auto-decoders")
    p.add_argument("--memory", default="100000x20000", help="rows x genes of the memory test ('' to skip)")
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--quick", action="store_true", help="2,000 cells; memory on 20,000 x 20,000")
    p.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.set_defaults(threads=1)
    args = p.parse_args()
    if args.quick:
        args.cells, args.memory = "2000", "20000x20000"
    if args.stage:
        return run_stage(args)
    setup(args)
    args.components = [int(k) for k in args.components.split(",")]
    print(f"torch threads: {args.threads}; auto-decoders: {args.max_iter} epochs, batch size 128")
    rows = []
    for n_cells in (int(c) for c in args.cells.split(",") if c):
        rows += quality_rows(n_cells, args)
        print(table(rows, ["cells", "n_components", "method", "fit s", "transform s",
                           "held-out log-lik. at z* per cell", "held-out Laplace log p(x) per cell",
                           "kNN accuracy", "epochs"], floatfmt=".3f"), flush=True)
    if args.memory:
        with tempfile.TemporaryDirectory() as directory:
            memory = memory_rows(args, directory)
        print()
        print(table(memory, list(memory[0]), floatfmt=".1f"))


if __name__ == "__main__":
    main()
