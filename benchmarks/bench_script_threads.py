"""Wall time of the demo and the gallery examples, with and without OMP_NUM_THREADS=1.

Each script runs end to end in a fresh process (``python -m
sklearn_autodecoder.demo``, then every ``examples/plot_*.py`` with
``MPLBACKEND=Agg``, in a scratch folder), twice per repeat: with no thread
variable in the environment (torch picks its default, one thread per
physical core, and the estimators' ``n_jobs=None`` decides what their own
calls use) and with ``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1``. With
``--busy`` (the default), ``python -c "while True: pass"`` processes keep
that many cores occupied meanwhile, as on a shared machine: oversubscribed
threads then wait on each other, which is what the estimators' thread
default must avoid. The ratio column is default / one thread: near 1 means
a user gets the same time whatever their environment says.

Run: python benchmarks/bench_script_threads.py [--busy 1] [--repeats 1] [--only demo,plot_inpainting]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import REPO, table

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def scripts():
    """``{name: argv}``: the demo module and every gallery example."""
    found = {"demo": [sys.executable, "-m", "sklearn_autodecoder.demo"]}
    for path in sorted((REPO / "examples").glob("plot_*.py")):
        found[path.stem] = [sys.executable, str(path)]
    return found


def run(argv, one_thread, cwd):
    """Seconds the script takes, in an environment with or without the thread variables."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["MPLBACKEND"] = "Agg"
    if one_thread:
        env.update(dict.fromkeys(THREAD_VARS[:2], "1"))
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, default=1, help="cores kept busy by spinning processes (default 1)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated script names")
    args = p.parse_args()
    chosen = scripts()
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for name, argv in chosen.items():
                default, single = [], []
                for _ in range(args.repeats):
                    default.append(run(argv, False, scratch))
                    single.append(run(argv, True, scratch))
                row = {"script": name, "default threads (s)": min(default), "OMP_NUM_THREADS=1 (s)": min(single)}
                row["ratio"] = row["default threads (s)"] / row["OMP_NUM_THREADS=1 (s)"]
                rows.append(row)
                print(row, flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()
    print(f"\ncpu cores: {os.cpu_count()}, busy cores: {args.busy}, repeats: {args.repeats} (min taken)\n")
    print(table(rows, ["script", "default threads (s)", "OMP_NUM_THREADS=1 (s)", "ratio"], floatfmt=".2f"))


if __name__ == "__main__":
    main()
