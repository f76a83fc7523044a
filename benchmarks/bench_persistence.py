"""Model files of save/load against pickle: size and time.

Fits ``ConvAutoDecoder("mnist")`` for one epoch on random images (the file
size and the times do not depend on the training), then times the best of
five ``save``/``load`` and ``pickle.dumps``/``pickle.loads`` calls.

Run: python benchmarks/bench_persistence.py [--threads 1] [--samples 2000]
"""

import os
import pickle
import tempfile
import time
import warnings

import numpy as np

from _common import parser, setup, table
from sklearn_autodecoder import ConvAutoDecoder, load
from sklearn_autodecoder.presets import n_parameters


def best_time(function, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    p = parser(__doc__)
    p.add_argument("--samples", type=int, default=2000)
    args = p.parse_args()
    setup(args)
    X = np.random.RandomState(args.seed).rand(args.samples, 784)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the load warning of a one-epoch fit
        model = ConvAutoDecoder("mnist", max_iter=1, device="cpu", random_state=args.seed).fit(X)
    print(f"ConvAutoDecoder('mnist'): {n_parameters(model.decoder_)} decoder weights, "
          f"embedding_ {model.embedding_.shape} {model.embedding_.dtype}, {args.threads} thread(s)")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.zip")
        write = best_time(lambda: model.save(path))
        read = best_time(lambda: load(path))
        rows = [{"method": "save/load", "bytes": os.path.getsize(path), "write (s)": write, "read (s)": read}]
    blob = pickle.dumps(model)
    rows.append({
        "method": "pickle",
        "bytes": len(blob),
        "write (s)": best_time(lambda: pickle.dumps(model)),
        "read (s)": best_time(lambda: pickle.loads(blob)),
    })
    print(table(rows, ["method", "bytes", "write (s)", "read (s)"], floatfmt=".4f"))


if __name__ == "__main__":
    main()
