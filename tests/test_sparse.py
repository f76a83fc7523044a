"""Sparse input (scipy.sparse matrices and arrays): sliced by rows, densified per batch."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_autodecoder import AutoDecoder, AutoEncoder
from sklearn_autodecoder._data import RowData, check_rows, slices, validate_rows

CPU = dict(device="cpu", random_state=0, n_jobs=1)
FORMATS = [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.csc_array, sp.coo_matrix]


@pytest.fixture(scope="module")
def counts():
    rng = np.random.RandomState(0)
    rates = np.exp(rng.randn(120, 2) @ rng.randn(2, 25) * 0.7 - 1.0)
    return rng.poisson(rates).astype(np.float32)  # about 60% zeros


@pytest.mark.parametrize("container", FORMATS)
def test_sparse_gives_the_dense_results(counts, container):
    params = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=4, inference_max_iter=30, **CPU)
    dense = AutoDecoder(**params).fit(counts)
    sparse = AutoDecoder(**params).fit(container(counts))
    np.testing.assert_array_equal(dense.embedding_, sparse.embedding_)
    np.testing.assert_array_equal(dense.transform(counts), sparse.transform(container(counts)))
    np.testing.assert_array_equal(
        AutoDecoder(**params).fit_transform(counts), AutoDecoder(**params).fit_transform(container(counts))
    )
    assert dense.score(counts) == sparse.score(container(counts))
    np.testing.assert_allclose(dense.score_samples(counts), sparse.score_samples(container(counts)), rtol=1e-6)
    Z = sparse.transform(container(counts))
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(dense.inverse_transform(Z), sparse.inverse_transform(Z))


def test_sparse_with_early_stopping_encoder_init_and_prior(counts):
    params = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, inference_max_iter=20,
                  early_stopping=True, init="encoder", encoder_max_iter=2, latent_prior="gmm",
                  n_prior_components=2, **CPU)
    dense = AutoDecoder(**params).fit(counts)
    sparse = AutoDecoder(**params).fit(sp.csr_array(counts))
    np.testing.assert_array_equal(dense.embedding_, sparse.embedding_)
    np.testing.assert_array_equal(dense.predict(counts), sparse.predict(sp.csr_matrix(counts)))


def test_sparse_autoencoder_matches_dense(counts):
    params = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, **CPU)
    dense = AutoEncoder(**params).fit(counts)
    sparse = AutoEncoder(**params).fit(sp.csr_matrix(counts))
    np.testing.assert_array_equal(dense.transform(counts), sparse.transform(sp.csr_matrix(counts)))


def test_float64_and_integer_sparse_keep_their_output_dtype(counts):
    params = dict(n_components=2, hidden_layer_sizes=(), max_iter=2, inference_max_iter=10, **CPU)
    model = AutoDecoder(**params).fit(sp.csr_matrix(counts.astype(np.float64)))
    assert model.transform(sp.csr_matrix(counts.astype(np.float64))).dtype == np.float64
    Z_int = AutoDecoder(**params).fit(sp.csr_matrix(counts.astype(np.int64))).embedding_
    np.testing.assert_array_equal(Z_int, AutoDecoder(**params).fit(counts).embedding_)


def test_csr_is_used_as_it_is_and_csc_converted_once(counts):
    model = AutoDecoder()
    X = sp.csr_matrix(counts)
    assert validate_rows(model, X, reset=True) is X
    converted = validate_rows(model, sp.csc_matrix(counts), reset=True)
    assert converted.format == "csr"


def test_explicit_nan_in_a_sparse_matrix_marks_a_missing_entry(counts):
    X = counts.copy()
    X[3, 4] = np.nan
    X[10, :5] = np.nan
    X_sparse = sp.csr_matrix(X)
    assert np.isnan(X_sparse.data).sum() == 6  # stored explicitly
    params = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, inference_max_iter=20, **CPU)
    dense = AutoDecoder(**params).fit(X)
    sparse = AutoDecoder(**params).fit(X_sparse)
    np.testing.assert_array_equal(dense.embedding_, sparse.embedding_)
    assert dense.score(X) == sparse.score(X_sparse)


def test_sparse_rows_without_observed_entries_or_with_inf_are_rejected(counts):
    X = counts.copy()
    X[7] = np.nan
    with pytest.raises(ValueError, match=r"Samples \[7\] have no observed"):
        AutoDecoder(**CPU).fit(sp.csr_matrix(X))
    X = counts.copy()
    X[9, 2] = np.inf
    with pytest.raises(ValueError, match="infinity.*row 9"):
        AutoDecoder(**CPU).fit(sp.csr_array(X))


def test_sparse_bce_range_counts_implicit_zeros():
    X = np.zeros((4, 3))
    X[0, 0] = 1.0
    assert not check_rows(sp.csr_matrix(X), unit_interval=True)
    X[1, 1] = -0.5
    with pytest.raises(ValueError, match=r"\[-0.5, 1\]"):
        check_rows(sp.csr_matrix(X), unit_interval=True)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):  # the zeros are implicit only
        check_rows(sp.csr_matrix(2 * np.eye(3)), unit_interval=True)


def test_sparse_chunks_report_the_right_rows(monkeypatch, counts):
    import sklearn_autodecoder._data as data

    monkeypatch.setattr(data, "CHECK_CHUNK_BYTES", 16 * 40)  # a few rows per chunk
    X = counts.copy()
    X[101, 3] = np.inf
    with pytest.raises(ValueError, match="row 101"):
        check_rows(sp.csr_matrix(X))


def test_row_data_densifies_one_batch_of_a_row_subset(counts):
    import torch

    X = sp.csr_matrix(counts)
    data = RowData(X, torch.float32, "cpu").take(np.arange(10, 60))
    for rows, x, mask in data.batches(slices(len(data), 16), prefetch=True):
        np.testing.assert_array_equal(x.numpy(), counts[10:60][rows])
        assert mask is None


def test_fit_on_sparse_makes_no_dense_copy(monkeypatch):
    # 8000 x 512 at 2% non-zeros: 0.66 MB stored, 16 MB dense in float32.
    monkeypatch.setattr("sklearn_autodecoder._starts.PCA_START_MAX_VALUES", 0)
    monkeypatch.setattr("sklearn_autodecoder._starts.PCA_SUBSAMPLE_VALUES", 2**15)
    X = sp.random(8000, 512, density=0.02, format="csr", dtype=np.float32, random_state=0)
    model = AutoDecoder(n_components=2, hidden_layer_sizes=(), max_iter=1, batch_size=256,
                        inference_max_iter=2, inference_batch_size=256, **CPU)
    tracemalloc.start()
    try:
        model.fit(X)
        model.transform(X)
        model.score(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8000 * 512 * 4 / 4, peak
