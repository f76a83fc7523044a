"""Faults during a fit (issue 23): Ctrl-C, divergence, failed refits, overshooting inference."""

import _thread
import signal
import threading
import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, EarlyStopping
from sklearn.exceptions import ConvergenceWarning

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder
from sklearn_autodecoder.presets import ConvDecoderSpec
from sklearn_autodecoder._training import HeldOutEarlyStopping, StopTraining, TrainingConvergence

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return rng.randn(120, 3) @ rng.randn(3, 10) + 0.05 * rng.randn(120, 10)


class InterruptAt(Callback):
    """Sends the main thread a SIGINT (as Ctrl-C does) at the end of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            _thread.interrupt_main()


def _state(estimator):
    """Every attribute, modules as their state: what a failed fit must leave alone."""
    state = {}
    for name, value in vars(estimator).items():
        if isinstance(value, torch.nn.Module):
            value = {k: v.detach().clone() for k, v in value.state_dict().items()}
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            value = value.copy() if isinstance(value, np.ndarray) else value.clone()
        state[name] = value
    return state


def _assert_same_state(before, estimator):
    after = _state(estimator)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values()):
            assert value.keys() == after[name].keys(), name
            assert all(torch.equal(value[k], after[name][k]) for k in value), name
        elif isinstance(value, np.ndarray):
            assert np.array_equal(value, after[name]), name
        elif isinstance(value, torch.Tensor):
            assert torch.equal(value, after[name]), name
        elif name in ("history_", "callbacks"):
            assert after[name] is value, name
        else:
            assert after[name] == value or after[name] is value, name


def _check_untouched(estimator, X, before, Z):
    _assert_same_state(before, estimator)
    assert np.array_equal(estimator.transform(X), Z)


# ---- 1: Ctrl-C ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [AutoDecoder, AutoEncoder])
def test_ctrl_c_during_fit_raises(cls, X):
    # skorch's loop swallowed every KeyboardInterrupt: a Ctrl-C returned a half-trained model.
    model = cls(n_components=2, max_iter=20, early_stopping=False, callbacks=[InterruptAt(2)], **CPU)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert not hasattr(model, "decoder_")


@pytest.mark.parametrize("cls", [AutoDecoder, AutoEncoder])
def test_ctrl_c_during_refit_leaves_the_model_as_it_was(cls, X):
    model = cls(n_components=2, max_iter=3, early_stopping=False, **CPU).fit(X)
    before, Z = _state(model), model.transform(X)
    model.set_params(max_iter=20, warm_start=True, callbacks=[InterruptAt(2)])
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    model.set_params(max_iter=3, warm_start=False, callbacks=None)
    _check_untouched(model, X, {**before, "max_iter": 3}, Z)


def test_ctrl_c_during_partial_fit_raises(X):
    model = AutoDecoder(n_components=2, batch_size=8, **CPU).partial_fit(X)
    before, Z = _state(model), model.transform(X)

    class InterruptAtBatch(Callback):
        def on_batch_end(self, net, **kwargs):
            _thread.interrupt_main()

    model.set_params(callbacks=[InterruptAtBatch()])
    with pytest.raises(KeyboardInterrupt):
        model.partial_fit(X)
    model.set_params(callbacks=None)
    _check_untouched(model, X, before, Z)


def test_ctrl_c_whose_exception_was_swallowed_still_stops_the_fit(X):
    # The handler's KeyboardInterrupt is raised wherever the main thread is: code that
    # drops it (C extensions checking for signals, finalizers) must not lose the Ctrl-C.
    class SwallowingInterrupt(Callback):
        batches = 0

        def on_batch_end(self, net, **kwargs):
            type(self).batches += 1
            if type(self).batches == 2:
                try:  # the handler runs in here, and its error is dropped
                    _thread.interrupt_main()
                    for _ in range(10**6):
                        pass
                except KeyboardInterrupt:
                    pass

    model = AutoDecoder(n_components=2, max_iter=20, batch_size=8, early_stopping=False,
                        callbacks=[SwallowingInterrupt()], **CPU)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert SwallowingInterrupt.batches == 2  # stopped at once, not at the end of the fit
    assert not hasattr(model, "decoder_")


def test_skorch_callbacks_still_stop_a_fit(X):
    # skorch's EarlyStopping ends a fit by raising KeyboardInterrupt: not an interrupt.
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=10.0, threshold_mode="abs")
    model = AutoDecoder(n_components=2, max_iter=50, early_stopping=False, callbacks=[stop], **CPU).fit(X)
    assert model.n_iter_ < 50


def test_fit_in_a_worker_thread_keeps_working(X):
    # No SIGINT handler can be set outside the main thread; skorch's stops still work there.
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=10.0, threshold_mode="abs")
    model = AutoDecoder(n_components=2, max_iter=50, early_stopping=False, callbacks=[stop], **CPU)
    errors = []

    def run():
        try:
            model.fit(X)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert not errors
    assert model.n_iter_ < 50


def test_sigint_handler_restored(X):
    previous = signal.getsignal(signal.SIGINT)
    AutoDecoder(n_components=2, max_iter=2, **CPU).fit(X)
    assert signal.getsignal(signal.SIGINT) is previous
    with pytest.raises(FloatingPointError):
        AutoDecoder(n_components=2, max_iter=2, learning_rate=1e6, **CPU).fit(X)
    assert signal.getsignal(signal.SIGINT) is previous


class _History(list):
    """skorch's history, as far as the stopping rules read it."""

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return list.__getitem__(self, key[0])[key[1]]
        return list.__getitem__(self, key)


class _Net:
    def __init__(self):
        self.history = _History()
        self.module_ = torch.nn.Linear(1, 1)


