"""Run by tests/test_robustness.py under torchrun: ranks that disagree or fail alone.

Usage: torchrun --nproc_per_node=2 _distributed_checks.py OUT_DIR

Each case of ``CASES`` gives rank 0 and rank 1 their own parameters or data;
every rank records what its ``fit`` (or ``partial_fit``) raised, if anything.
A short process-group timeout turns a rank left waiting into a quick failure.
"""

import json
import sys
import traceback
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch.distributed as dist

from sklearn_autodecoder import AutoDecoder

BASE = dict(n_components=2, hidden_layer_sizes=(4,), max_iter=2, early_stopping=False, device="cpu",
            random_state=0, n_jobs=1)


def cases(rank, X):
    bad = X.copy()
    bad[3, 1] = np.inf
    return {
        # Settings that must agree: the ranks would otherwise train together silently.
        "loss": lambda: AutoDecoder(**dict(BASE, loss="mse" if rank == 0 else "bce")).fit(X),
        "two_settings": lambda: AutoDecoder(**dict(BASE, max_iter=2 + rank, latent_l2=0.1 * rank)).fit(X),
        "shape": lambda: AutoDecoder(**BASE).fit(X[: 30 + rank]),
        # A failure on rank 1 only, before any collective.
        "bad_data": lambda: AutoDecoder(**BASE).fit(bad if rank == 1 else X),
        "bad_parameter": lambda: AutoDecoder(**dict(BASE, learning_rate=-1.0 if rank == 1 else 1e-3)).fit(X),
        "partial_fit_width": lambda: AutoDecoder(**BASE).partial_fit(X).partial_fit(X[:, : 6 - rank]),
        # Rank-local settings (where to log, threads, seed) may differ.
        "rank_local": lambda: AutoDecoder(**dict(BASE, verbose=1 - rank, n_jobs=1 + rank, random_state=rank)).fit(X),
    }


def main(out_dir):
    dist.init_process_group("gloo", timeout=timedelta(seconds=15))
    rank = dist.get_rank()
    X = np.random.RandomState(0).rand(40, 6)
    results = {}
    for name, run in cases(rank, X).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = run()
            results[name] = {"error": None, "embedding": model.embedding_.tolist()}
        except Exception as error:  # recorded for the test to check
            results[name] = {"error": type(error).__name__, "message": str(error),
                             "trace": traceback.format_exc()[-1500:]}
    (Path(out_dir) / f"rank_{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
