"""Helpers shared by the reproduction benchmarks: output folder, tables, threads."""

import argparse
import os
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def parser(description):
    """An argument parser with the options every benchmark has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args):
    """Apply the thread count and make the results folder."""
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)


def table(rows, columns, floatfmt=".4f"):
    """A markdown table of ``rows`` (dicts) restricted to ``columns``."""
    def cell(value):
        if isinstance(value, float):
            return format(value, floatfmt)
        return "—" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def save(fig, name, rows=None):
    """Save a figure (and the rows, as CSV) into benchmarks/results/."""
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if rows:
        import pandas as pd

        pd.DataFrame(rows).to_csv(RESULTS / f"{name}.csv", index=False)
    print(f"saved {os.path.relpath(path, REPO)}")


def proc_status(key):
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``...) in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)
