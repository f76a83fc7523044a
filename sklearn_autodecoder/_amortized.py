"""Amortised inference: an encoder regressed onto the fitted latents.

After the decoder and the training latents are fitted, an encoder is trained
to map each training sample to its latent (the targets stay fixed; Schuster &
Krogh 2021, sec. 2.4). Its output is a fast, deterministic starting point that
a few gradient steps of :func:`~._inference.infer_latents` refine.

To handle partial inputs, each training batch also shows the encoder masked
copies of the samples (a random fraction of the observed entries hidden, set
to 0 as missing entries are at inference), with the same targets. With the
decoder given, the reconstruction loss of the encoded latents (over all the
observed entries) is added, so that the starts fit the data themselves.
"""

from contextlib import nullcontext

import torch

from ._inference import frozen
from ._training import RowBatches
from ._losses import decoded_losses

# Most entries hidden in a masked copy: fractions are drawn in [0, this).
MAX_HIDDEN_FRACTION = 0.75
ENCODER_LEARNING_RATE = 1e-3


def encoder_input(x, mask):
    """What the encoder sees: x with its unobserved entries set to 0."""
    return x if mask is None else torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def fit_encoder(encoder, data, Z, *, max_iter, batch_size, generator, decoder=None, loss=None):
    """Train ``encoder`` to regress the fixed latents ``Z`` from the samples.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps (n, n_features) to (n, n_components), e.g. the mirror of the
        decoder (the estimators' ``_build_encoder``); trained in place on
        ``data.device``.
    data : RowData
        Training samples, read batch by batch (see :mod:`._data`).
    Z : torch.Tensor of shape (n_samples, n_components)
        Target latents, one row per row of ``data``.
    max_iter : int
        Epochs.
    batch_size : int
        Samples per batch; each batch is doubled with a masked copy.
    generator : torch.Generator
        Shuffling and masking (torch's global RNG is not used).
    decoder : torch.nn.Module, default=None
        The fitted decoder, kept frozen. When given, the objective adds the
        reconstruction loss of the encoded latents over all the sample's
        observed entries (those hidden from a masked copy included): the
        starts then fit the data, not only the targets, and a masked copy
        learns to fill in what it does not see.
    loss : {"mse", "bce"}, default=None
        The reconstruction loss, with ``decoder``.

    Returns
    -------
    losses : list of float
        Mean objective per sample and epoch (on the clean and masked copies).
    """
    device = data.device
    encoder.to(device).train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=ENCODER_LEARNING_RATE)
    Z = Z.to(device)
    curve = []
    with frozen(decoder) if decoder is not None else nullcontext():
        for _ in range(max_iter):
            total = 0.0
            for index, x, mask in RowBatches(data, batch_size, generator):
                m = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
                z = Z[index]
                # Hide a per-sample random fraction of the observed entries.
                fraction = MAX_HIDDEN_FRACTION * torch.rand(len(x), 1, generator=generator)
                hidden = m & (torch.rand(x.shape, generator=generator) < fraction).to(device)
                inputs = torch.cat([encoder_input(x, m), encoder_input(x, m & ~hidden)])
                optimizer.zero_grad()
                z_hat = encoder(inputs)
                error = (z_hat - torch.cat([z, z])).pow(2).sum()
                if decoder is not None:
                    x2, m2 = torch.cat([x, x]), torch.cat([m, m])
                    error = error + decoded_losses(decoder, z_hat, x2, loss, m2).sum()
                error.backward()
                optimizer.step()
                total += float(error.detach())
            curve.append(total / (2 * len(data)))
    encoder.eval()
    return curve


@torch.no_grad()
def encode(encoder, x, mask):
    """Encoder output for a chunk (rows independent: eval mode)."""
    with frozen(encoder):
        return encoder(encoder_input(x, mask))
