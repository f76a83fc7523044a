"""docs/scaling.md's torchrun example, run as written with two CPU processes (gloo)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from sklearn_autodecoder import load

ROOT = Path(__file__).resolve().parents[1]


def test_the_torchrun_example_runs_as_written(tmp_path):
    text = (ROOT / "docs" / "scaling.md").read_text()
    script = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S) if block.startswith("# train.py"))
    (tmp_path / "train.py").write_text(script)
    rng = np.random.RandomState(0)
    np.save(tmp_path / "X.npy", (rng.randn(101, 3) @ rng.randn(3, 12)).astype(np.float32))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    model = load(tmp_path / "model")
    assert model.embedding_.shape == (101, 8)
