"""Issue 23's defects 6, 7, 9 and its low-severity list (save/load aside).

Fits in threads, new samples a likelihood cannot take, the default imputer
at extreme scales, bad arguments, big-endian input, thread limits under
concurrency, and torchrun ranks that disagree or fail alone.
"""

import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed
from skorch.callbacks import PrintLog
from threadpoolctl import threadpool_info
from torch import nn

from sklearn_autodecoder import (
    AutoDecoder,
    AutoDecoderImputer,
    AutoEncoder,
    ConvAutoDecoder,
)
from sklearn_autodecoder._random import local_random_draws
from sklearn_autodecoder._threads import torch_threads
from sklearn_autodecoder.presets import ConvDecoderSpec
from sklearn_autodecoder.datasets import make_count_data, make_regulatory_data

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(n_components=2, hidden_layer_sizes=(5,), max_iter=1, early_stopping=False, n_jobs=1)


@pytest.fixture
def X():
    return np.random.RandomState(0).rand(24, 6)


def _quiet(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X)


# ---- defect 6: random_state in joblib's threading backend, the caller's RNG -----------


def _weights(estimator):
    return np.concatenate([p.detach().numpy().ravel() for p in estimator.decoder_.parameters()])


def _fit_weights(kind, seed, X):
    spec = ConvDecoderSpec(image_shape=(1, 4, 4), n_components=4, latent_shape=(4, 1, 1),
                           layers=((2, 2, 1, 0, True), (1, 3, 1, 0)))
    estimator = {
        "ad": AutoDecoder(**SMALL, random_state=seed),
        "ae": AutoEncoder(**SMALL, random_state=seed),
        "conv": ConvAutoDecoder(preset=spec, max_iter=1, early_stopping=False, device="cpu", n_jobs=1,
                                random_state=seed),
    }[kind]
    return _weights(_quiet(estimator, X if kind != "conv" else np.tile(X, 3)[:, :16]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # warnings.catch_warnings is per process
def test_threaded_fits_honour_random_state_and_leave_the_global_rng(X):
    jobs = [(kind, seed) for kind in ("ad", "ae", "conv") for seed in range(12)]  # 36 fits
    sequential = [_fit_weights(kind, seed, X) for kind, seed in jobs]
    state = torch.get_rng_state()
    threaded = Parallel(n_jobs=4, backend="threading")(delayed(_fit_weights)(k, s, X) for k, s in jobs)
    assert torch.equal(torch.get_rng_state(), state)
    differing = [job for job, a, b in zip(jobs, sequential, threaded) if not np.array_equal(a, b)]
    assert differing == []


def test_a_fit_leaves_the_global_rng_as_it_was(X):
    state = torch.get_rng_state()
    _quiet(AutoDecoder(**SMALL, random_state=0), X)
    assert torch.equal(torch.get_rng_state(), state)


def test_local_draws_are_what_the_global_generator_seeded_alike_draws():
    # The local generator changes no fit: torch's default inits draw the same numbers.
    def build():
        return nn.Sequential(nn.Linear(3, 4), nn.Conv2d(2, 3, 3), nn.ConvTranspose2d(3, 2, 2),
                             nn.BatchNorm2d(2), nn.LayerNorm(4), nn.GroupNorm(1, 2), nn.Embedding(5, 2))

    state = torch.get_rng_state()
    torch.manual_seed(7)
    expected = build().state_dict()
    torch.set_rng_state(state)
    with local_random_draws(torch.Generator().manual_seed(7)):
        got = build().state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


# ---- defect 7: every method taking new samples checks them for the likelihood ----------


@pytest.fixture(scope="module")
def bce_model():
    X = np.random.RandomState(0).rand(30, 5)
    return _quiet(AutoDecoder(**SMALL, loss="bce", latent_prior="gmm", n_prior_components=2, random_state=0), X), X


@pytest.mark.parametrize("method", ["transform", "score", "score_samples", "predict", "predict_proba"])
@pytest.mark.parametrize("shift", [5.0, -0.5])
def test_bce_refuses_new_samples_outside_the_unit_interval(bce_model, method, shift):
    model, X = bce_model
    getattr(model, method)(X)  # valid samples pass
    with pytest.raises(ValueError, match=r"loss='bce' needs X in \[0, 1\]"):
        getattr(model, method)(X + shift)


def test_bce_autoencoder_refuses_new_samples_outside_the_unit_interval(X):
    model = _quiet(AutoEncoder(**SMALL, loss="bce", random_state=0), X)
    with pytest.raises(ValueError, match=r"loss='bce' needs X in \[0, 1\]"):
        model.transform(X + 5)


@pytest.mark.parametrize("method", ["transform", "score", "score_samples"])
@pytest.mark.parametrize("bad, problem", [(-1.0, "is negative"), (0.5, "is not an integer")])
def test_count_likelihoods_refuse_bad_new_counts(method, bad, problem):
    counts = np.random.RandomState(0).poisson(3, (30, 5)).astype(np.float64)
    model = _quiet(AutoDecoder(**SMALL, loss="poisson", random_state=0), counts)
    new = counts.copy()
    new[2, 3] = bad
    with pytest.raises(ValueError, match=problem):
        getattr(model, method)(new)


# ---- defect 9: the default imputer at extreme scales and on all-NaN input -------------


@pytest.fixture(scope="module")
def incomplete():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    X[:, 1] += X[:, 0]
    X[rng.rand(60, 4) < 0.2] = np.nan
    return X, AutoDecoderImputer().fit_transform(X)


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300])
def test_default_imputer_does_not_depend_on_the_units(incomplete, scale):
    X, imputed = incomplete
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow or underflow on the way
        scaled = AutoDecoderImputer().fit_transform(X * scale)
    assert np.all(np.isfinite(scaled))
    np.testing.assert_allclose(scaled / scale, imputed, rtol=1e-9, atol=1e-9)


