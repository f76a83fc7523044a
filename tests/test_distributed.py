"""Data-parallel fit with torch.distributed: 2 CPU processes (gloo) under torchrun.

One torchrun launch fits every case of ``_distributed_fit.CASES`` (row counts
that do and do not divide among ranks and batches, the mixture prior, early
stopping, fewer training rows than ranks); the tests compare the ranks with
each other and with the 1-process fit.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_autodecoder import _distributed as distributed

SCRIPT = Path(__file__).with_name("_distributed_fit.py")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCRIPT.parent))
from _distributed_fit import CASES, PARAMS, estimator  # noqa: E402

NAMES = [name for name, _, _ in CASES]


def torchrun_env():
    # The subprocesses import this checkout's package, whatever is installed.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.RandomState(0)
    X = rng.randn(400, 3) @ rng.randn(3, 20) + 0.05 * rng.randn(400, 20)
    path = tmp_path_factory.mktemp("data") / "X.npy"
    np.save(path, X)
    return path, X


@pytest.fixture(scope="module")
def two_ranks(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPT), str(data[0]), str(out)]
    result = subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _load(out, name, what, rank):
    path = out / f"{name}_{what}_{rank}.pt"
    return torch.load(path, weights_only=True) if path.exists() else None


@pytest.mark.parametrize("name", NAMES)
def test_ranks_hold_the_same_fitted_model(two_ranks, name):
    # Uneven shards (257, 301 rows), an empty share (1 row, 2 ranks), the prior, early
    # stopping: no abort, and bit-identical decoders, priors and embeddings on every rank.
    for what in ("decoder", "prior"):
        states = [_load(two_ranks, name, what, r) for r in (0, 1)]
        assert (states[0] is None) == (states[1] is None)
        for key in states[0] or {}:
            torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)
    embeddings = [np.load(two_ranks / f"{name}_embedding_{r}.npy") for r in (0, 1)]
    np.testing.assert_array_equal(embeddings[0], embeddings[1])
    assert np.isfinite(embeddings[0]).all()
    results = [json.loads((two_ranks / f"{name}_result_{r}.json").read_text()) for r in (0, 1)]
    # Early stopping and the history agree: the epoch losses are all-reduced.
    assert results[0]["n_iter"] == results[1]["n_iter"]
    assert results[0]["loss_curve"] == results[1]["loss_curve"]


@pytest.mark.parametrize("name, n_rows, params", CASES, ids=NAMES)
def test_two_processes_follow_one(two_ranks, data, name, n_rows, params):
    # batch_size is the global batch: two ranks take the steps of one process, so the
    # fits agree up to the order of floating-point sums.
    X = data[1]
    ad = estimator(params).fit(X[:n_rows])
    result = json.loads((two_ranks / f"{name}_result_0.json").read_text())
    assert result["n_iter"] == ad.n_iter_
    np.testing.assert_allclose(result["loss_curve"], ad.loss_curve_, rtol=1e-4)
    single = float(np.mean((ad.inverse_transform(ad.transform(X[300:])) - X[300:]) ** 2))
    assert result["test_mse"] == pytest.approx(single, rel=0.02)
    embedding = np.load(two_ranks / f"{name}_embedding_0.npy")
    np.testing.assert_allclose(embedding, ad.embedding_, atol=1e-3)


def test_main_case_stops_early(two_ranks):
    result = json.loads((two_ranks / "main_result_0.json").read_text())
    assert result["n_iter"] < PARAMS["max_iter"]


def test_without_a_process_group_nothing_changes():
    rows = np.arange(10)
    assert not distributed.is_active()
    assert distributed.shard(rows) is rows
    assert distributed.owned(rows) is rows
    assert distributed.broadcast_seed(7) == 7
    r, v = distributed.all_gather_rows(rows, torch.ones(10, 2))
    assert r is rows and v.shape == (10, 2)
    assert torch.equal(distributed.merge_owned_rows(torch.ones(3, 2)), torch.ones(3, 2))
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap(module, "cpu") is module
