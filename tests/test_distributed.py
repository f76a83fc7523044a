"""Data-parallel fit with torch.distributed: 2 CPU processes (gloo) under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder import _distributed as distributed

SCRIPT = Path(__file__).with_name("_distributed_fit.py")
sys.path.insert(0, str(SCRIPT.parent))
from _distributed_fit import PARAMS  # noqa: E402


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
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPT), str(data[0]), str(out)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_ranks_hold_the_same_fitted_model(two_ranks):
    decoders = [torch.load(two_ranks / f"decoder_{r}.pt", weights_only=True) for r in (0, 1)]
    for name in decoders[0]:
        torch.testing.assert_close(decoders[0][name], decoders[1][name], rtol=0, atol=0)
    embeddings = [np.load(two_ranks / f"embedding_{r}.npy") for r in (0, 1)]
    np.testing.assert_array_equal(embeddings[0], embeddings[1])
    assert embeddings[0].shape == (300, 3) and np.isfinite(embeddings[0]).all()
    results = [json.loads((two_ranks / f"result_{r}.json").read_text()) for r in (0, 1)]
    # Early stopping and the history agree: the epoch losses are all-reduced.
    assert results[0]["n_iter"] == results[1]["n_iter"] < PARAMS["max_iter"]
    assert results[0]["loss_curve"] == results[1]["loss_curve"]


def test_two_processes_fit_as_well_as_one(two_ranks, data):
    X = data[1]
    ad = AutoDecoder(**PARAMS).fit(X[:300])
    single = float(np.mean((ad.inverse_transform(ad.transform(X[300:])) - X[300:]) ** 2))
    distributed_mse = json.loads((two_ranks / "result_0.json").read_text())["test_mse"]
    assert distributed_mse <= 1.15 * single, (distributed_mse, single)


def test_without_a_process_group_nothing_changes():
    rows = np.arange(10)
    assert not distributed.is_active()
    assert distributed.shard(rows) is rows
    r, v = distributed.all_gather_rows(rows, torch.ones(10, 2))
    assert r is rows and v.shape == (10, 2)
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap(module, "cpu") is module
