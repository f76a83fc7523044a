import io

import pytest
import torch

from sklearn_autodecoder._sparse_optim import SparseRowAdam, SparseSGD, make_latent_optimizer
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


def test_adam_is_the_per_row_adam():
    table = LatentTable(3, 2)
    assert isinstance(make_latent_optimizer(table.parameters(), "adam", 0.1, 0.9), SparseRowAdam)


def _weighted_step(table, optimizer, rows, weights):
    # Loss sum_i w_i . z_{rows[i]}: the gradient of row rows[i] is weights[i].
    optimizer.zero_grad()
    (table(torch.tensor(rows)) * weights).sum().backward()
    optimizer.step()


@pytest.mark.parametrize("first_seen", [1, 10, 100, 1000])
def test_first_update_of_a_row_is_lr_whenever_it_is_first_seen(first_seen):
    # torch.optim.SparseAdam's single step count makes this 1.0x, 0.48x,
    # 0.98x and 2.5x lr for a row first seen at step 1, 10, 100 and 1000.
    lr = 0.1
    table = LatentTable(2, 3, init=torch.zeros(2, 3))
    optimizer = SparseRowAdam(table.parameters(), lr=lr)
    for _ in range(first_seen - 1):
        _weighted_step(table, optimizer, [0], torch.ones(1, 3))
    g = torch.tensor([[0.5, -3.0, 1e-3]])
    _weighted_step(table, optimizer, [1], g)
    # Adam's first step is lr * sign(g) (up to eps / |g|).
    torch.testing.assert_close(table.weight.detach()[1], -lr * torch.sign(g[0]), rtol=1e-4, atol=0)


def test_adam_rows_absent_from_the_gradient_do_not_move():
    table = LatentTable(5, 2, init=torch.arange(10.0).reshape(5, 2))
    optimizer = SparseRowAdam(table.parameters(), lr=0.1)
    _weighted_step(table, optimizer, [0, 1, 2], torch.ones(3, 2))
    before = table.weight.detach().clone()
    state = {k: v.clone() for k, v in optimizer.state[table.weight].items()}
    _weighted_step(table, optimizer, [2, 4], torch.ones(2, 2))
    after = table.weight.detach()
    torch.testing.assert_close(after[[0, 1, 3]], before[[0, 1, 3]], rtol=0, atol=0)
    assert not torch.equal(after[2], before[2]) and not torch.equal(after[4], before[4])
    # Their moments and step counts are left alone too.
    new_state = optimizer.state[table.weight]
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(new_state[key][[0, 1, 3]], state[key][[0, 1, 3]])
    assert new_state["step"].tolist() == [1, 1, 2, 0, 1]


def test_adam_matches_dense_adam_on_a_row_in_every_batch():
    # Row 1 is in every batch; rows 0 and 2 come and go. Row 1 must follow
    # torch.optim.Adam on the same gradients, in float64 to the last bits.
    generator = torch.Generator().manual_seed(0)
    table = LatentTable(3, 4, init=torch.randn(3, 4, generator=generator)).double()
    optimizer = SparseRowAdam(table.parameters(), lr=0.05)
    dense = table.weight.detach()[1].clone().requires_grad_(True)
    reference = torch.optim.Adam([dense], lr=0.05)
    for step in range(30):
        rows = [1, 0] if step % 3 else [2, 1]
        weights = torch.randn(2, 4, generator=generator, dtype=torch.float64)
        _weighted_step(table, optimizer, rows, weights)
        reference.zero_grad()
        (dense * weights[rows.index(1)]).sum().backward()
        reference.step()
    torch.testing.assert_close(table.weight.detach()[1], dense.detach(), rtol=1e-12, atol=1e-14)


def test_adam_sums_duplicate_rows_of_a_batch():
    # A row twice in one batch is one update with the summed gradient.
    table = LatentTable(2, 1).double()
    optimizer = SparseRowAdam(table.parameters(), lr=0.1)
    _weighted_step(table, optimizer, [0, 0], torch.tensor([[1.0], [-3.0]], dtype=torch.float64))
    assert optimizer.state[table.weight]["step"].tolist() == [1, 0]
    expected = torch.tensor([0.1, 0.0], dtype=torch.float64)
    torch.testing.assert_close(table.weight.detach()[:, 0], expected)


def test_adam_state_dict_round_trip_continues_identically():
    # skorch's Checkpoint and pickling save and load the optimiser's state.
    def run(optimizer, table, batches):
        for rows in batches:
            _weighted_step(table, optimizer, rows, torch.ones(len(rows), 2))

    table = LatentTable(4, 2, init=torch.ones(4, 2))
    optimizer = SparseRowAdam(table.parameters(), lr=0.1)
    run(optimizer, table, [[0, 1], [1, 2], [3]])
    copy = LatentTable(4, 2, init=table.weight.detach().clone())
    restored = SparseRowAdam(copy.parameters(), lr=0.1)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.state[copy.weight]["step"].dtype == torch.int64
    run(optimizer, table, [[0, 3], [2]])
    run(restored, copy, [[0, 3], [2]])
    torch.testing.assert_close(copy.weight, table.weight, rtol=0, atol=0)


def test_adam_works_with_torch_lr_schedulers():
    table = LatentTable(2, 1, init=torch.zeros(2, 1))
    optimizer = SparseRowAdam(table.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    _weighted_step(table, optimizer, [0], torch.ones(1, 1))
    scheduler.step()
    _weighted_step(table, optimizer, [1], torch.ones(1, 1))
    # Each row's first step is its lr: 1.0 for row 0, then 0.5 for row 1.
    torch.testing.assert_close(table.weight.detach()[:, 0], torch.tensor([-1.0, -0.5]))


def test_sparse_row_adam_validates():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr must be positive"):
        SparseRowAdam([p], lr=0)
    with pytest.raises(ValueError, match="betas"):
        SparseRowAdam([p], betas=(0.9, 1.0))
    optimizer = SparseRowAdam([p], lr=1)
    p.sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        optimizer.step()


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
