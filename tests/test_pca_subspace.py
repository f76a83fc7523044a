"""A linear auto-decoder learns the PCA subspace."""

import numpy as np
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from sklearn_autodecoder import AutoDecoder


def _low_rank(n_samples=300, n_features=20, rank=3, noise=0.01, seed=0):
    rng = np.random.RandomState(seed)
    basis = np.linalg.qr(rng.randn(n_features, rank))[0]
    scores = rng.randn(n_samples, rank) * np.array([3.0, 2.0, 1.0])[:rank]
    return scores @ basis.T + noise * rng.randn(n_samples, n_features) + 0.5


def test_linear_decoder_spans_the_pca_subspace():
    X = _low_rank()
    ad = AutoDecoder(n_components=3, hidden_layer_sizes=(), learning_rate=2e-2, latent_learning_rate=0.1,
                     max_iter=50, batch_size=60, random_state=0, device="cpu").fit(X)
    columns = ad.decoder_[0].weight.detach().numpy()  # (n_features, n_components)
    pca = PCA(n_components=3).fit(X).components_.T
    assert np.degrees(subspace_angles(columns, pca)).max() < 1.0
    # A random 3-dimensional subspace is far from it: the criterion can fail.
    random = np.random.RandomState(1).randn(20, 3)
    assert np.degrees(subspace_angles(random, pca)).max() > 30
