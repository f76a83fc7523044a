"""Run by tests/test_checkpoint.py under torchrun: a data-parallel fit crashed, then resumed.

Usage: torchrun --nproc_per_node=2 _distributed_checkpoint.py DATA.npy OUT_DIR

For each case every rank fits once uninterrupted, once with a Checkpoint and a
crash at the end of an epoch (on every rank, as a lost node ends the job),
and once more resumed from that checkpoint; it writes whether the resumed fit
is bit-identical to the uninterrupted one.
"""

import gc
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from _checks import Crash
from sklearn_autodecoder import AutoDecoder, Checkpoint

BASE = dict(n_components=3, hidden_layer_sizes=(16,), learning_rate=1e-2, max_iter=8, batch_size=64,
            inference_max_iter=20, device="cpu", random_state=0)
# (name, training rows, parameters, crash epoch): uneven shards, early stopping (the
# held-out latents and the best snapshot are rank-local too), the mixture prior.
CASES = [
    ("257_es", 257, dict(BASE, early_stopping=True, validation_fraction=0.1, n_iter_no_change=50,
                         inference_method="adam"), 5),
    ("301_gmm", 301, dict(BASE, early_stopping=False, latent_prior="gmm", n_prior_components=2), 3),
]


def main(data_path, out_dir):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    X = np.load(data_path)
    out = Path(out_dir)
    results = {}
    for name, n_rows, params, crash in CASES:
        path = out / f"{name}.ckpt"
        reference = AutoDecoder(**params).fit(X[:n_rows])
        try:
            AutoDecoder(**params, callbacks=[Checkpoint(path, every=2), Crash(crash)]).fit(X[:n_rows])
        except RuntimeError:
            gc.collect()  # the failed fit's DDP wrappers, before the next fit
        resumed = AutoDecoder(**params, callbacks=[Checkpoint(path, every=2)]).fit(X[:n_rows])
        results[name] = {
            "embedding": bool(np.array_equal(resumed.embedding_, reference.embedding_)),
            "decoder": all(
                torch.equal(a, b)
                for a, b in zip(resumed.decoder_.state_dict().values(), reference.decoder_.state_dict().values())
            ),
            "loss_curve": resumed.loss_curve_ == reference.loss_curve_,
            "valid_loss": [r.get("valid_loss") for r in resumed.history_]
            == [r.get("valid_loss") for r in reference.history_],
            "n_iter": [resumed.n_iter_, reference.n_iter_],
        }
    (out / f"result_{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
