"""User-defined torch modules for the decoder=/encoder= tests (importable by name)."""

from torch import nn


class TwoLayerDecoder(nn.Module):
    """Linear, LayerNorm, tanh, Linear: a decoder the package does not build."""

    def __init__(self, n_components, n_features, width=16):
        super().__init__()
        self.hidden = nn.Linear(n_components, width)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, n_features)
        self.scale = 1.0  # a plain attribute, stored by save

    def forward(self, z):
        return self.scale * self.out(self.norm(self.hidden(z)).tanh())


class Encoder(nn.Module):
    def __init__(self, n_features, n_components):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, n_components))

    def forward(self, x):
        return self.layers(x)
