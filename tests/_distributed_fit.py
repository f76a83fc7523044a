"""Run by tests/test_distributed.py under torchrun: one data-parallel fit per rank.

Usage: torchrun --nproc_per_node=2 _distributed_fit.py DATA.npy OUT_DIR
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


def main(data_path, out_dir):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    X = np.load(data_path)
    X_train, X_test = X[:300], X[300:]
    ad = AutoDecoder(**PARAMS).fit(X_train)
    out = Path(out_dir)
    np.save(out / f"embedding_{rank}.npy", ad.embedding_)
    torch.save(ad.decoder_.state_dict(), out / f"decoder_{rank}.pt")
    mse = float(np.mean((ad.inverse_transform(ad.transform(X_test)) - X_test) ** 2))
    (out / f"result_{rank}.json").write_text(json.dumps({"test_mse": mse, "n_iter": ad.n_iter_,
                                                         "loss_curve": ad.loss_curve_}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
