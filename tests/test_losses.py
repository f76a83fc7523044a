import pytest
import torch

from sklearn_autodecoder._losses import sample_losses


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_losses_are_summed_per_sample(loss):
    x = torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]])
    x_hat = torch.tensor([[0.2, 0.7, 0.5], [0.9, 0.6, 0.1]])
    out = sample_losses(x_hat, x, loss)
    for i in range(2):
        assert out[i] == pytest.approx(float(sample_losses(x_hat[i : i + 1], x[i : i + 1], loss)[0]))
    if loss == "mse":
        torch.testing.assert_close(out, ((x_hat - x) ** 2).sum(1))


def test_masked_entries_get_no_weight_and_no_gradient():
    x = torch.tensor([[0.0, 5.0, 1.0]])
    mask = torch.tensor([[True, False, True]])
    x_hat = torch.tensor([[0.5, 0.0, 1.5]], requires_grad=True)
    out = sample_losses(x_hat, x, "mse", mask)
    assert float(out.detach()) == pytest.approx(0.5)
    out.sum().backward()
    assert x_hat.grad[0, 1] == 0


def test_unknown_loss():
    with pytest.raises(ValueError, match="Unknown loss"):
        sample_losses(torch.zeros(1, 1), torch.zeros(1, 1), "l1")
