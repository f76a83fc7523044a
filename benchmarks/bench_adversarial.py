"""Adversarial run of issue 23: how the package fares against a careful user and an attacker.

Every case (see ``_adversarial_cases.py``) tries one thing -- Ctrl-C during a
fit, a diverging learning rate, a failed refit, 40 concurrent saves, a planted
symlink, a crafted file, threaded fits, out-of-range input, bad arguments --
and is classified as ok, clear error, silent wrong, crash (or unhelpful
error), hang, data loss or unbounded allocation (definitions in the cases
module). A load-fuzz section truncates and flips bytes of a saved model file
(seeded) and classifies each load as refused with ``ModelFileError``
(counted as a clear error), the identical model (ok) or anything else.

Cases run in a worker process, one after the other; a case past its time
limit is a hang (the worker is killed and a new one takes the next case), a
worker that dies is a crash. After each case the worker checks that the
user's arrays were not modified (else: data loss) and that the global state
(torch and numpy RNGs, torch thread count, grad mode, default dtype, BLAS
thread limits) is as before (else: silent wrong), and restores it.

Run: python benchmarks/bench_adversarial.py [--quick] [--fuzz N] [--summary]
         [--threads 1] [--seed 0] [--only SUBSTRING]
Writes benchmarks/results/adversarial_cases.csv, adversarial_summary.csv and
adversarial.json.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the cases module, and the package of this checkout

COLUMNS = ("cases tried", "ok", "clear errors", "silent wrong", "crashes", "hangs", "data losses", "unbounded allocs")


def parse(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the load fuzz")
    p.add_argument("--quick", action="store_true", help="59 of the cases and 300 + 300 fuzz trials (about 1 minute)")
    p.add_argument("--fuzz", type=int, default=None,
                   help="truncations and byte flips each (default 3000, 300 with --quick)")
    p.add_argument("--summary", action="store_true", help="print only the counts table")
    p.add_argument("--only", default="", help="run only the cases whose id contains this")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.fuzz is None:
        args.fuzz = 300 if args.quick else 3000
    return args


def selected_cases(args):
    import _adversarial_cases as cases

    chosen = [c for c in cases.CASES.values() if (c.quick or not args.quick) and args.only in c.id]
    chosen += [c for c in cases.fuzz_cases(args.fuzz, args.seed) if args.only in c.id]
    return chosen


# ---- the worker ------------------------------------------------------------------------


def global_state():
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    return {
        "torch RNG": torch.random.get_rng_state(),
        "numpy RNG": np.random.get_state(),
        "torch threads": torch.get_num_threads(),
        "grad mode": torch.is_grad_enabled(),
        "default dtype": torch.get_default_dtype(),
        "BLAS/OpenMP limits": sorted((i.get("filepath"), i.get("num_threads")) for i in threadpool_info()),
    }


def state_changes(before, after):
    import numpy as np
    import torch

    changed = []
    for key, value in before.items():
        other = after[key]
        if key == "torch RNG":
            same = torch.equal(value, other)
        elif key == "numpy RNG":
            same = value[0] == other[0] and np.array_equal(value[1], other[1]) and value[2:] == other[2:]
        else:
            same = value == other
        if not same:
            changed.append(key)
    return changed


def restore(state):
    import numpy as np
    import torch
    from threadpoolctl import ThreadpoolController

    torch.random.set_rng_state(state["torch RNG"])
    np.random.set_state(state["numpy RNG"])
    torch.set_num_threads(state["torch threads"])
    torch.set_grad_enabled(state["grad mode"])
    torch.set_default_dtype(state["default dtype"])
    limits = dict(state["BLAS/OpenMP limits"])
    for library in ThreadpoolController().lib_controllers:
        if library.filepath in limits:
            library.set_num_threads(limits[library.filepath])


def worker(args):
    """Run the cases listed in ``args.worker`` (a file), writing one JSON line per event."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    # Refuse (MemoryError) rather than exhaust the shared machine: 6 GiB above today's address space.
    with open("/proc/self/status") as status:
        size = int(next(line.split()[1] for line in status if line.startswith("VmSize"))) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + 6 * 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    import _adversarial_cases as cases

    job = json.loads(Path(args.worker).read_text())
    everything = {c.id: c for c in selected_cases(parse(job["argv"]))}
    with open(job["results"], "a", buffering=1) as out:
        run_cases(cases, everything, job["ids"], out)


def run_cases(cases, everything, ids, out):
    import warnings

    warnings.simplefilter("ignore")
    for case_id in ids:
        case = everything[case_id]
        out.write(json.dumps({"start": case_id}) + "\n")
        cases.GUARDED.clear()
        fuzz = case.id.startswith("fuzz/")
        before = global_state() if not fuzz else None
        try:
            outcome, detail = case.function()
        except KeyboardInterrupt:
            outcome, detail = cases.CRASH, "a stray KeyboardInterrupt reached the harness"
        except BaseException as exc:  # noqa: BLE001 - a case's own failure is measured, never fatal
            outcome, detail = cases.CRASH, "(uncaught in case) " + cases.describe(exc)
        modified = cases.x_modified()
        if modified:
            outcome, detail = cases.LOSS, f"the user's X was modified ({modified}); was: {outcome}, {detail}"
        if before is not None:
            changed = state_changes(before, global_state())
            if changed:
                if outcome in (cases.OK, cases.CLEAR):
                    outcome = cases.SILENT
                detail = f"global state changed: {', '.join(changed)}; " + detail
                restore(before)
        out.write(json.dumps({"id": case_id, "outcome": outcome, "detail": cases.short(detail, 160)}) + "\n")


# ---- the parent ------------------------------------------------------------------------


