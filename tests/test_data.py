"""The data path: memmaps and uint8 streamed in batches, chunked validation."""

import tracemalloc

import numpy as np
import pytest
import torch

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder, ConvAutoEncoder
from sklearn_autodecoder._data import RowData, check_rows, map_rows, slices
from _checks import TINY_SPEC

CPU = dict(device="cpu", random_state=0)


def _memmap(tmp_path, array, name="x.dat"):
    m = np.memmap(tmp_path / name, dtype=array.dtype, mode="w+", shape=array.shape)
    m[:] = array
    m.flush()
    return np.memmap(tmp_path / name, dtype=array.dtype, mode="r", shape=array.shape)


@pytest.fixture
def low_rank():
    rng = np.random.RandomState(0)
    return (rng.randn(300, 3) @ rng.randn(3, 40) + 0.05 * rng.randn(300, 40)).astype(np.float32)


def test_memmap_gives_the_same_model_as_the_array(tmp_path, low_rank):
    X_map = _memmap(tmp_path, low_rank)
    params = dict(n_components=3, hidden_layer_sizes=(16,), max_iter=5, inference_max_iter=20, **CPU)
    a = AutoDecoder(**params).fit(low_rank)
    b = AutoDecoder(**params).fit(X_map)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    np.testing.assert_array_equal(a.transform(low_rank[:50]), b.transform(X_map[:50]))
    assert a.score(low_rank) == b.score(X_map)


