"""Torch thread counts: torch's default vs 1 thread vs ``resolve_n_threads``.

Two workloads, each timed in a fresh subprocess whose environment has no
``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (so "torch default" is what torch
picks on import: one thread per physical core):

* ``demo``: the getting-started demo's auto-decoder (``AutoDecoder(8,
  hidden_layer_sizes=(128,))`` fitted on 75% of ``load_digits().data / 16``,
  then ``transform`` and ``inverse_transform`` of the other 25%);
* ``mnist``: one epoch of ``ConvAutoDecoder("mnist")`` on the first
  ``--mnist-samples`` images of the shared MNIST subset.

and three thread settings: torch's default, ``torch_threads(1)`` and
``torch_threads(resolve_n_threads(None, flops=...))`` around the calls (the
estimators do not apply it yet, so the benchmark does). Each runs on the
machine as it is ("idle": nothing of the benchmark's own besides the timed
process; other users' processes are counted in the "other runnable"
column, the runnable threads ``resolve_n_threads`` saw) and with a
``python -c "while True: pass"`` process occupying one core ("busy").
Timings cover the estimator calls only, not the data loading.

``--sweep`` also times 20 training steps (forward, backward, Adam) of MLP
and conv decoders of growing size at 1 and 2 threads, in this process, to
show where a second thread starts to pay: the basis of
``_threads.FLOPS_PER_THREAD``.

Run: python benchmarks/bench_threads.py [--demo-max-iter 150] [--mnist-samples 2000]
     [--repeats 1] [--sweep] [--data ../shared/data/mnist10k]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SETTINGS = ("torch default", "1 thread", "resolve_n_threads")


# ---- one timing, run in a subprocess ---------------------------------------------


def _flops(workload, args):
    """Multiply-adds of one training batch's forward pass, on the meta device (no RNG)."""
    import torch

    from sklearn_autodecoder._threads import forward_flops
    from sklearn_autodecoder.nn import MLPDecoder
    from sklearn_autodecoder.presets import PRESETS, make_decoder

    with torch.device("meta"):
        if workload == "demo":
            decoder, x, batch = MLPDecoder(8, 64, (128,)), torch.zeros(1, 8), 64
        else:
            spec = PRESETS["mnist"]
            decoder, x, batch = make_decoder(spec), torch.zeros(1, 20), spec.defaults["batch_size"]
        return forward_flops(decoder, x) * batch


def _demo(args):
    """The timed call of the demo workload (data loaded beforehand)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from sklearn_autodecoder import AutoDecoder

    X = load_digits().data / 16.0
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

    def run():
        ad = AutoDecoder(8, hidden_layer_sizes=(128,), max_iter=args.demo_max_iter, random_state=0)
        ad.fit(X_train)
        ad.inverse_transform(ad.transform(X_test))

    return run


def _mnist(args):
    """The timed call of the MNIST workload (data loaded beforehand)."""
    from sklearn_autodecoder import ConvAutoDecoder
    from sklearn_autodecoder.datasets import load_mnist

    X, _ = load_mnist(Path(args.data) / "mnist10k-images-idx3-ubyte.gz")
    X = X[: args.mnist_samples]

    def run():
        ConvAutoDecoder("mnist", max_iter=1, random_state=0, device="cpu").fit(X)

    return run


def worker(args):
    from sklearn_autodecoder._threads import _busy_threads, resolve_n_threads, torch_threads

    run = {"demo": _demo, "mnist": _mnist}[args.worker](args)
    busy = _busy_threads()  # what resolve_n_threads sees
    n_threads = {
        "torch default": None,
        "1 thread": 1,
        "resolve_n_threads": resolve_n_threads(None, flops=_flops(args.worker, args)),
    }[args.setting]
    with torch_threads(n_threads) as used:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": used, "busy": busy}))


def time_in_subprocess(workload, setting, args):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, __file__, "--worker", workload, "--setting", setting,
        "--demo-max-iter", str(args.demo_max_iter), "--mnist-samples", str(args.mnist_samples),
        "--data", str(args.data),
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{workload}, {setting} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the sweep: where does a second thread pay? -----------------------------------


def sweep(steps=20):
    import torch

    from sklearn_autodecoder._threads import forward_flops, torch_threads
    from sklearn_autodecoder.nn import MLPDecoder
    from sklearn_autodecoder.presets import make_decoder

    cases = [(f"MLP 8-{h}-{h}-64, batch 64", lambda h=h: MLPDecoder(8, 64, (h, h)), 8, 64)
             for h in (64, 256, 512, 1024, 2048)]
    cases += [(f"mnist conv, batch {b}", lambda: make_decoder("mnist"), 20, b)
              for b in (4, 16, 128)]
    rows = []
    generator = torch.Generator().manual_seed(0)
    for name, build, m, batch in cases:
        with torch.random.fork_rng():
            decoder = build()
        z = torch.randn(batch, m, generator=generator)
        target = torch.rand(decoder(z[:1]).shape[1:], generator=generator)
        optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)
        times = {}
        for n in (1, 2, 1, 2):  # interleaved, best of two
            with torch_threads(n):
                start = time.perf_counter()
                for _ in range(steps):
                    optimizer.zero_grad()
                    ((decoder(z) - target) ** 2).sum().backward()
                    optimizer.step()
                elapsed = (time.perf_counter() - start) / steps
            times[n] = min(times.get(n, float("inf")), elapsed)
        flops = forward_flops(decoder, z[:1]) * batch
        rows.append({"model": name, "forward MACs per batch": flops,
                     "ms/step 1 thread": 1e3 * times[1], "ms/step 2 threads": 1e3 * times[2],
                     "2-thread speed-up": times[1] / times[2]})
        print(rows[-1], flush=True)
    return rows


# ---- main ---------------------------------------------------------------------------


def table(rows, columns):
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=["demo", "mnist"], help=argparse.SUPPRESS)
    p.add_argument("--setting", choices=SETTINGS, help=argparse.SUPPRESS)
    p.add_argument("--demo-max-iter", type=int, default=150)
    p.add_argument("--mnist-samples", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=1, help="timings per cell (best is kept)")
    p.add_argument("--workloads", nargs="*", default=["demo", "mnist"])
    p.add_argument("--machines", nargs="*", default=["idle", "busy"], choices=["idle", "busy"])
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist10k"))
    args = p.parse_args()
    if args.worker:
        return worker(args)

    import joblib

    print(f"{os.cpu_count()} logical CPUs, {joblib.cpu_count(only_physical_cores=True)} "
          f"physical; load average before: {os.getloadavg()}")
    rows = []
    for load in args.machines:
        busy = None
        if load == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for workload in args.workloads:
                for setting in SETTINGS:
                    results = [time_in_subprocess(workload, setting, args)
                               for _ in range(args.repeats)]
                    best = min(results, key=lambda r: r["seconds"])
                    rows.append({"machine": load, "workload": workload, "setting": setting,
                                 "threads": best["threads"], "other runnable": best["busy"],
                                 "seconds": best["seconds"]})
                    print(rows[-1], flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print()
    print(f"demo: {args.demo_max_iter} epochs + transform; mnist: 1 epoch on "
          f"{args.mnist_samples} images; best of {args.repeats}; load average after: "
          f"{os.getloadavg()}")
    print(table(rows, ["machine", "workload", "setting", "threads", "other runnable", "seconds"]))
    if args.sweep:
        print()
        print(table(sweep(), ["model", "forward MACs per batch", "ms/step 1 thread",
                              "ms/step 2 threads", "2-thread speed-up"]))


if __name__ == "__main__":
    main()
