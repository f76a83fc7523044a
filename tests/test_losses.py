"""Per-sample losses, and binary cross-entropy from the decoder's logits."""

import pytest
import torch

from sklearn_autodecoder._losses import (
    decode_and_losses,
    decoded_losses,
    sample_losses,
    output_and_loss,
    split_output_activation,
    wrap_keeping_logits,
)
from sklearn_autodecoder.nn import MLPDecoder
from sklearn_autodecoder.presets import ConvDecoderSpec, make_decoder, n_parameters


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


# ---- binary cross-entropy from logits ------------------------------------------


def decode_logits(decoder, z):
    """Pre-sigmoid outputs of ``decoder`` at ``z`` (ValueError without a trailing Sigmoid)."""
    logits = split_output_activation(decoder)
    if logits is None:
        raise ValueError(
            f"{type(decoder).__name__} does not end with an nn.Sigmoid (optionally followed "
            "by Flatten/Unflatten), so it has no logits."
        )
    return logits(z)


def _saturating_decoder(dtype):
    """z -> sigmoid(z): the logit is the latent itself."""
    layer = torch.nn.Linear(1, 1, bias=False).to(dtype)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    return torch.nn.Sequential(layer, torch.nn.Sigmoid())


def test_saturated_bce_has_its_true_loss_and_gradient():
    # Logit 20, target 0: BCE = softplus(20) ~ 20, d/dlogit = sigmoid(20) ~ 1.
    decoder = _saturating_decoder(torch.float32)
    z = torch.tensor([[20.0]], requires_grad=True)
    x = torch.zeros(1, 1)
    loss = decoded_losses(decoder, z, x, "bce")
    (grad,) = torch.autograd.grad(loss.sum(), z)
    assert float(loss.detach()) == pytest.approx(20.0, rel=1e-6)
    assert float(grad) == pytest.approx(1.0, rel=1e-6)
    # On the probability, float32 rounds sigmoid(20) to 1: the clamped log
    # gives 100 and no gradient at all.
    z = torch.tensor([[20.0]], requires_grad=True)
    old = sample_losses(decoder(z), x, "bce")
    (old_grad,) = torch.autograd.grad(old.sum(), z)
    assert float(old.detach()) == pytest.approx(100.0) and float(old_grad) == 0.0


def _seeded(module, seed=0):
    """Redraw every parameter from a local generator (torch's global RNG untouched)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return module


def _mlp(dtype):
    return _seeded(MLPDecoder(3, 12, (8,), output_activation="logistic")).to(dtype)


def _conv(dtype):
    spec = ConvDecoderSpec(
        image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2), layers=((2, 4, 2, 1), (1, 3, 1, 1)),
    )
    return _seeded(torch.nn.Sequential(make_decoder(spec), torch.nn.Flatten())).to(dtype)


@pytest.mark.parametrize("build", [_mlp, _conv])
@pytest.mark.parametrize("masked", [False, True])
def test_logit_bce_equals_probability_bce_when_not_saturated(build, masked):
    decoder = build(torch.float64)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    x = torch.rand(5, decoder(z).shape[1], generator=g, dtype=torch.float64)
    mask = torch.rand(x.shape, generator=g) < 0.5 if masked else None
    torch.testing.assert_close(
        decoded_losses(decoder, z, x, "bce", mask), sample_losses(decoder(z), x, "bce", mask)
    )
    torch.testing.assert_close(decoded_losses(decoder, z, x, "mse", mask), sample_losses(decoder(z), x, "mse", mask))
    for loss in ("bce", "mse"):
        x_hat, losses = decode_and_losses(decoder, z, x, loss, mask)
        torch.testing.assert_close(x_hat, decoder(z))
        torch.testing.assert_close(losses, decoded_losses(decoder, z, x, loss, mask))


@pytest.mark.parametrize("build", [_mlp, _conv])
def test_logit_view_shares_the_decoder_and_stops_before_the_sigmoid(build):
    decoder = build(torch.float32)
    n_params = n_parameters(decoder)
    logits = split_output_activation(decoder)
    assert n_parameters(decoder) == n_params  # the decoder is untouched
    assert {id(p) for p in logits.parameters()} == {id(p) for p in decoder.parameters()}
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(torch.sigmoid(decode_logits(decoder, z)), decoder(z))
    assert split_output_activation(decoder) is logits  # built once per decoder


class _Wrapper(torch.nn.Module):
    """Stands for torch.compile / DistributedDataParallel: hides the layers."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, z):
        return self.module(z)


@pytest.mark.parametrize("build", [_mlp, _conv])
def test_wrapped_decoder_keeps_its_logits(build):
    decoder = build(torch.float64)
    assert output_and_loss(_Wrapper(decoder), "bce")[1] == "probability"  # what a plain wrap loses
    wrapped = wrap_keeping_logits(decoder, _Wrapper)
    forward, link = output_and_loss(wrapped, "bce")
    assert link == "logit" and isinstance(forward[0], _Wrapper)  # the wrapped logit view
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in decoder.parameters()}
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(wrapped(z), decoder(z))
    # A wrapper that changes nothing, or a decoder without a Sigmoid, is wrapped whole.
    assert wrap_keeping_logits(decoder, lambda m: m) is decoder
    plain = torch.nn.Linear(3, 2)
    assert wrap_keeping_logits(plain, _Wrapper).module is plain


def test_decoder_without_sigmoid_falls_back_to_probabilities():
    decoder = _seeded(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Softmax(dim=1)))
    assert split_output_activation(decoder) is None
    with pytest.raises(ValueError, match="does not end with an nn.Sigmoid"):
        decode_logits(decoder, torch.zeros(1, 2))
    # A Sigmoid followed by a non-reshaping module is not the output activation.
    assert split_output_activation(torch.nn.Sequential(torch.nn.Sigmoid(), torch.nn.Linear(2, 2))) is None
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(4, 2, generator=g), torch.rand(4, 3, generator=g)
    torch.testing.assert_close(decoded_losses(decoder, z, x, "bce"), sample_losses(decoder(z), x, "bce"))


def test_masked_entries_get_no_gradient_through_logits():
    decoder = _mlp(torch.float64)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 3, dtype=torch.float64, generator=g).requires_grad_(True)
    x = torch.rand(3, 12, dtype=torch.float64, generator=g)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 5] = False
    garbage = x.clone()
    garbage[:, 5] = 1e6  # a finite placeholder far outside [0, 1]
    a = decoded_losses(decoder, z, x, "bce", mask)
    b = decoded_losses(decoder, z, garbage, "bce", mask)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), z)[0]
    gb = torch.autograd.grad(b.sum(), z)[0]
    torch.testing.assert_close(ga, gb)