@pytest.mark.parametrize(
    "rule", [TrainingConvergence(tol=0.5, patience=1), HeldOutEarlyStopping(tol=0.5, patience=1)]
)
def test_own_stop_is_not_a_keyboard_interrupt(rule):
    # A converged fit raised KeyboardInterrupt, which hid a user's Ctrl-C from skorch's loop.
    net = _Net()
    rule.initialize()
    net.history.append(dict(train_loss=1.0, valid_loss=1.0))
    rule.on_epoch_end(net)
    net.history.append(dict(train_loss=1.0, valid_loss=1.0))
    with pytest.raises(StopTraining):
        rule.on_epoch_end(net)


# ---- 2: divergence to a huge finite loss ------------------------------------------


def _binary(X):
    return (X > 0).astype(np.float64)


DIVERGING = {
    "adam": (AutoDecoder, dict(), None),
    "sgd": (AutoDecoder, dict(optimizer="sgd"), None),
    "bce-tanh": (AutoDecoder, dict(loss="bce", activation="tanh"), _binary),
    "bfloat16": (AutoDecoder, dict(precision="bfloat16"), None),
    "gmm": (AutoDecoder, dict(latent_prior="gmm", n_prior_components=2), None),
    "encoder-start": (AutoDecoder, dict(init="encoder", encoder_max_iter=2), None),
    "early-stopping": (AutoDecoder, dict(early_stopping=True), None),
    "autoencoder": (AutoEncoder, dict(), None),
    "conv": (ConvAutoDecoder, dict(preset="mnist"), "image"),
}


@pytest.mark.parametrize("case", list(DIVERGING))
def test_divergence_raises(case, X):
    # learning_rate=1e6 took the loss from ~3 to ~1e25, reported as a converged fit.
    cls, params, transform = DIVERGING[case]
    data = X
    if transform == "image":
        data = np.random.RandomState(0).rand(32, 784)
    elif transform is not None:
        data = transform(X)
    if cls is not ConvAutoDecoder:
        params = dict(params, n_components=2)
    model = cls(max_iter=5, learning_rate=1e6, **params, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError, match="(?s)diverged.*learning rate|diverged.*learning_rate"):
            model.fit(data)


# ---- 3: a failed refit leaves the model as it was ---------------------------------


@pytest.mark.parametrize("cls", [AutoDecoder, AutoEncoder])
def test_diverging_warm_refit_leaves_the_model(cls, X):
    # warm_start trained decoder_ in place: a diverging refit left NaN weights.
    model = cls(n_components=2, max_iter=3, early_stopping=False, **CPU).fit(X)
    before, Z = _state(model), model.transform(X)
    model.set_params(warm_start=True, learning_rate=1e6, optimizer="sgd")
    with pytest.raises(FloatingPointError):
        model.fit(X)
    model.set_params(warm_start=False, learning_rate=1e-3, optimizer="adam")
    _check_untouched(model, X, before, Z)


def test_refused_refit_keeps_the_fitted_width(X):
    # Validation reset n_features_in_ before the inf was refused: the model then refused its own data.
    model = AutoDecoder(n_components=2, max_iter=3, **CPU).fit(X)
    before, Z = _state(model), model.transform(X)
    narrow = X[:, :5].copy()
    narrow[0, 0] = np.inf
    with pytest.raises(ValueError):
        model.fit(narrow)
    _check_untouched(model, X, before, Z)


def test_diverging_partial_fit_leaves_the_model(X):
    model = AutoDecoder(n_components=2, **CPU).partial_fit(X)
    before, Z = _state(model), model.transform(X)
    model.set_params(learning_rate=1e6, optimizer="sgd")
    with pytest.raises(FloatingPointError):
        model.partial_fit(X)
    model.set_params(learning_rate=1e-3, optimizer="adam")
    _check_untouched(model, X, before, Z)


def test_partial_fit_divergence_is_measured_from_the_first_call():
    # The first call blows the weights up near its end; each later call's own start
    # was already huge, so only the first call's start tells that they diverged.
    X = np.random.RandomState(0).rand(200, 16)
    model = AutoDecoder(n_components=2, learning_rate=1e6, **CPU).partial_fit(X[:50])
    with pytest.raises(FloatingPointError, match="diverged"):
        for start in range(50, 200, 50):
            model.partial_fit(X[start : start + 50])


def test_a_saturated_divergence_warns(X):
    # A sigmoid output bounds the loss: steps far too large leave it above its start, finite.
    X = np.random.RandomState(0).rand(200, 16)
    spec = ConvDecoderSpec(image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2),
                           layers=((1, 4, 2, 1),), defaults=dict(loss="mse", max_iter=5, batch_size=32))
    with pytest.warns(ConvergenceWarning, match="higher loss .* than it started"):
        ConvAutoDecoder(spec, learning_rate=1e6, **CPU).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ConvAutoDecoder(spec, learning_rate=1e-3, **CPU).fit(X)
    assert not [w for w in caught if "than it started" in str(w.message)]


def test_a_warm_refit_on_wider_data_is_refused(X):
    model = AutoDecoder(n_components=2, max_iter=3, warm_start=True, **CPU).fit(X)
    before, Z = _state(model), model.transform(X)
    with pytest.raises(ValueError, match="produces 10 features; X has 13"):
        model.fit(np.hstack([X, X[:, :3]]))
    _check_untouched(model, X, before, Z)


# ---- 8: inference steps far too large ---------------------------------------------


def test_adam_inference_overshooting_warns(X):
    # Every row came back at its start, with no warning.
    model = AutoDecoder(n_components=2, max_iter=5, inference_method="adam", **CPU).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.transform(X)  # a sound step size: no warning
    model.set_params(inference_learning_rate=1e6)
    with pytest.warns(ConvergenceWarning, match="inference_learning_rate"):
        model.transform(X)