def run_all(args, chosen, progress):
    """Run ``chosen`` in worker processes; a dict id -> (outcome, detail)."""
    import _adversarial_cases as cases

    timeouts = {c.id: c.timeout for c in chosen}
    results, pending = {}, [c.id for c in chosen]
    argv = [a for a in sys.argv[1:] if a != "--summary"]
    with tempfile.TemporaryDirectory() as folder:
        while pending:
            results_path = os.path.join(folder, f"results-{len(results)}.jsonl")
            job_path = os.path.join(folder, "job.json")
            Path(job_path).write_text(json.dumps({"ids": pending, "results": results_path, "argv": argv}))
            Path(results_path).touch()
            log = open(os.path.join(folder, "worker.log"), "a")  # noqa: SIM115 - open while the worker lives
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                       OPENBLAS_NUM_THREADS=str(args.threads))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH", "")]))
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", job_path],
                stdout=log, stderr=log, cwd=HERE.parent, env=env, start_new_session=True)
            current, started, offset, done_here = None, None, 0, set()
            while True:
                with open(results_path) as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[: chunk.rfind("\n") + 1]
                offset += len(complete)
                for line in complete.splitlines():
                    event = json.loads(line)
                    if "start" in event:
                        current, started = event["start"], time.monotonic()
                    else:
                        results[event["id"]] = (event["outcome"], event["detail"])
                        done_here.add(event["id"])
                        progress(event["id"], *results[event["id"]])
                        current = None
                if process.poll() is not None and not complete:
                    if current is not None:
                        tail = Path(log.name).read_text().strip().splitlines()[-1:] or [""]
                        results[current] = (cases.CRASH, f"worker died (rc={process.returncode}): {cases.short(tail[0], 90)}")
                        progress(current, *results[current])
                        done_here.add(current)
                    break
                if current is not None and time.monotonic() - started > timeouts[current]:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    results[current] = (cases.HANG, f"past its {timeouts[current]} s limit: killed")
                    progress(current, *results[current])
                    done_here.add(current)
                    break
                time.sleep(0.05)
            log.close()
            remaining = [i for i in pending if i not in results]
            if remaining and not done_here:
                # the worker died before any case: record the rest as crashes rather than loop
                for i in remaining:
                    results[i] = (cases.CRASH, "worker failed to start")
                remaining = []
            pending = remaining
    return results


def summarise(chosen, results):
    import _adversarial_cases as cases

    per_class = {}
    for c in chosen:
        per_class.setdefault(c.defect, Counter())[results[c.id][0]] += 1
    rows = []
    for defect in sorted(per_class, key=lambda d: (d.startswith("F "), d)):  # the fuzz last
        counts = per_class[defect]
        rows.append({"defect class": defect, "cases tried": sum(counts.values()),
                     **{column: counts[outcome] for column, outcome in zip(COLUMNS[1:], cases.OUTCOMES)}})
    for label, keep in (("total (cases)", lambda r: not r["defect class"].startswith("F ")),
                        ("total (load fuzz)", lambda r: r["defect class"].startswith("F "))):
        picked = [r for r in rows if keep(r)]
        if picked:
            rows.append({"defect class": label, **{c: sum(r[c] for r in picked) for c in COLUMNS}})
    return rows


def markdown(rows):
    columns = ("defect class",) + COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main():
    args = parse()
    if args.worker:
        worker(args)
        return
    import _adversarial_cases as cases
    import torch

    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    chosen = selected_cases(args)
    n_fuzz = sum(c.id.startswith("fuzz/") for c in chosen)
    print(f"adversarial run: {len(chosen) - n_fuzz} cases + {n_fuzz} load-fuzz trials, "
          f"torch {torch.__version__}, {args.threads} torch thread(s), "
          f"{'quick' if args.quick else 'full'} sizes, fuzz seed {args.seed}", flush=True)
    start = time.time()

    def progress(case_id, outcome, detail):
        if args.summary or (case_id.startswith("fuzz/") and outcome in (cases.OK, cases.CLEAR)):
            return
        print(f"{case_id:<58} {outcome:<16} {detail}", flush=True)

    results = run_all(args, chosen, progress)
    wall = time.time() - start
    rows = summarise(chosen, results)
    fuzz = Counter()
    for c in chosen:
        if c.id.startswith("fuzz/"):
            outcome = results[c.id][0]
            fuzz[(c.defect, {cases.CLEAR: "refused", cases.OK: "identical"}.get(outcome, "anything else"))] += 1
    print()
    print(markdown(rows))
    for kind in ("truncation", "byte flip"):
        defect = f"F fuzz {kind}"
        if any(k[0] == defect for k in fuzz):
            print(f"load fuzz, {kind}s: {fuzz[(defect, 'refused')]} refused with ModelFileError, "
                  f"{fuzz[(defect, 'identical')]} identical model, {fuzz[(defect, 'anything else')]} anything else")
    print(f"wall time {wall:.0f} s, {args.threads} torch thread(s)")

    with open(RESULTS / "adversarial_cases.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "defect class", "outcome", "detail"])
        for c in chosen:
            writer.writerow([c.id, c.defect, *results[c.id]])
    with open(RESULTS / "adversarial_summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=("defect class",) + COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                            check=False).stdout.strip()
    meta = {"commit": commit, "torch": torch.__version__, "threads": args.threads, "quick": args.quick,
            "fuzz": args.fuzz, "seed": args.seed, "wall_s": round(wall, 1)}
    (RESULTS / "adversarial.json").write_text(json.dumps(
        {"meta": meta, "summary": rows,
         "cases": [{"id": c.id, "defect class": c.defect, "outcome": results[c.id][0], "detail": results[c.id][1]}
                   for c in chosen]}, indent=1))
    print("saved benchmarks/results/adversarial_cases.csv, adversarial_summary.csv, adversarial.json")


if __name__ == "__main__":
    main()
