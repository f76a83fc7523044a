"""Run by tests/test_distributed.py under torchrun: data-parallel fits, one set per rank.

Usage: torchrun --nproc_per_node=2 _distributed_fit.py DATA.npy OUT_DIR

For each case of ``CASES`` (training rows, estimator parameters) every rank
fits on ``X[:n_rows]`` and saves its decoder, prior, embedding and results,
so that the test compares the ranks and the 1-process fit.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from sklearn_autodecoder import AutoDecoder

PARAMS = dict(n_components=3, hidden_layer_sizes=(16,), learning_rate=1e-2, max_iter=400, early_stopping=True,
              n_iter_no_change=10, tol=1e-3, inference_max_iter=100, device="cpu", random_state=0)
SHORT = dict(PARAMS, max_iter=6, early_stopping=False, batch_size=64)
# (name, training rows, parameters): rows that do and do not divide among ranks and batches,
# the mixture prior, early stopping, and fewer rows than ranks.
CASES = [
    ("main", 300, PARAMS),
    ("256", 256, SHORT),
    ("257_gmm", 257, dict(SHORT, latent_prior="gmm", n_prior_components=2)),
    ("301_gmm_es", 301, dict(SHORT, latent_prior="gmm", n_prior_components=2, early_stopping=True,
                             validation_fraction=0.1)),
    ("257_es", 257, dict(SHORT, early_stopping=True, validation_fraction=0.1)),
    # A decoder with batch norm: the ranks normalise over the global batch, as one process.
    ("301_batchnorm", 301, dict(SHORT, decoder="batchnorm")),
    # One training row for two ranks (and one held-out row): rank 1 owns none.
    ("2_es", 2, dict(SHORT, batch_size=4, early_stopping=True, validation_fraction=0.5)),
]


def estimator(params):
    """The case's estimator; ``decoder="batchnorm"`` stands for a decoder with a BatchNorm1d."""
    if params.get("decoder") == "batchnorm":
        with torch.random.fork_rng():  # the same weights in every process, global RNG untouched
            torch.manual_seed(0)
            decoder = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                          torch.nn.Linear(16, 20))
        params = dict(params, decoder=decoder)
    return AutoDecoder(**params)


def main(data_path, out_dir):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    X = np.load(data_path)
    out = Path(out_dir)
    for name, n_rows, params in CASES:
        X_train, X_test = X[:n_rows], X[300:]
        ad = estimator(params).fit(X_train)
        np.save(out / f"{name}_embedding_{rank}.npy", ad.embedding_)
        torch.save(ad.decoder_.state_dict(), out / f"{name}_decoder_{rank}.pt")
        prior = getattr(ad, "prior_", None)
        if prior is not None:
            torch.save(prior.state_dict(), out / f"{name}_prior_{rank}.pt")
        mse = float(np.mean((ad.inverse_transform(ad.transform(X_test)) - X_test) ** 2))
        (out / f"{name}_result_{rank}.json").write_text(
            json.dumps({"test_mse": mse, "n_iter": ad.n_iter_, "loss_curve": ad.loss_curve_})
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