def test_fit_on_a_memmap_makes_no_full_copy(tmp_path, monkeypatch):
    # float64 memmap: a converted float32 copy would be 8 MB, the float64 one 16 MB.
    # numpy reports its allocations to tracemalloc: a full conversion would show.
    import sklearn_autodecoder._data as data

    monkeypatch.setattr(data, "CHECK_CHUNK_BYTES", 2**20)  # validation temporaries: ~0.3 MB
    # Small training sets start from an in-memory PCA by design; large ones
    # from a subsample's, projected batch by batch (here 64 rows at a time).
    monkeypatch.setattr("sklearn_autodecoder._starts.PCA_START_MAX_VALUES", 0)
    monkeypatch.setattr("sklearn_autodecoder._starts.PCA_SUBSAMPLE_VALUES", 2**14)
    rng = np.random.RandomState(0)
    X = _memmap(tmp_path, rng.rand(8000, 256))
    model = AutoDecoder(n_components=2, hidden_layer_sizes=(), max_iter=1, batch_size=256,
                        inference_max_iter=2, **CPU)
    tracemalloc.start()
    try:
        model.fit(X)
        model.transform(X)
        model.score(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    float32_size = X.shape[0] * X.shape[1] * 4
    assert peak < float32_size / 4, peak


def test_uint8_pixels_are_scaled_for_image_estimators(tmp_path):
    rng = np.random.RandomState(0)
    X8 = rng.randint(0, 256, size=(40, 4)).astype(np.uint8)
    X8_map = _memmap(tmp_path, X8)
    Xf = X8.astype(np.float32) / np.float32(255)
    for cls in (ConvAutoDecoder, ConvAutoEncoder):
        a = cls(TINY_SPEC, **CPU).fit(X8_map)
        b = cls(TINY_SPEC, **CPU).fit(Xf)
        Z = a.transform(X8_map)
        assert Z.dtype == np.float32
        # x * (1/255) and x / 255 differ in the last bit; inference keeps that small.
        np.testing.assert_allclose(Z, b.transform(Xf), rtol=1e-3, atol=1e-4)
        X_hat = a.inverse_transform(Z)
        assert X_hat.dtype == np.float32 and X_hat.min() >= 0 and X_hat.max() <= 1


def test_integer_input_is_taken_as_values_by_mlp_estimators():
    X = np.random.RandomState(0).randint(0, 3, size=(60, 5)).astype(np.uint8)
    for cls in (AutoDecoder, AutoEncoder):
        model = cls(n_components=2, hidden_layer_sizes=(), max_iter=40, **CPU).fit(X)
        assert model.transform(X).dtype == np.float32
        # Reconstructions live on the data's own scale (0..2), not on [0, 1/255].
        assert model.inverse_transform(model.transform(X)).max() > 1


def test_float16_is_computed_and_returned_as_float32():
    X = np.random.RandomState(0).rand(50, 4).astype(np.float16)
    model = AutoDecoder(n_components=2, max_iter=2, **CPU).fit(X)
    assert model.transform(X).dtype == np.float32


@pytest.mark.parametrize("bad, match", [(np.inf, r"infinity \(inf\) in row 2345"),
                                         (-np.inf, r"infinity \(inf\) in row 2345")])
def test_bad_value_in_a_late_chunk_is_reported_with_its_row(tmp_path, bad, match, monkeypatch):
    import sklearn_autodecoder._data as data

    monkeypatch.setattr(data, "CHECK_CHUNK_BYTES", 8 * 4 * 100)  # 100 rows per chunk
    X = np.random.RandomState(0).rand(3000, 4).astype(np.float32)
    X[2345, 1] = bad
    with pytest.raises(ValueError, match=match):
        AutoDecoder(max_iter=1, **CPU).fit(_memmap(tmp_path, X))


def test_all_nan_row_in_a_late_chunk_is_reported(tmp_path, monkeypatch):
    import sklearn_autodecoder._data as data

    monkeypatch.setattr(data, "CHECK_CHUNK_BYTES", 8 * 4 * 100)
    X = np.random.RandomState(0).rand(3000, 4)
    X[2999] = np.nan
    with pytest.raises(ValueError, match=r"Samples \[2999\] have no observed"):
        check_rows(X)


def test_wrong_width_fails_before_training(tmp_path):
    X = np.random.RandomState(0).rand(50, 783).astype(np.float32)
    with pytest.raises(ValueError, match="784 features per row"):
        ConvAutoDecoder(preset="mnist", **CPU).fit(_memmap(tmp_path, X))


@pytest.mark.parametrize("shape", [(5, 1, 2, 2), (5, 2, 2)])
def test_image_estimators_say_how_to_flatten(shape):
    X = np.random.RandomState(0).rand(*shape)
    with pytest.raises(ValueError, match=r"\(n_samples, C\*H\*W\).*reshape"):
        ConvAutoDecoder(TINY_SPEC, **CPU).fit(X)


def test_no_mask_is_built_without_nan():
    X = np.random.RandomState(0).rand(10, 3)
    data = RowData(X, torch.float32, "cpu", has_nan=check_rows(X))
    _, mask = data.batch(slice(0, 10))
    assert mask is None
    X[4, 1] = np.nan
    data = RowData(X, torch.float32, "cpu", has_nan=check_rows(X))
    x, mask = data.batch(slice(0, 10))
    assert mask is not None and not mask[4, 1] and x[4, 1] == 0
    assert np.isnan(X[4, 1])  # the caller's array is untouched


def test_row_subsets_and_prefetch_give_the_same_batches():
    X = np.arange(60, dtype=np.float64).reshape(20, 3)
    data = RowData(X, torch.float64, "cpu").take([1, 4, 5, 9, 19])
    plain = [x for _, x, _ in data.batches([np.array([0, 2]), np.array([3, 4])], prefetch=False)]
    ahead = [x for _, x, _ in data.batches([np.array([0, 2]), np.array([3, 4])], prefetch=True)]
    for a, b in zip(plain, ahead):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(plain[0], torch.as_tensor(X[[1, 5]]))
    torch.testing.assert_close(plain[1], torch.as_tensor(X[[9, 19]]))


def test_map_rows_fills_a_preallocated_array():
    X = np.arange(21, dtype=np.float32).reshape(7, 3)
    out = map_rows(RowData(X, torch.float32, "cpu"), lambda x, m: x.sum(1, keepdim=True),
                   width=1, out_dtype=np.float32, batch_size=3)
    np.testing.assert_array_equal(out[:, 0], X.sum(1))
    assert [s.stop for s in slices(7, 3)] == [3, 6, 7]
