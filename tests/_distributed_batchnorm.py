"""Run by tests/test_sync_batchnorm.py under torchrun: batch norm over the global batch.

Usage: torchrun --nproc_per_node=2 _distributed_batchnorm.py OUT_DIR

For each case of ``CASES`` every rank takes its rows (every second one) of a
fixed batch, runs two training steps of the layer inside
``global_batch_norm`` and saves its outputs, input gradients, the
all-reduced parameter gradients and the running statistics, for the test to
compare with the layer on the whole batch in one process.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from sklearn_autodecoder._sync_batchnorm import global_batch_norm

# (name, layer factory, input shape): uneven shares (9 rows), an empty share (1 row),
# a cumulative average (momentum=None), no affine parameters, BatchNorm1d on 2-D input.
CASES = [
    ("2d", lambda: torch.nn.BatchNorm2d(3), (9, 3, 4, 4)),
    ("2d_one_row", lambda: torch.nn.BatchNorm2d(3), (1, 3, 4, 4)),
    ("2d_cumulative", lambda: torch.nn.BatchNorm2d(3, momentum=None), (8, 3, 2, 2)),
    ("1d_no_affine", lambda: torch.nn.BatchNorm1d(5, affine=False), (7, 5)),
    ("1d", lambda: torch.nn.BatchNorm1d(5), (6, 5)),
]


def inputs(shape, step):
    """The batch and the loss weights of a step (the same on every rank and in the test)."""
    generator = torch.Generator().manual_seed(step)
    x = 3.0 * torch.randn(shape, generator=generator) + 5.0
    return x, torch.randn(shape, generator=generator)


def steps(layer, rows):
    """Two training steps of ``layer`` on ``rows`` of each batch; what each produced."""
    results = []
    for step in range(2):
        x, w = inputs(shape_of[layer], step)
        x = x[rows].requires_grad_()
        out = layer(x)
        (out * w[rows]).sum().backward()
        results.append({"out": out.detach(), "x_grad": x.grad})
    return results


shape_of = {}


def main(out_dir):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    for name, make, shape in CASES:
        layer = make().train()
        shape_of[layer] = shape
        with global_batch_norm(layer):
            results = steps(layer, slice(rank, None, world))
        grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
        for grad in grads.values():  # what DDP's summing hook gives every rank
            dist.all_reduce(grad)
        torch.save({"steps": results, "grads": grads, "buffers": dict(layer.named_buffers()),
                    "forward_restored": "forward" not in vars(layer)},
                   Path(out_dir) / f"{name}_{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
