"""PyTorch modules: MLP decoders/encoders and the latent representation table.

These modules know nothing about scikit-learn; the estimators build them.
The convolutional architectures live in :mod:`sklearn_autodecoder.presets`.
"""

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
}


class MaskedLinear(nn.Linear):
    """Linear layer whose weights are zero outside a fixed connectivity mask.

    The mask multiplies the weights in every forward pass, so masked weights
    get no gradient and never move from zero (the layer has ``mask.sum()``
    free weights plus the biases).

    Parameters
    ----------
    connectivity : array-like of shape (in_features, out_features)
        1 (or True) where input ``i`` connects to output ``j``. It is given
        input-side first, like a latent-to-feature adjacency matrix; it is
        stored transposed, as the buffer ``mask``, in ``weight``'s layout.
    """

    def __init__(self, connectivity):
        mask = torch.as_tensor(connectivity).bool().T
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask)
        with torch.no_grad():
            self.weight.mul_(mask)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


# Output layers may also end with a softmax over the features (the count
# likelihoods' proportions); it is no hidden-layer activation.
OUTPUT_ACTIVATIONS = {**ACTIVATIONS, "softmax": lambda: nn.Softmax(dim=1)}


def _mlp(sizes, activation, output_activation, connectivity=None):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out) if connectivity is None else MaskedLinear(connectivity))
        last = i == len(sizes) - 2
        layers.append(OUTPUT_ACTIVATIONS[output_activation]() if last else ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MLPDecoder(nn.Sequential):
    """Fully connected decoder mapping latents to samples.

    Parameters
    ----------
    n_components : int
        Size of the latent vectors.
    n_features : int
        Size of the reconstructed samples.
    hidden_layer_sizes : tuple of int, default=(64,)
        Width of the hidden layers, from the latent side to the output side.
        An empty tuple gives a linear (affine) decoder.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation after each hidden layer.
    output_activation : {"identity", "logistic", "relu", "tanh", "softmax"}, default="identity"
        Activation of the output layer ("logistic" keeps outputs in (0, 1),
        as the binary cross-entropy loss needs; "softmax" gives proportions
        over the features, as the count likelihoods use).
    connectivity : array-like of shape (n_components, n_features), default=None
        0/1 mask of a sparse linear decoder (see :class:`MaskedLinear`);
        needs ``hidden_layer_sizes=()``. None gives dense layers.
    """

    def __init__(
        self,
        n_components,
        n_features,
        hidden_layer_sizes=(64,),
        activation="relu",
        output_activation="identity",
        connectivity=None,
    ):
        if connectivity is not None and tuple(hidden_layer_sizes):
            raise ValueError("A connectivity mask needs a linear decoder (hidden_layer_sizes=()).")
        sizes = [n_components, *hidden_layer_sizes, n_features]
        super().__init__(*_mlp(sizes, activation, output_activation, connectivity))


class MLPEncoder(nn.Sequential):
    """Fully connected encoder mirroring :class:`MLPDecoder`.

    Parameters
    ----------
    n_features : int
        Size of the input samples.
    n_components : int
        Size of the latent vectors it outputs (linear output layer).
    hidden_layer_sizes : tuple of int, default=(64,)
        Width of the hidden layers, given in the *decoder's* order (latent side
        first), so the same tuple builds a mirrored pair.
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation after each hidden layer.
    """

    def __init__(self, n_features, n_components, hidden_layer_sizes=(64,), activation="relu"):
        sizes = [n_features, *reversed(hidden_layer_sizes), n_components]
        super().__init__(*_mlp(sizes, activation, "identity"))


class LatentTable(nn.Module):
    """One free latent vector per training sample (the representation layer).

    Backed by ``nn.Embedding(sparse=True)``: a batch's backward pass yields a
    sparse gradient holding only that batch's rows, so a sparse-aware
    optimiser updates (and keeps momentum for) those rows alone.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    n_components : int
        Width of each latent vector.
    init : torch.Tensor of shape (n_samples, n_components), default=None
        Initial values; zeros when None.
    """

    # Under torch.distributed each rank owns its rows: never wrapped in DDP.
    rank_local = True

    def __init__(self, n_samples, n_components, init=None):
        super().__init__()
        self.embedding = nn.Embedding(n_samples, n_components, sparse=True)
        with torch.no_grad():
            if init is None:
                self.embedding.weight.zero_()
            else:
                self.embedding.weight.copy_(init)

    @property
    def weight(self):
        return self.embedding.weight

    def forward(self, index, x=None):
        return self.embedding(index)


class EncoderRepresentation(nn.Module):
    """Latents computed from the samples by an encoder (autoencoder baseline)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, index, x):
        return self.encoder(x)


class RepresentationModel(nn.Module):
    """The modules trained together: a representation (latent table or encoder) and a decoder.

    A container, not a forward pass: the training loop
    (:class:`~._training.RepresentationNet`) calls
    ``representation(index, x)`` for a batch's latents and scores their
    decoding with the likelihood. ``prior`` (a latent prior, see :mod:`._priors`, e.g. a Gaussian mixture
    on the latents) trains with them when given, and so do the parameters
    of ``likelihood`` (see :mod:`._likelihoods`).
    """

    def __init__(self, representation, decoder, prior=None, likelihood=None):
        super().__init__()
        self.representation = representation
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
