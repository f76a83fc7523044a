"""Hyperparameter search in parallel: joblib's loky workers and a dask cluster."""

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_autodecoder import AutoDecoder

GRID = {"n_components": [2, 6]}


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:240] / 16


def _search(X, n_jobs):
    model = AutoDecoder(hidden_layer_sizes=(16,), max_iter=5, inference_max_iter=20, device="cpu", random_state=0)
    return GridSearchCV(model, GRID, cv=3, n_jobs=n_jobs).fit(X)


@pytest.fixture(scope="module")
def serial(X):
    return _search(X, n_jobs=1)


def _same_results(a, b):
    assert a.best_params_ == b.best_params_
    np.testing.assert_allclose(
        a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"], rtol=1e-5
    )


def test_loky_workers_give_the_serial_results(X, serial):
    _same_results(_search(X, n_jobs=2), serial)


def test_dask_cluster_gives_the_serial_results(X, serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with parallel_backend("dask"):
            result = _search(X, n_jobs=-1)
    _same_results(result, serial)