def test_default_imputer_refuses_all_missing_input():
    with pytest.raises(ValueError, match="Every entry of X .* is missing"):
        AutoDecoderImputer().fit(np.full((5, 3), np.nan))


# ---- low: bad arguments ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["n_components", "max_iter", "batch_size", "inference_max_iter"])
@pytest.mark.parametrize("value", [True, False])
def test_bools_are_refused_for_integer_parameters(X, name, value):
    with pytest.raises(ValueError, match=f"'{name}' parameter .* must be an int"):
        AutoDecoder(**{name: value}).fit(X)


@pytest.mark.parametrize("call, name", [
    (lambda: make_count_data(True), "n_samples"),
    (lambda: make_regulatory_data(10, n_components=True), "n_components"),
    (lambda: AutoDecoderImputer(n_candidates=True).fit(np.ones((4, 2))), "n_candidates"),
], ids=["make_count_data", "make_regulatory_data", "imputer"])
def test_bools_are_refused_for_counts_outside_the_estimators(call, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter .* must be an int"):
        call()


@pytest.mark.parametrize("callbacks", [[object()], [PrintLog(), "log"], [("log", 3)]])
def test_callbacks_that_are_not_skorch_callbacks_are_named(X, callbacks):
    with pytest.raises(TypeError, match=rf"callbacks\[{len(callbacks) - 1}\] is .*skorch Callback"):
        AutoDecoder(**SMALL, callbacks=callbacks).fit(X)


def test_named_and_class_callbacks_are_taken(X):
    _quiet(AutoDecoder(**SMALL, callbacks=[("log", PrintLog()), PrintLog]), X)


@pytest.mark.parametrize(
    "defaults, name",
    [(dict(max_iter=0), "max_iter"), (dict(max_iter=True), "max_iter"), (dict(batch_size=2.5), "batch_size"),
     (dict(learning_rate=-1.0), "learning_rate"), (dict(latent_momentum=1.0), "latent_momentum"),
     (dict(weight_decay=float("nan")), "weight_decay")],
)
def test_conv_spec_defaults_out_of_range_are_refused(defaults, name):
    with pytest.raises(ValueError, match=rf"defaults\['{name}'\] must be"):
        ConvDecoderSpec(image_shape=(1, 4, 4), n_components=4, latent_shape=(4, 1, 1),
                        layers=((1, 4, 1, 0),), defaults=defaults)


# ---- low: big-endian input ------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [AutoDecoder, AutoEncoder])
def test_byte_order_changes_neither_dtype_nor_results(X, Estimator):
    swapped = X.astype(">f8")
    model = _quiet(Estimator(**SMALL, random_state=0), X)
    Z = model.transform(X)
    assert model.transform(swapped).dtype == np.float64
    np.testing.assert_array_equal(model.transform(swapped), Z)
    assert model.inverse_transform(Z.astype(">f8")).dtype == np.float64
    assert model.score(swapped) == model.score(X)
    refitted = _quiet(Estimator(**SMALL, random_state=0), swapped)
    np.testing.assert_array_equal(refitted.transform(X), Z)


# ---- low: thread limits under concurrent calls ------------------------------------------


def _limits():
    return torch.get_num_threads(), sorted((i["filepath"], i["num_threads"]) for i in threadpool_info())


def test_interleaved_blocks_of_two_threads_restore_the_limits():
    # A enters, B enters, A leaves, B leaves: B must not restore A's limit.
    before = _limits()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    n = before[0]

    def first():
        with torch_threads(n + 1):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def second():
        a_in.wait(10)
        with torch_threads(n + 2):
            b_in.set()
            a_out.wait(10)

    for _ in range(5):
        threads = [threading.Thread(target=f) for f in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for event in (a_in, b_in, a_out):
            event.clear()
        assert _limits() == before


def test_concurrent_transforms_leave_the_limits(X):
    model = _quiet(AutoDecoder(n_components=2, hidden_layer_sizes=(5,), max_iter=1, random_state=0), X)
    before = _limits()
    Parallel(n_jobs=4, backend="threading")(delayed(model.transform)(X) for _ in range(16))
    assert _limits() == before


# ---- low: torchrun ranks that disagree or fail alone -------------------------------------


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "_distributed_checks.py"), str(out)]
    result = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((out / f"rank_{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.parametrize(
    "case, names",
    [("loss", ["loss"]), ("two_settings", ["latent_l2", "max_iter"]), ("shape", ["X.shape"])],
)
def test_ranks_with_different_settings_all_raise_naming_them(ranks, case, names):
    for results in ranks:
        assert results[case]["error"] == "ValueError"
        assert f"differ in {', '.join(names)} (" in results[case]["message"]


@pytest.mark.parametrize(
    "case, error, text",
    [("bad_data", "ValueError", "infinity"), ("bad_parameter", "InvalidParameterError", "learning_rate"),
     ("partial_fit_width", "ValueError", "features")],
)
def test_a_failure_on_one_rank_stops_every_rank(ranks, case, error, text):
    rank_0, rank_1 = ranks[0][case], ranks[1][case]
    assert rank_1["error"] == error and text in rank_1["message"]
    assert rank_0["error"] == "RankFailedError"
    assert "rank(s) 1 of 2" in rank_0["message"] and text in rank_0["message"]


def test_rank_local_settings_may_differ(ranks):
    assert ranks[0]["rank_local"]["error"] is None
    assert ranks[0]["rank_local"]["embedding"] == ranks[1]["rank_local"]["embedding"]
