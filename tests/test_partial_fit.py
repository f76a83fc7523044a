"""partial_fit: MiniBatchNMF's meaning, streaming chunks of a memmap, use in a Pipeline."""

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_autodecoder import AutoDecoder, AutoEncoder

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:240] / 16


def _chunks(X, size):
    return [X[i : i + size] for i in range(0, len(X), size)]


def test_passes_of_partial_fit_train_the_decoder(X):
    ad = AutoDecoder(n_components=4, batch_size=32, **CPU)
    scores = []
    for _ in range(4):
        for chunk in _chunks(X, 80):
            ad.partial_fit(chunk)
        scores.append(ad.score(X))
    assert scores[-1] > scores[0]
    assert ad.n_iter_ == 12 and len(ad.loss_curve_) == 12
    assert ad.embedding_.shape == (80, 4)  # the last chunk's latents


def test_a_call_infers_the_chunk_then_trains_one_epoch(X):
    # MiniBatchNMF's meaning: the chunk's latents start from inference with the
    # decoder as it is, then decoder and latents train together for one epoch,
    # which is what a warm-started fit of one epoch does.
    first, second = X[:120], X[120:]
    ad = AutoDecoder(n_components=4, batch_size=32, **CPU).partial_fit(first)
    # (partial_fit holds no rows out: nor does the reference)
    reference = copy.deepcopy(ad).set_params(warm_start=True, max_iter=1, early_stopping=False)
    ad.partial_fit(second)
    reference.fit(second)
    for a, b in zip(ad.decoder_.parameters(), reference.decoder_.parameters()):
        torch.testing.assert_close(a, b)
    np.testing.assert_array_equal(ad.embedding_, reference.embedding_)


def test_first_call_fits_like_one_epoch_of_fit(X):
    ad = AutoDecoder(n_components=3, **CPU).partial_fit(X)
    ref = AutoDecoder(n_components=3, max_iter=1, early_stopping=False, **CPU).fit(X)
    np.testing.assert_array_equal(ad.embedding_, ref.embedding_)
    assert ad.n_iter_ == 1


def test_memmap_streamed_in_chunks_matches_arrays(X, tmp_path):
    path = tmp_path / "X.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    from_memmap = AutoDecoder(n_components=3, **CPU)
    from_array = AutoDecoder(n_components=3, **CPU)
    for _ in range(2):
        for start in range(0, len(X), 100):
            from_memmap.partial_fit(mm[start : start + 100])
            from_array.partial_fit(np.array(mm[start : start + 100]))
    np.testing.assert_array_equal(from_memmap.transform(X[:20]), from_array.transform(X[:20]))


def test_partial_fit_in_a_pipeline(X):
    pipe = make_pipeline(StandardScaler(), AutoDecoder(n_components=3, **CPU))
    scaler, ad = pipe.named_steps["standardscaler"], pipe.named_steps["autodecoder"]
    for chunk in _chunks(X, 60):
        scaler.partial_fit(chunk)
    for _ in range(2):
        for chunk in _chunks(X, 60):
            ad.partial_fit(scaler.transform(chunk))
    Z = pipe.transform(X)
    assert Z.shape == (len(X), 3) and np.isfinite(pipe.score(X))
    # The estimator stays an ordinary pipeline step for fit.
    assert clone(pipe).fit(X[:60]).transform(X[:5]).shape == (5, 3)


def test_partial_fit_checks_the_width_and_the_prior(X):
    ad = AutoDecoder(n_components=2, **CPU).partial_fit(X[:50])
    with pytest.raises(ValueError, match="features"):
        ad.partial_fit(X[:50, :-1])
    assert not hasattr(AutoDecoder(latent_prior="gmm"), "partial_fit")


def test_autoencoder_partial_fit_continues_its_encoder(X):
    ae = AutoEncoder(n_components=3, **CPU).partial_fit(X[:120])
    first = {k: v.clone() for k, v in ae.encoder_.state_dict().items()}
    encoder = ae.encoder_
    ae.partial_fit(X[120:])
    assert ae.n_iter_ == 2
    # Continued from the first call's encoder, not rebuilt: a fresh one ends elsewhere.
    fresh = AutoEncoder(n_components=3, **CPU).partial_fit(X[120:])
    assert not torch.equal(ae.encoder_.state_dict()["0.weight"], fresh.encoder_.state_dict()["0.weight"])
    # Trained as a copy: the first call's encoder is intact (restored if a call fails).
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in first.items())
