import pytest
import torch

from sklearn_autodecoder._sparse_optim import SparseSGD, make_latent_optimizer
from sklearn_autodecoder.nn import LatentTable


def _step(table, optimizer, rows):
    optimizer.zero_grad()
    table(torch.tensor(rows)).sum().backward()
    optimizer.step()


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_only_batch_rows_move_even_with_momentum(name):
    table = LatentTable(6, 3, init=torch.arange(18.0).reshape(6, 3))
    optimizer = make_latent_optimizer(table.parameters(), name, lr=0.1, momentum=0.9)
    _step(table, optimizer, [0, 1])
    before = table.weight.detach().clone()
    _step(table, optimizer, [2])
    after = table.weight.detach()
    # Rows 0 and 1 have momentum from the first step, yet stay put.
    torch.testing.assert_close(after[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])
    assert not torch.equal(after[2], before[2])


def test_sparse_sgd_matches_dense_sgd_on_its_rows():
    table = LatentTable(4, 2, init=torch.ones(4, 2))
    optimizer = SparseSGD(table.parameters(), lr=0.5, momentum=0.9)
    dense = torch.ones(2, 2, requires_grad=True)
    reference = torch.optim.SGD([dense], lr=0.5, momentum=0.9)
    for _ in range(3):
        _step(table, optimizer, [1, 3])
        reference.zero_grad()
        dense.sum().backward()
        reference.step()
    torch.testing.assert_close(table.weight.detach()[[1, 3]], dense.detach())


def test_sparse_sgd_validates():
    with pytest.raises(ValueError, match="lr must be positive"):
        SparseSGD([torch.zeros(1, requires_grad=True)], lr=0)
    with pytest.raises(ValueError, match="momentum"):
        SparseSGD([torch.zeros(1, requires_grad=True)], lr=1, momentum=1.0)
    p = torch.zeros(2, requires_grad=True)
    optimizer = SparseSGD([p], lr=1)
    p.sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        optimizer.step()
