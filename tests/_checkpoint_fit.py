"""Run by tests/test_checkpoint.py and benchmarks/bench_resume.py: a fit with a Checkpoint, to be killed.

Usage: python _checkpoint_fit.py DATA.npy CHECKPOINT PARAMS_JSON

Fits an AutoDecoder with ``Checkpoint(CHECKPOINT, every=1)`` and prints
"epoch k" (flushed) at the end of every epoch, after the checkpoint is
written, so that the caller can ``kill -9`` it at a chosen point.
"""

import json
import sys

import numpy as np
import torch
from skorch.callbacks import Callback

from sklearn_autodecoder import AutoDecoder, Checkpoint


class PrintEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        print(f"epoch {len(net.history)}", flush=True)


def main(data_path, checkpoint, params):
    torch.set_num_threads(1)
    X = np.load(data_path)
    params = json.loads(params)
    every = params.pop("every", 1)
    AutoDecoder(**params, callbacks=[Checkpoint(checkpoint, every=every), PrintEpoch()]).fit(X)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
