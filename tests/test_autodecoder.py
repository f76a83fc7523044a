"""Behaviour of AutoDecoder and ConvAutoDecoder through their public API."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Callback

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder
from sklearn_autodecoder.presets import ConvDecoderSpec

CPU = dict(device="cpu", random_state=0)
SMALL_SPEC = ConvDecoderSpec(
    image_shape=(1, 4, 4),
    n_components=3,
    linear_head=(4, 2, 2),
    layers=((1, 4, 2, 1),),
    defaults=dict(loss="bce", max_iter=5, batch_size=16),
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def low_rank():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3) @ rng.randn(3, 12) + 0.01 * rng.randn(300, 12)
    return X


def test_fit_transform_inverse_shapes_and_dtypes(digits):
    X = digits[0][:200]
    ad = AutoDecoder(n_components=4, max_iter=5, **CPU).fit(X)
    assert ad.embedding_.shape == (200, 4)
    assert ad.n_components_ == 4 and ad.n_iter_ == 5 and len(ad.loss_curve_) == 5
    for dtype in (np.float32, np.float64):
        Z = ad.transform(X[:10].astype(dtype))
        assert Z.shape == (10, 4) and Z.dtype == dtype
        X_hat = ad.inverse_transform(Z)
        assert X_hat.shape == (10, 64) and X_hat.dtype == dtype


def test_training_decreases_the_loss(digits):
    # tanh: the decoder starts at random, not exactly at PCA as a ReLU one does.
    ad = AutoDecoder(n_components=8, max_iter=20, activation="tanh", **CPU).fit(digits[0][:300])
    assert ad.loss_curve_[-1] < 0.5 * ad.loss_curve_[0]


def test_nonlinear_decoder_beats_pca_on_digits(digits):
    X = digits[0]
    X_train, X_test = X[:1400], X[1400:]
    ad = AutoDecoder(n_components=8, hidden_layer_sizes=(128,), max_iter=100, **CPU).fit(X_train)
    pca = PCA(8).fit(X_train)
    mse_ad = np.mean((ad.inverse_transform(ad.transform(X_test)) - X_test) ** 2)
    mse_pca = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    assert mse_ad < 0.9 * mse_pca


def test_transform_is_projection_with_score(low_rank):
    ad = AutoDecoder(n_components=3, hidden_layer_sizes=(), max_iter=200, learning_rate=1e-2, **CPU)
    ad.fit(low_rank)
    # On data of rank 3 plus 1% noise, the projection recovers almost everything.
    residual = -ad.score(low_rank)
    assert residual < 5e-3 * np.mean(low_rank**2)


def test_fit_transform_returns_training_latents_without_a_second_inference(digits, monkeypatch):
    X = digits[0][:150]
    params = dict(n_components=3, max_iter=4, early_stopping=True, **CPU)
    calls = []
    inferred = AutoDecoder._latents_of
    monkeypatch.setattr(AutoDecoder, "_latents_of", lambda self, *a: calls.append(1) or inferred(self, *a))
    ad = AutoDecoder(**params).fit(X)
    fit_calls = len(calls)  # the held-out rows' inference, part of fit
    Z = AutoDecoder(**params).fit_transform(X)
    assert len(calls) == 2 * fit_calls
    np.testing.assert_array_equal(Z, ad.embedding_)
    Z[:] = 0  # a copy: the fitted model's latents stay as they were
    assert np.abs(ad.embedding_).sum() > 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_transform_is_close_to_fit_then_transform(digits):
    X = digits[0][:150]
    ad = AutoDecoder(n_components=3, max_iter=100, random_state=0, device="cpu")
    Z = ad.fit_transform(X)
    assert Z.dtype == X.dtype
    # transform projects each row onto the final decoder from its training latent.
    distance = np.linalg.norm(ad.transform(X) - Z, axis=1)
    assert np.median(distance) < 0.03 * np.median(np.linalg.norm(Z, axis=1))


def test_transform_rows_are_independent(digits):
    X = digits[0][:120]
    ad = AutoDecoder(n_components=3, max_iter=4, **CPU).fit(X)
    whole = ad.transform(X)
    parts = np.vstack([ad.transform(X[i : i + 7]) for i in range(0, len(X), 7)])
    np.testing.assert_allclose(whole, parts, atol=1e-10)
    np.testing.assert_allclose(ad.transform(X[::-1]), whole[::-1], atol=1e-10)


def test_chunking_does_not_change_results(digits):
    X = digits[0][:100]
    ad = AutoDecoder(n_components=3, max_iter=3, inference_batch_size=256, **CPU).fit(X)
    Z = ad.transform(X)
    ad.set_params(inference_batch_size=9)
    np.testing.assert_allclose(ad.transform(X), Z, atol=1e-10)
    np.testing.assert_allclose(ad.inverse_transform(Z), ad.set_params(inference_batch_size=256).inverse_transform(Z))


def test_inference_tolerance_stops_early(digits):
    X = digits[0][:60]
    ad = AutoDecoder(n_components=3, max_iter=5, early_stopping=False, inference_max_iter=500, inference_tol=0.5, **CPU).fit(X)
    loose = ad.transform(X)
    tight = ad.set_params(inference_tol=0.0).transform(X)
    # inference_tol=0.5 stops after the first steps; inference_tol=0 runs the whole budget and fits better.
    assert ad.set_params(inference_tol=0.5).score(X) < ad.set_params(inference_tol=0.0).score(X)
    assert not np.allclose(loose, tight)


def test_inference_methods_agree_and_lm_projects_exactly(low_rank):
    X = low_rank
    # init="zeros" (the old default): Adam's few steps start far from the projection.
    ad = AutoDecoder(n_components=3, hidden_layer_sizes=(), loss="mse", max_iter=5, inference_tol=1e-10,
                     init="zeros", **CPU).fit(X)
    # A linear decoder's inference is least squares: the exact projection.
    W = ad.decoder_[0].weight.detach().double().numpy()
    b = ad.decoder_[0].bias.detach().double().numpy()
    exact = np.linalg.lstsq(W, (X - b).T, rcond=None)[0].T
    for method, budget, atol in (("lm", 10, 1e-8), ("lbfgs", 100, 1e-6), ("adam", 1000, 1e-2)):
        Z = ad.set_params(inference_method=method, inference_max_iter=budget).transform(X)
        np.testing.assert_allclose(Z, exact, atol=atol, err_msg=method)
    # Levenberg-Marquardt gets there in a few steps; Adam does not.
    few = dict(inference_max_iter=3)
    lm_error = np.abs(ad.set_params(inference_method="lm", **few).transform(X) - exact).max()
    adam_error = np.abs(ad.set_params(inference_method="adam", **few).transform(X) - exact).max()
    assert lm_error < 1e-6 < adam_error


def test_unknown_inference_method_is_rejected(low_rank):
    with pytest.raises(ValueError, match="inference_method"):
        AutoDecoder(inference_method="newton", **CPU).fit(low_rank)


def test_verbose_inference_reports_progress(digits, capsys, monkeypatch):
    import sklearn_autodecoder._autodecoder as module

    X = digits[0][:64]
    ad = AutoDecoder(n_components=3, max_iter=2, inference_batch_size=16, **CPU).fit(X)
    ad.transform(X)
    assert "inference:" not in capsys.readouterr().out  # silent at verbose=0
    monkeypatch.setattr(module, "PROGRESS_INTERVAL", 0.0)  # every chunk is "long"
    ad.set_params(verbose=1).transform(X)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("inference:")]
    assert lines[0].startswith("inference: 16/64 samples (25%)")
    assert lines[-1].startswith("inference: 64/64 samples (100%)")


def test_long_inference_reports_an_eta(digits, capsys, monkeypatch):
    import sklearn_autodecoder._autodecoder as module

    X = digits[0][:64]
    ad = AutoDecoder(n_components=3, max_iter=2, inference_batch_size=16, verbose=1, **CPU).fit(X)
    capsys.readouterr()
    ticks = iter(np.arange(0.0, 100.0, 3.0))  # 3 s per reading: one at the start, one per chunk
    monkeypatch.setattr(module._InferenceProgress, "clock", staticmethod(lambda: float(next(ticks))))
    ad.transform(X)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("inference:")]
    # The first chunk ends at 3 s (< 5 s: silent), the second at 6 s: 32 samples in 6 s, 32 to go.
    assert lines[0] == "inference: 32/64 samples (50%), 6.0 s, ETA 6.0 s"
    assert lines[-1].startswith("inference: 64/64 samples (100%)") and "ETA" not in lines[-1]


def test_random_state_reproducible_and_global_rng_untouched(digits):
    X = digits[0][:100]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    # early_stopping=False (the old default): 3 epochs may not beat the PCA
    # start, which early stopping would keep (the same for every seed).
    a = AutoDecoder(n_components=3, max_iter=3, early_stopping=False, **CPU).fit(X)
    assert torch.equal(torch.get_rng_state(), before)
    b = AutoDecoder(n_components=3, max_iter=3, early_stopping=False, **CPU).fit(X)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    c = AutoDecoder(n_components=3, max_iter=3, early_stopping=False, device="cpu", random_state=1).fit(X)
    assert not np.allclose(a.embedding_, c.embedding_)


def test_input_array_is_not_modified(digits):
    X = digits[0][:80].copy()
    X[0, 0] = np.nan
    original = X.copy()
    ad = AutoDecoder(n_components=2, max_iter=2, **CPU).fit(X)
    ad.transform(X)
    ad.score(X)
    np.testing.assert_array_equal(X, original)


def test_missing_values_are_ignored_and_filled(digits):
    X = digits[0][:300]
    ad = AutoDecoder(n_components=6, max_iter=100, **CPU).fit(X)
    X_missing = X[:20].copy()
    X_missing[:, :32] = np.nan
    X_hat = ad.inverse_transform(ad.transform(X_missing))
    assert np.isfinite(X_hat).all()
    # The hidden half is filled better than by the training mean.
    err = np.mean((X_hat[:, :32] - X[:20, :32]) ** 2)
    err_mean = np.mean((X.mean(axis=0)[:32] - X[:20, :32]) ** 2)
    assert err < err_mean


def test_row_without_observed_entry_is_rejected(digits):
    X = digits[0][:40].copy()
    ad = AutoDecoder(n_components=2, max_iter=2, **CPU).fit(X)
    X[3] = np.nan
    with pytest.raises(ValueError, match=r"Samples \[3\] have no observed"):
        ad.transform(X)
    with pytest.raises(ValueError, match="no observed"):
        AutoDecoder(**CPU).fit(X)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.empty((0, 4)), "0 sample"),
        (np.ones((1, 4)), "minimum of 2"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "infinity"),
        (np.array([["a", "b"], ["c", "d"]]), "convert"),
    ],
)
def test_bad_training_data(X, match):
    with pytest.raises(ValueError, match=match):
        AutoDecoder(**CPU).fit(X)


def test_bce_needs_unit_interval():
    with pytest.raises(ValueError, match=r"loss='bce' needs X in \[0, 1\]"):
        AutoDecoder(loss="bce", **CPU).fit(np.array([[0.0, 2.0], [1.0, 0.5]]))


def test_wrong_widths_are_named(digits):
    X = digits[0][:50]
    ad = AutoDecoder(n_components=3, max_iter=2, **CPU).fit(X)
    with pytest.raises(ValueError, match="X has 10 features, but AutoDecoder is expecting 64"):
        ad.transform(X[:, :10])
    with pytest.raises(ValueError, match="decodes latent vectors of width n_components_=3"):
        ad.inverse_transform(np.zeros((2, 5)))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_components=0), "n_components"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(loss="l1"), "loss"),
        (dict(init="random"), "init"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(hidden_layer_sizes=(8, 0)), "hidden_layer_sizes must hold positive integers"),
        (dict(device="cuda:99"), "device='cuda:99'"),
        (dict(device="tpu"), "not a valid torch device"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        AutoDecoder(**{**CPU, **params}).fit(np.random.rand(10, 4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="not available on this machine"):
        AutoDecoder(device="cuda").fit(np.random.rand(10, 4))


def test_auto_device_resolves(digits):
    ad = AutoDecoder(n_components=2, max_iter=1, random_state=0).fit(digits[0][:20])
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert ad.device_.type == expected


def test_divergence_raises_clear_error(digits):
    X = digits[0][:100] * 1e20
    ad = AutoDecoder(n_components=2, max_iter=5, learning_rate=10.0, latent_learning_rate=1e3, **CPU)
    with pytest.raises(FloatingPointError, match="Training diverged"):
        ad.fit(X)


def test_early_stopping_holds_out_and_stops(digits):
    X = digits[0][:400]
    ad = AutoDecoder(
        n_components=4, max_iter=300, early_stopping=True, n_iter_no_change=3, tol=0.05, **CPU
    ).fit(X)
    assert ad.n_iter_ < 300
    assert "valid_loss" in ad.history_[-1]
    assert ad.embedding_.shape == (400, 4) and np.isfinite(ad.embedding_).all()


def test_warm_start_continues(digits):
    X = digits[0][:200]
    ad = AutoDecoder(n_components=4, max_iter=10, warm_start=True, **CPU).fit(X)
    first = ad.score(X)
    ad.fit(X)
    assert ad.score(X) > first
    with pytest.raises(ValueError, match="same n_components"):
        ad.set_params(n_components=5).fit(X)


@pytest.mark.parametrize("cls", [AutoDecoder, AutoEncoder])
def test_warm_start_accumulates_n_iter_and_loss_curve(digits, cls):
    X = digits[0][:100]
    est = cls(n_components=3, max_iter=3, warm_start=True, **CPU).fit(X)
    first = list(est.loss_curve_)
    est.set_params(max_iter=2).fit(X)
    assert est.n_iter_ == 5 and len(est.history_) == 2
    assert est.loss_curve_[:3] == first and len(est.loss_curve_) == 5
    # Without warm_start, a refit starts the count again.
    est.set_params(warm_start=False).fit(X)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2


def test_user_callbacks_run(digits):
    class CountEpochs(Callback):
        def initialize(self):
            self.epochs = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    counter = CountEpochs()
    ad = AutoDecoder(n_components=2, max_iter=4, callbacks=[counter], **CPU).fit(digits[0][:50])
    assert ad.history_[-1]["epoch"] == 4
    assert counter.epochs == 4


@pytest.mark.parametrize("verbose, expected", [(0, ""), (1, "train_loss")])
def test_verbose_output(digits, capsys, verbose, expected):
    AutoDecoder(n_components=2, max_iter=2, verbose=verbose, **CPU).fit(digits[0][:30])
    out = capsys.readouterr().out
    assert (expected in out) if expected else out == ""


def test_pipeline_and_grid_search(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    pipe = make_pipeline(AutoDecoder(max_iter=15, inference_max_iter=30, **CPU), LogisticRegression(max_iter=500))
    search = GridSearchCV(pipe, {"autodecoder__n_components": [2, 8]}, cv=3).fit(X, y)
    assert search.best_params_["autodecoder__n_components"] == 8
    assert search.best_score_ > 0.6


def test_score_selects_hyperparameters_without_labels(digits):
    X = digits[0][:240]
    search = GridSearchCV(
        AutoDecoder(max_iter=60, batch_size=32, inference_max_iter=50, **CPU), {"n_components": [1, 8]}, cv=2
    ).fit(X)
    assert search.best_params_["n_components"] == 8


def test_clone_and_params_roundtrip():
    ad = AutoDecoder(n_components=5, hidden_layer_sizes=(16, 32), loss="bce", random_state=3)
    cloned = clone(ad)
    assert cloned.get_params() == ad.get_params()
    assert cloned.set_params(n_components=7).n_components == 7


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_roundtrip_same_transform(digits, tmp_path, dump):
    X = digits[0][:60]
    ad = AutoDecoder(n_components=3, max_iter=3, **CPU).fit(X)
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(ad))
    else:
        joblib.dump(ad, tmp_path / "ad.joblib")
        loaded = joblib.load(tmp_path / "ad.joblib")
    np.testing.assert_array_equal(loaded.transform(X), ad.transform(X))


def test_model_from_unavailable_device_loads_on_cpu(digits):
    ad = AutoDecoder(n_components=3, max_iter=2, **CPU).fit(digits[0][:40])
    state = ad.__getstate__()
    assert state is not ad.__dict__ and state["decoder_"] is not ad.decoder_
    state["device_"] = torch.device("cuda", 97)  # as if fitted on a GPU this machine lacks
    restored = AutoDecoder.__new__(AutoDecoder)
    with pytest.warns(UserWarning, match="not available here; it now runs on the CPU"):
        restored.__setstate__(state)
    assert restored.device_.type == "cpu"
    np.testing.assert_array_equal(restored.transform(digits[0][:5]), ad.transform(digits[0][:5]))


def test_feature_names_and_pandas_output(digits):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(digits[0][:50], columns=[f"px{i}" for i in range(64)])
    ad = AutoDecoder(n_components=3, max_iter=2, **CPU).fit(X)
    np.testing.assert_array_equal(ad.feature_names_in_, X.columns)
    assert list(ad.get_feature_names_out()) == ["autodecoder0", "autodecoder1", "autodecoder2"]
    out = ad.set_output(transform="pandas").transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(ad.get_feature_names_out())


# ---- ConvAutoDecoder -----------------------------------------------------------


def test_conv_autodecoder_preset_defaults_and_shapes():
    X = np.random.RandomState(0).rand(40, 784)
    cad = ConvAutoDecoder("mnist", max_iter=1, inference_max_iter=5, **CPU).fit(X)
    assert cad.n_components_ == 20 and cad.loss_ == "bce" and cad.image_shape_ == (1, 28, 28)
    assert cad.inverse_transform(cad.transform(X[:3])).shape == (3, 784)
    assert sum(p.numel() for p in cad.decoder_.parameters()) == 263_873


def test_conv_autodecoder_overrides_preset_settings():
    X = np.random.RandomState(0).rand(30, 784)
    cad = ConvAutoDecoder("mnist", n_components=8, loss="mse", max_iter=2, **CPU).fit(X)
    assert cad.n_components_ == 8 and cad.loss_ == "mse" and cad.n_iter_ == 2
    # The published settings stay untouched on the estimator.
    assert cad.get_params()["learning_rate"] is None


@pytest.mark.parametrize("preset, width", [("mnist", 784), ("cifar10", 3072), ("stl10", 27648)])
def test_conv_autodecoder_rejects_wrong_width(preset, width):
    X = np.random.rand(4, width - 1)
    with pytest.raises(ValueError, match=f"X has {width - 1} features, but preset '{preset}'"):
        ConvAutoDecoder(preset, **CPU).fit(X)


def test_conv_autodecoder_custom_spec_learns():
    rng = np.random.RandomState(0)
    # 4x4 images that are one of three bars: a 1-D manifold plus noise.
    bars = np.zeros((3, 16))
    for k in range(3):
        bars[k, 4 * k : 4 * k + 4] = 1
    X = np.clip(bars[rng.randint(3, size=120)] + 0.05 * rng.rand(120, 16), 0, 1)
    cad = ConvAutoDecoder(SMALL_SPEC, max_iter=60, learning_rate=1e-2, **CPU).fit(X)
    assert cad.image_shape_ == (1, 4, 4)
    X_hat = cad.inverse_transform(cad.transform(X[:10]))
    assert np.mean((X_hat - X[:10]) ** 2) < 0.05


def test_conv_autodecoder_pickle_with_custom_spec():
    X = np.random.RandomState(0).rand(20, 16)
    cad = ConvAutoDecoder(SMALL_SPEC, max_iter=2, **CPU).fit(X)
    loaded = pickle.loads(pickle.dumps(cad))
    np.testing.assert_array_equal(loaded.transform(X), cad.transform(X))
    assert clone(cad).preset == SMALL_SPEC


def test_one_forward_pass_per_training_batch(digits):
    calls = []
    ad = AutoDecoder(n_components=2, max_iter=3, batch_size=25, **CPU)
    ad._build_decoder = lambda *args: _counting(AutoDecoder._build_decoder(ad, *args), calls)
    ad.fit(digits[0][:100])
    # 4 batches x 3 epochs: both optimisers step on one backward pass.
    assert len(calls) == 12


def _counting(module, calls):
    # Training passes only (eval-mode passes measure or decode the fitted model).
    module.register_forward_hook(lambda m, *_: calls.append(1) if m.training else None)
    return module
