"""Data-parallel fit (torchrun, gloo) against one process: the same optimisation at any world size.

scikit-learn's digits (pixels / 16), 1,500 training rows, 297 test rows,
``batch_size=64`` (the global batch), ``max_iter=60``. The 1-process fit
runs here; the k-process fit runs under ``torch.distributed.run`` with
gloo on the CPU, one torch thread per process. Prints the test MSEs, their
ratio, and whether the ranks' decoders are bit-identical.

Usage: python benchmarks/bench_distributed.py [--nproc 2] [--threads 1]
"""

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, parser  # noqa: E402

PARAMS = dict(n_components=10, batch_size=64, max_iter=60, random_state=0, device="cpu")


def digits():
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    order = np.random.RandomState(0).permutation(len(X))
    return X[order[:1500]], X[order[1500:]]


def test_mse(model, X_test):
    return float(np.mean((model.inverse_transform(model.transform(X_test)) - X_test) ** 2))


def worker(out):
    import torch.distributed as dist

    from sklearn_autodecoder import AutoDecoder

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    X_train, X_test = digits()
    start = time.perf_counter()
    model = AutoDecoder(**PARAMS).fit(X_train)
    seconds = time.perf_counter() - start
    torch.save(model.decoder_.state_dict(), Path(out) / f"decoder_{rank}.pt")
    result = {"test_mse": test_mse(model, X_test), "seconds": seconds, "n_iter": model.n_iter_}
    (Path(out) / f"result_{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--worker", help="(internal) output folder of a torchrun worker")
    args = p.parse_args()
    torch.set_num_threads(1 if args.worker else args.threads)
    if args.worker:
        warnings.simplefilter("ignore")
        return worker(args.worker)
    from sklearn_autodecoder import AutoDecoder

    warnings.simplefilter("ignore")
    X_train, X_test = digits()
    start = time.perf_counter()
    single = AutoDecoder(**PARAMS).fit(X_train)
    single_seconds = time.perf_counter() - start
    single_mse = test_mse(single, X_test)
    out = REPO / "benchmarks" / "results" / "distributed"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           __file__, "--worker", str(out)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    results = [json.loads((out / f"result_{r}.json").read_text()) for r in range(args.nproc)]
    decoders = [torch.load(out / f"decoder_{r}.pt", weights_only=True) for r in range(args.nproc)]
    identical = all(torch.equal(d[k], decoders[0][k]) for d in decoders for k in d)
    print(f"digits 1500/297 rows, {PARAMS}; threads: {args.threads} (1 process), 1 per rank (gloo)")
    print("| processes | test MSE | n_iter | fit s |")
    print("|---|---|---|---|")
    print(f"| 1 | {single_mse:.5f} | {single.n_iter_} | {single_seconds:.1f} |")
    r = results[0]
    print(f"| {args.nproc} | {r['test_mse']:.5f} | {r['n_iter']} | {r['seconds']:.1f} |")
    print(f"ratio {args.nproc}-process / 1-process test MSE: {r['test_mse'] / single_mse:.4f}; "
          f"decoders bit-identical across ranks: {identical}")


if __name__ == "__main__":
    main()
