"""Batch normalisation over the global batch under torch.distributed (2 gloo ranks).

Each rank normalises its share of a batch with the statistics of the whole
batch: outputs, input gradients, summed parameter gradients and running
statistics equal those of the layer on the whole batch in one process.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sklearn_autodecoder._sync_batchnorm import global_batch_norm

SCRIPT = Path(__file__).with_name("_distributed_batchnorm.py")
sys.path.insert(0, str(SCRIPT.parent))
from _distributed_batchnorm import CASES, inputs  # noqa: E402
from test_distributed import torchrun_env  # noqa: E402

NAMES = [name for name, _, _ in CASES]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("batchnorm")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPT), str(out)]
    # A FutureWarning (torch's deprecated differentiable all_reduce warned in every process) fails.
    env = dict(torchrun_env(), PYTHONWARNINGS="error::FutureWarning")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def one_process(make, shape):
    layer = make().train()
    results = []
    for step in range(2):
        x, w = inputs(shape, step)
        x.requires_grad_()
        out = layer(x)
        (out * w).sum().backward()
        results.append({"out": out.detach(), "x_grad": x.grad})
    return layer, results


@pytest.mark.parametrize("name, make, shape", CASES, ids=NAMES)
def test_ranks_normalise_as_one_process(two_ranks, name, make, shape):
    layer, reference = one_process(make, shape)
    saved = [torch.load(two_ranks / f"{name}_{r}.pt", weights_only=True) for r in (0, 1)]
    close = dict(rtol=1e-4, atol=1e-5)
    for rank, result in enumerate(saved):
        rows = slice(rank, None, 2)
        for step, expected in enumerate(reference):
            torch.testing.assert_close(result["steps"][step]["out"], expected["out"][rows], **close)
            torch.testing.assert_close(result["steps"][step]["x_grad"], expected["x_grad"][rows], **close)
        for key, param in layer.named_parameters():
            torch.testing.assert_close(result["grads"][key], param.grad, **close)
        for key, buffer in layer.named_buffers():
            torch.testing.assert_close(result["buffers"][key], buffer, **close)
        assert result["forward_restored"]


def test_without_a_process_group_layers_are_untouched():
    layer = torch.nn.BatchNorm1d(3)
    with global_batch_norm(layer, None):
        assert "forward" not in vars(layer)
