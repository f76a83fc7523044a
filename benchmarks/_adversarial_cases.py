"""The cases of bench_adversarial.py: each tries one thing a careful user or an attacker would.

A case is a function returning ``(outcome, detail)``; it is registered with the
defect class of issue 23 it probes. Oracles follow the issue's stated
expectations, not today's behaviour, so that the same cases measure the code
before and after the fixes:

* ok: the correct result (for Ctrl-C: ``KeyboardInterrupt`` with the estimator
  left as before; for divergence: an error or a warning that names it).
* clear error: an exception of the documented type whose message names the problem.
* silent wrong: no error and no warning naming the problem, but a wrong,
  unchanged or NaN result, a swallowed interrupt, a changed global state.
* crash: an exception of another type, or a raw torch/numpy message.
* hang: past the case's time limit (the harness kills the process).
* data loss: the user's X modified, a good model file overwritten or damaged,
  a fitted estimator destroyed by a failed call.
* unbounded alloc: peak RSS growth over 64 MiB + 16 x the input's size.

Every case builds its own data from fixed seeds; nothing here reads the clock
or the global RNGs, so that a run is reproducible.
"""

import contextlib
import copy
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from sklearn_autodecoder import (
    AutoDecoder,
    AutoDecoderImputer,
    AutoEncoder,
    ConvAutoDecoder,
    ConvAutoEncoder,
    ModelFileError,
    load,
)
from sklearn_autodecoder.presets import ConvDecoderSpec

OK, CLEAR, SILENT, CRASH, HANG, LOSS, ALLOC = (
    "ok", "clear error", "silent wrong", "crash", "hang", "data loss", "unbounded alloc",
)
OUTCOMES = (OK, CLEAR, SILENT, CRASH, HANG, LOSS, ALLOC)
REPO = Path(__file__).resolve().parent.parent
EPOCHS = 5  # training epochs of the small fits
MEMORY_SLACK = 64 * 2**20  # bytes of peak RSS growth allowed above 16 x the input's size

# Messages that are raw library internals, not the package's words.
RAW_MARKERS = (
    "cholesky", "mat1", "mat2", "has no attribute", "an integer is required", "not subscriptable",
    "unsupported operand", "defaultcpuallocator", "the size of tensor", "object is not callable",
    "object is not iterable", "keyerror", "index out of range", "linalg.", "lapack",
    "expected scalar type", "cannot convert float nan",
)
DIVERGENCE_WORDS = (
    "diverg", "learning_rate", "learning rate", "blew", "blow", "explod", "non-finite",
    "not finite", "nan", "infinit", "overflow", "unstable",
)


class Case:
    def __init__(self, id, defect, function, timeout=60, quick=True):
        self.id, self.defect, self.function = id, defect, function
        self.timeout, self.quick = timeout, quick


CASES = {}


def register(defect, id, function, timeout=60, quick=True):
    assert id not in CASES, id
    CASES[id] = Case(id, defect, function, timeout, quick)


def case(defect, id, timeout=60, quick=True):
    def decorate(function):
        register(defect, id, function, timeout, quick)
        return function
    return decorate


# ---- helpers -----------------------------------------------------------------------

GUARDED = []  # (array, its copy): the harness checks after each case that X was not modified


def guard(array):
    if isinstance(array, torch.Tensor):
        GUARDED.append((array, array.clone()))
    else:
        GUARDED.append((array, np.array(array, copy=True)))
    return array


def x_modified():
    """A description of the user's arrays that a case's call modified, or ''."""
    bad = []
    for array, original in GUARDED:
        if isinstance(array, torch.Tensor):
            same = array.shape == original.shape and torch.equal(
                torch.nan_to_num(array, 7.0), torch.nan_to_num(original, 7.0))
        else:
            same = array.shape == original.shape and np.array_equal(array, original, equal_nan=True)
        if not same:
            bad.append(f"{type(array).__name__}{tuple(array.shape)}")
    GUARDED.clear()
    return ", ".join(bad)


def data(n=200, p=10, seed=0, scale=1.0):
    """Uniform [0, 1) data (valid for every loss), registered as the user's X."""
    return guard(np.random.RandomState(seed).rand(n, p) * scale)


def short(text, n=110):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def tiny_spec(loss="mse", **defaults):
    """A 4 x 4 single-channel convolutional decoder (16 features) that trains in milliseconds."""
    return ConvDecoderSpec(
        image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2), layers=((1, 4, 2, 1),),
        defaults=dict(loss=loss, max_iter=EPOCHS, batch_size=32, **defaults),
    )


def ad(**kwargs):
    settings = dict(n_components=2, max_iter=EPOCHS, device="cpu", random_state=0)
    settings.update(kwargs)
    return AutoDecoder(**settings)


def ae(**kwargs):
    settings = dict(n_components=2, max_iter=EPOCHS, device="cpu", random_state=0)
    settings.update(kwargs)
    return AutoEncoder(**settings)


def cad(loss="mse", **kwargs):
    settings = dict(device="cpu", random_state=0)
    settings.update(kwargs)
    return ConvAutoDecoder(tiny_spec(loss), **settings)


def cae(loss="mse", **kwargs):
    settings = dict(device="cpu", random_state=0)
    settings.update(kwargs)
    return ConvAutoEncoder(tiny_spec(loss), **settings)


class Attempt:
    """The outcome of one call: its value or exception, and the warnings it raised."""

    def __init__(self, function):
        self.value = self.exc = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.value = function()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - every exception is a measured outcome
                self.exc = exc
        self.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]

    def warned(self, words):
        return any(any(word in w.lower() for word in words) for w in self.warnings)

    def warning_naming(self, words):
        return next((w for w in self.warnings if any(word in w.lower() for word in words)), "")


def describe(exc):
    return f"{type(exc).__name__}: {short(exc, 100)}"


def classify_exception(exc, names=(), types=(ValueError, TypeError), allow_raw=False):
    """CLEAR when ``exc`` is one of ``types`` and its message names the problem, else CRASH."""
    message = str(exc).lower()
    raw = not allow_raw and any(marker in message for marker in RAW_MARKERS)
    named = not names or any(name.lower() in message for name in names)
    if isinstance(exc, types) and named and not raw:
        return CLEAR, describe(exc)
    reason = "raw message" if raw else ("type" if not isinstance(exc, types) else "does not name it")
    return CRASH, f"({reason}) {describe(exc)}"


def finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


def mse(a, b):
    with np.errstate(all="ignore"):
        return float(np.mean((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2))


def variance(X):
    return float(np.mean((X - X.mean(0)) ** 2))


def reconstruction_error(est, X):
    Z = est.transform(X)
    return mse(est.inverse_transform(Z), X), Z


FITTED = {}


def fitted(key, make, X):
    """A deep copy of a fitted estimator, fitted once per run (a case may destroy its copy)."""
    if key not in FITTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FITTED[key] = make().fit(np.array(X, copy=True))
    return copy.deepcopy(FITTED[key])


def model_bytes(est):
    buffer = io.BytesIO()
    est.save(buffer)
    return buffer.getvalue()


def python_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


# A script starts as from a terminal: SIGINT raises KeyboardInterrupt (a run started
# with "&" or nohup ignores SIGINT, and Python then installs no handler), and without
# the worker's address-space limit (the memory cases set their own).
SCRIPT_HEADER = """
import json, os, sys, time, threading, _thread, warnings, copy, signal, resource
signal.signal(signal.SIGINT, signal.default_int_handler)
resource.setrlimit(resource.RLIMIT_AS, (resource.getrlimit(resource.RLIMIT_AS)[1],) * 2)
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
from sklearn_autodecoder import *
from sklearn_autodecoder.presets import ConvDecoderSpec
def tiny_spec(loss="mse"):
    return ConvDecoderSpec(image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2),
                           layers=((1, 4, 2, 1),), defaults=dict(loss=loss, max_iter=5, batch_size=32))
def report(**result):
    print("RESULT " + json.dumps(result), flush=True)
"""


def run_script(code, timeout, on_start=None, new_session=False):
    """Run ``code`` in a fresh interpreter; (returncode, the RESULT dict or None, stderr tail, timed out).

    ``on_start(process)`` is called once the script prints a line "STARTED".
    """
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT_HEADER + code], cwd=REPO, env=python_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=new_session,
    )  # else in the worker's process group: a worker killed for a hang takes its scripts along
    lines, result = [], None

    def read():
        for line in process.stdout:
            lines.append(line)
            if line.startswith("STARTED") and on_start is not None:
                on_start(process)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process.wait(timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        if new_session:  # the script's own children too (torchrun's ranks)
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()
        timed_out = True
    reader.join(5)
    stderr = process.stderr.read()
    for line in lines:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    return process.returncode, result, short(stderr.strip().splitlines()[-1] if stderr.strip() else "", 90), timed_out


# ---- 1. Ctrl-C during fit and partial_fit --------------------------------------------

CTRL_C_MODELS = {
    "autodecoder-adam": "AutoDecoder(2, device='cpu', random_state=0)",
    "autodecoder-latent-sgd": "AutoDecoder(2, latent_optimizer='sgd', device='cpu', random_state=0)",
    "autodecoder-gmm": "AutoDecoder(2, latent_prior='gmm', n_prior_components=3, device='cpu', random_state=0)",
    "autoencoder": "AutoEncoder(2, device='cpu', random_state=0)",
    "conv-autodecoder": "ConvAutoDecoder(tiny_spec(), device='cpu', random_state=0)",
}
LONG = "max_iter=100000, early_stopping=False, tol=0.0, n_iter_no_change=100000"

CTRL_C_FIT = """
X = np.random.RandomState(0).rand(3000, {p})
est = {make}
copy.deepcopy(est).set_params(max_iter=1).fit(X[:100])  # lazy imports happen here, not under the timer
warm = {warm}
if warm:
    est.set_params(max_iter=2).fit(X)
    before = est.transform(X[:50])
est.set_params({long}, warm_start=warm)
result = {{}}
timer = threading.Timer({delay}, _thread.interrupt_main)
start = time.time()
try:
    timer.start()
    est.fit(X)
    result["raised"] = None
except KeyboardInterrupt:
    result["raised"] = "KeyboardInterrupt"
except BaseException as exc:
    result["raised"] = type(exc).__name__ + ": " + str(exc)[:100]
result["elapsed"] = round(time.time() - start, 2)
timer.cancel()
try:
    time.sleep(0.3)  # a late interrupt lands here, not in the checks
except KeyboardInterrupt:
    result["late_interrupt"] = True
result["fitted"] = hasattr(est, "n_iter_")
result["n_iter"] = getattr(est, "n_iter_", None)
if warm:
    try:
        result["same"] = bool(np.array_equal(est.transform(X[:50]), before))
    except Exception as exc:
        result["same"] = False
        result["after"] = type(exc).__name__ + ": " + str(exc)[:80]
report(**result)
"""

CTRL_C_PARTIAL = """
X = np.random.RandomState(0).rand(3000, {p})
est = {make}
est.partial_fit(X[:300])
Z0 = np.random.RandomState(1).randn(20, est.n_components_)
result = {{"raised": None, "inside": False}}
for attempt in range(3):
    timer = threading.Timer({delay}, _thread.interrupt_main)
    timer.start()
    try:
        for i in range(100000):
            snapshot = copy.deepcopy(est)
            result["inside"] = True
            est.partial_fit(X)
            result["inside"] = False
        timer.cancel()
    except KeyboardInterrupt:
        result["raised"] = "KeyboardInterrupt"
    except BaseException as exc:
        result["raised"] = type(exc).__name__ + ": " + str(exc)[:100]
    timer.cancel()
    if result["raised"] != "KeyboardInterrupt" or result["inside"]:
        break
try:
    time.sleep(0.3)
except KeyboardInterrupt:
    result["late_interrupt"] = True
try:
    result["same"] = bool(np.array_equal(est.inverse_transform(Z0), snapshot.inverse_transform(Z0)))
except Exception as exc:
    result["same"] = False
    result["after"] = type(exc).__name__ + ": " + str(exc)[:80]
report(**result)
"""


def ctrl_c_case(make, p, delay, warm=False, partial=False):
    def run():
        template = CTRL_C_PARTIAL if partial else CTRL_C_FIT
        code = template.format(make=make, p=p, delay=delay, warm=warm, long=LONG)
        rc, result, err, timed_out = run_script(code, timeout=30)
        if timed_out:
            return HANG, "Ctrl-C had no effect: the fit was still running 30 s later"
        if result is None:
            return CRASH, f"script died rc={rc}: {err}"
        raised = result["raised"]
        if partial:
            if raised == "KeyboardInterrupt":
                if not result.get("inside"):
                    return OK, "interrupt landed between calls (3 tries)"
                if result["same"]:
                    return OK, "KeyboardInterrupt; estimator as before the call"
                return LOSS, "KeyboardInterrupt, but the estimator was changed by the interrupted call " + result.get("after", "")
            if raised is None:
                return SILENT, "interrupt swallowed"
            return CRASH, f"raised {raised}"
        if raised == "KeyboardInterrupt":
            if warm:
                if result.get("same"):
                    return OK, "KeyboardInterrupt; transform bit-identical to before"
                return LOSS, "KeyboardInterrupt, but the refit changed the fitted model " + result.get("after", "")
            if result["fitted"]:
                return SILENT, f"KeyboardInterrupt, but the estimator was left fitted (n_iter_={result['n_iter']})"
            return OK, "KeyboardInterrupt; estimator left unfitted"
        if raised is None:
            return SILENT, (f"interrupt swallowed: fit returned after {result['elapsed']} s "
                            f"with n_iter_={result['n_iter']}, no exception")
        return CRASH, f"raised {raised}"
    return run


for _name, _make in CTRL_C_MODELS.items():
    _p = 16 if _name.startswith("conv") else 20
    register("1 ctrl-c", f"ctrl-c/fit/{_name}", ctrl_c_case(_make, _p, 1.0), timeout=50,
             quick=_name in ("autodecoder-adam",))
# An interrupt before the training loop (validation, latent start)
register("1 ctrl-c", "ctrl-c/fit-early/autodecoder-adam", ctrl_c_case(CTRL_C_MODELS["autodecoder-adam"], 20, 0.02), timeout=50, quick=False)
register("1 ctrl-c", "ctrl-c/warm-refit/autodecoder", ctrl_c_case(CTRL_C_MODELS["autodecoder-adam"], 20, 1.0, warm=True), timeout=50)
register("1 ctrl-c", "ctrl-c/warm-refit/autoencoder", ctrl_c_case(CTRL_C_MODELS["autoencoder"], 20, 1.0, warm=True), timeout=50, quick=False)
register("1 ctrl-c", "ctrl-c/partial_fit/autodecoder", ctrl_c_case(CTRL_C_MODELS["autodecoder-adam"], 20, 1.5, partial=True), timeout=50)
register("1 ctrl-c", "ctrl-c/partial_fit/autoencoder", ctrl_c_case(CTRL_C_MODELS["autoencoder"], 20, 1.5, partial=True), timeout=50, quick=False)

SIGINT_SAVE = """
X = np.random.RandomState(0).rand(3000, 20)
est = AutoDecoder(2, device='cpu', random_state=0, {long})
AutoDecoder(2, max_iter=1, device='cpu').fit(X[:100])  # lazy imports happen here
print("STARTED", flush=True)
est.fit(X)
est.save({path!r})
"""


def sigint_save_case(delay):
    def run():
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.zip")
            good = fitted("ad", ad, data(seed=5))
            good.save(path)
            original = Path(path).read_bytes()

            def interrupt(process):
                time.sleep(delay)
                process.send_signal(signal.SIGINT)

            rc, _, _, timed_out = run_script(SIGINT_SAVE.format(long=LONG, path=path), 40, on_start=interrupt)
            if timed_out:
                return HANG, "SIGINT had no effect: fit; save still running 40 s later"
            changed = Path(path).read_bytes() != original
            if changed:
                return LOSS, f"the good model file was overwritten (exit code {rc})"
            if rc == 0:
                return SILENT, "SIGINT, yet the script exited 0"
            return OK, f"exit code {rc}, model file untouched"
    return run


for _i, _delay in enumerate((0.5, 1.0, 1.5)):
    register("1 ctrl-c", f"ctrl-c/sigint-fit-save/{_i}", sigint_save_case(_delay), timeout=50, quick=_i == 0)


# ---- 2. divergence ---------------------------------------------------------------------


def divergence_case(make, X=None, call=None):
    def run():
        Xd = data() if X is None else X()
        est = make()
        attempt = Attempt(lambda: (call or (lambda e, x: e.fit(x)))(est, Xd))
        if attempt.exc is not None:
            return classify_exception(attempt.exc, DIVERGENCE_WORDS, (ValueError, FloatingPointError, ArithmeticError, RuntimeError))
        warned = attempt.warning_naming(DIVERGENCE_WORDS)
        check = Attempt(lambda: reconstruction_error(est, Xd))
        if check.exc is not None:
            if warned:
                return OK, f"warned ({short(warned, 60)}); then transform raised"
            return CRASH, "fit returned without warning; transform then raised " + describe(check.exc)
        error = check.value[0]
        curve = np.asarray(getattr(est, "loss_curve_", []) or [], dtype=float)
        # worse than twice the mean's error is a broken model; a loss above 1e4 on
        # this data (every loss is below about 3 at the start) is a blow-up
        blown = (not math.isfinite(error) or error > 2 * variance(Xd)
                 or (curve.size and (not np.all(np.isfinite(curve)) or curve.max() > 1e4)))
        if not blown:
            return OK, f"no blow-up (reconstruction MSE {error:.3g})"
        if warned:
            return OK, f"warned: {short(warned, 80)}"
        last = f"{curve[-1]:.3g}" if curve.size else "n/a"
        return SILENT, f"no error or divergence warning; last loss {last}, reconstruction MSE {error:.3g} vs variance {variance(Xd):.3g}"
    return run


def counts():
    return guard(np.random.RandomState(0).poisson(3.0, size=(200, 10)).astype(float))


def images():
    return guard(np.random.RandomState(0).rand(200, 16))


def partial_fit_calls(est, X):
    for start in range(0, len(X), 50):
        est.partial_fit(X[start : start + 50])


DIVERGENCES = {
    "adam": (lambda: ad(learning_rate=1e6), None),
    "sgd": (lambda: ad(optimizer="sgd", learning_rate=1e6), None),
    "latent-adam": (lambda: ad(latent_learning_rate=1e8), None),
    "latent-sgd": (lambda: ad(latent_optimizer="sgd", latent_learning_rate=1e8), None),
    "bce": (lambda: ad(loss="bce", learning_rate=1e6), None),
    "tanh": (lambda: ad(activation="tanh", learning_rate=1e6), None),
    "bfloat16": (lambda: ad(precision="bfloat16", learning_rate=1e6), None),
    "gmm": (lambda: ad(latent_prior="gmm", n_prior_components=3, learning_rate=1e6), None),
    "encoder-start": (lambda: ad(init="encoder", encoder_max_iter=3, learning_rate=1e6), None),
    "poisson": (lambda: ad(loss="poisson", learning_rate=1e6), counts),
    "no-early-stopping": (lambda: ad(early_stopping=False, learning_rate=1e6), None),
    "to-nan": (lambda: ad(learning_rate=1e30, latent_learning_rate=1e30), None),
    "conv-autodecoder": (lambda: cad(learning_rate=1e6), images),
    "autoencoder-adam": (lambda: ae(learning_rate=1e6), None),
    "autoencoder-sgd": (lambda: ae(optimizer="sgd", learning_rate=1e6), None),
    "conv-autoencoder": (lambda: cae(learning_rate=1e6), images),
}
for _name, (_make, _X) in DIVERGENCES.items():
    register("2 divergence", f"diverge/{_name}", divergence_case(_make, _X),
             quick=_name in ("adam", "sgd", "bce", "autoencoder-adam", "to-nan"))
register("2 divergence", "diverge/partial_fit", divergence_case(lambda: ad(learning_rate=1e6), call=partial_fit_calls))
register("2 divergence", "diverge/partial_fit-autoencoder",
         divergence_case(lambda: ae(learning_rate=1e6), call=partial_fit_calls), quick=False)


# ---- 3. failed refits -------------------------------------------------------------------


def refit_case(key, make, refit, names=DIVERGENCE_WORDS, X=None):
    """Fit a good model, make a call that should fail (or at worst warn), check the model after."""
    def run():
        Xf = data() if X is None else X()
        est = fitted(key, make, Xf)
        probe = Xf[:40]
        before = est.transform(probe)
        if not np.array_equal(before, est.transform(probe)):
            return CRASH, "transform is not deterministic: cannot compare"
        n_epochs = len(getattr(est, "loss_curve_", []) or [])
        attempt = Attempt(lambda: refit(est, Xf))
        after = Attempt(lambda: est.transform(probe))
        same = after.exc is None and np.array_equal(after.value, before)
        if attempt.exc is not None:
            if not same:
                what = "transform now raises " + describe(after.exc) if after.exc else "transform changed"
                return LOSS, f"refit raised {type(attempt.exc).__name__}; the fitted model was damaged ({what})"
            return classify_exception(attempt.exc, names, (ValueError, TypeError, FloatingPointError, RuntimeError))
        if after.exc is not None:
            return LOSS, "refit returned; transform now raises " + describe(after.exc)
        decoded = Attempt(lambda: est.inverse_transform(after.value))
        if decoded.exc is not None or not finite(after.value, decoded.value) or not np.any(after.value):
            return LOSS, "refit returned a destroyed model (NaN or all-zero latents, or inverse_transform fails)"
        error = mse(decoded.value, probe)
        warned = attempt.warning_naming(names)
        curve = np.asarray(getattr(est, "loss_curve_", []) or [], dtype=float)
        curve = curve[n_epochs:] if getattr(est, "warm_start", False) else curve
        if error > 2 * variance(probe) or (curve.size and curve.max() > 1e4):
            if warned:
                return OK, f"refit warned: {short(warned, 70)}"
            return SILENT, (f"refit returned without error or warning after diverging "
                            f"(loss up to {curve.max() if curve.size else float('nan'):.3g}, MSE {error:.3g})")
        return OK, f"refit succeeded (MSE {error:.3g})"
    return run


def warm_diverge(est, X):
    est.set_params(warm_start=True, learning_rate=1e6)
    est.fit(X)


def warm_diverge_sgd(est, X):
    est.set_params(warm_start=True, optimizer="sgd", learning_rate=1e6)
    est.fit(X)


def wider_with_inf(est, X):
    X2 = np.hstack([X, X[:, :2]])
    X2[3, 4] = np.inf
    est.fit(guard(X2))


def same_with_nan(est, X):
    X2 = X.copy()
    X2[0, 0] = np.nan
    est.set_params(warm_start=True)
    est.fit(guard(X2))


def warm_wider(est, X):
    est.set_params(warm_start=True)
    est.fit(guard(np.hstack([X, X[:, :3]])))


def bad_param_refit(est, X):
    est.set_params(n_components=True)
    est.fit(X)


def partial_fit_inf(est, X):
    X2 = X[:50].copy()
    X2[1, 1] = np.inf
    est.partial_fit(guard(X2))


def warm_wider_inf(est, X):
    est.set_params(warm_start=True)
    wider_with_inf(est, X)


REFITS = {
    "warm-diverge/autodecoder-adam": ("ad", ad, warm_diverge, DIVERGENCE_WORDS, None),
    "warm-diverge/autodecoder-sgd": ("ad", ad, warm_diverge_sgd, DIVERGENCE_WORDS, None),
    "warm-diverge/gmm": ("gmm", lambda: ad(latent_prior="gmm", n_prior_components=3), warm_diverge, DIVERGENCE_WORDS, None),
    "warm-diverge/autoencoder": ("ae", ae, warm_diverge, DIVERGENCE_WORDS, None),
    "warm-diverge/conv-autodecoder": ("cad", cad, warm_diverge, DIVERGENCE_WORDS, images),
    "refit-wider-inf": ("ad", ad, wider_with_inf, ("inf", "finite"), None),
    "warm-refit-wider-inf": ("ad", ad, warm_wider_inf, ("inf", "finite", "features"), None),
    "warm-refit-nan": ("ad", ad, same_with_nan, ("nan", "finite", "missing"), None),
    "warm-refit-wider": ("ad", ad, warm_wider, ("features", "n_features"), None),
    "refit-bad-param": ("ad", ad, bad_param_refit, ("n_components",), None),
    "partial_fit-inf": ("ad", ad, partial_fit_inf, ("inf", "finite"), None),
    "autoencoder-refit-wider-inf": ("ae", ae, wider_with_inf, ("inf", "finite"), None),
}
for _name, (_key, _make, _refit, _names, _X) in REFITS.items():
    register("3 failed refit", f"refit/{_name}", refit_case(_key, _make, _refit, _names, _X),
             quick=_name in ("warm-diverge/autodecoder-adam", "refit-wider-inf", "partial_fit-inf"))


# ---- 4. concurrent saves, planted temporary names ----------------------------------


def distinct_models(k=4):
    return [fitted(f"ad-{seed}", lambda seed=seed: ad(random_state=seed), data(seed=seed)) for seed in range(k)]


def loadable_as_one_of(path, models):
    loaded = Attempt(lambda: load(path))
    if loaded.exc is not None:
        return False, describe(loaded.exc)
    return any(np.array_equal(loaded.value.embedding_, m.embedding_) for m in models), "another model"


def leftovers(folder, keep):
    return sorted(name for name in os.listdir(folder) if name not in keep)


def save_threads_case(n_threads, trials):
    def run():
        models = distinct_models()
        bad_files = thread_errors = 0
        left, errors = [], []
        for trial in range(trials):
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model.zip")
                barrier = threading.Barrier(n_threads)

                def save(i, path=path, barrier=barrier):
                    nonlocal thread_errors
                    barrier.wait()
                    try:
                        models[i % len(models)].save(path)
                        load(path)  # every result a save returns must load
                    except Exception as exc:  # noqa: BLE001
                        thread_errors += 1
                        errors.append(describe(exc))

                threads = [threading.Thread(target=save, args=(i,)) for i in range(n_threads)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                ok, why = loadable_as_one_of(path, models)
                bad_files += not ok
                left += leftovers(folder, {"model.zip"})
        return _saves_verdict(bad_files, trials, why, thread_errors and f"{thread_errors} saves or loads raised: "
                              f"{errors[0]}", left, f"{trials} x {n_threads} concurrent saves: every file loads")
    return run


def _saves_verdict(bad_files, trials, why, failure, left, success):
    """Outcome of concurrent saves: a final file that does not load, a failing save, leftovers, or ok."""
    if bad_files:
        return LOSS, f"{bad_files} of {trials} final files do not load ({why})"
    if failure:
        return CRASH, failure
    if left:
        return SILENT, f"temporary files left: {left[:3]}"
    return OK, success


def _save_child(model, path, barrier):
    try:
        barrier.wait(10)
        model.save(path)
        load(path)
    except BaseException:  # noqa: BLE001
        os._exit(3)
    os._exit(0)


def save_processes_case(n_processes, trials):
    def run():
        import multiprocessing

        context = multiprocessing.get_context("fork")
        models = distinct_models()
        bad_files = failures = 0
        left = []
        for trial in range(trials):
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "model.zip")
                barrier = context.Barrier(n_processes)
                processes = [context.Process(target=_save_child, args=(models[i % len(models)], path, barrier))
                             for i in range(n_processes)]
                for p in processes:
                    p.start()
                for p in processes:
                    p.join(60)
                failures += sum(p.exitcode != 0 for p in processes)
                ok, why = loadable_as_one_of(path, models)
                bad_files += not ok
                left += leftovers(folder, {"model.zip"})
        return _saves_verdict(bad_files, trials, why, failures and f"{failures} of {trials * n_processes} "
                              "save-then-load processes failed", left,
                              f"{trials} x {n_processes} concurrent process saves: every file loads")
    return run


register("4 save/temp files", "save/threads-40", save_threads_case(40, 3), timeout=120)
register("4 save/temp files", "save/threads-2x20", save_threads_case(2, 20), timeout=120, quick=False)
register("4 save/temp files", "save/processes-40", save_processes_case(40, 2), timeout=120)
register("4 save/temp files", "save/processes-2x10", save_processes_case(2, 10), timeout=120, quick=False)


def planted_case(name_of, kind):
    """Plant a symlink (to a victim file), a directory or a FIFO at a temporary name, then save."""
    def run():
        model = distinct_models(1)[0]
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.zip")
            planted = name_of(path)
            victim = os.path.join(folder, "victim.txt")
            Path(victim).write_bytes(b"precious")
            if kind == "symlink":
                os.symlink(victim, planted)
            elif kind == "dir":
                os.mkdir(planted)
            elif kind == "fifo":
                os.mkfifo(planted)
            attempt = Attempt(lambda: model.save(path))
            if Path(victim).read_bytes() != b"precious":
                return LOSS, f"save wrote through the {kind} planted at {os.path.basename(planted)}"
            if attempt.exc is not None:
                return classify_exception(attempt.exc, (os.path.basename(planted), "exists", "temporary"), (OSError, ValueError))
            ok, why = loadable_as_one_of(path, [model])
            if not ok:
                return LOSS, f"save returned but the file does not load ({why})"
            return OK, f"{kind} at {os.path.basename(planted)} left alone"
    return run


PLANTS = {
    "part": lambda p: p + ".part",
    "tmp": lambda p: p + ".tmp",
    "partial": lambda p: p + ".partial",
    "tilde": lambda p: p + "~",
    "dot-part": lambda p: os.path.join(os.path.dirname(p), "." + os.path.basename(p) + ".part"),
}
for _name, _of in PLANTS.items():
    register("4 save/temp files", f"save/planted-symlink/{_name}", planted_case(_of, "symlink"), quick=_name == "part")
register("4 save/temp files", "save/planted-dir/part", planted_case(PLANTS["part"], "dir"))
register("4 save/temp files", "save/planted-fifo/part", planted_case(PLANTS["part"], "fifo"), timeout=30)

SAVE_LOOP = """
from sklearn_autodecoder import AutoDecoder
X = np.random.RandomState(0).rand(300, 400)
est = AutoDecoder(8, hidden_layer_sizes=(512, 512), max_iter=1, device='cpu', random_state=0).fit(X)
path = {path!r}
est.save(path)
{arm}
print("STARTED", flush=True)
try:
    for i in range(100000):
        est.save(path)
except KeyboardInterrupt:
    report(raised="KeyboardInterrupt", saves=i)
"""


def interrupted_save_case(how, delay):
    def run():
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.zip")
            arm = f"threading.Timer({delay!r}, _thread.interrupt_main).start()" if how == "ctrl-c" else ""

            def kill(process):
                time.sleep(delay)
                process.kill()

            rc, result, err, timed_out = run_script(
                SAVE_LOOP.format(path=path, arm=arm), 60, on_start=kill if how == "kill-9" else None)
            if timed_out:
                return HANG, "save loop not interrupted within 60 s"
            if not os.path.exists(path):
                return LOSS, f"no model file after the interrupted save loop (rc={rc}: {err})"
            loaded = Attempt(lambda: load(path))
            if loaded.exc is not None:
                return LOSS, "the model file does not load after an interrupted save: " + describe(loaded.exc)
            left = leftovers(folder, {"model.zip"})
            if how == "ctrl-c":
                if result is None or result.get("raised") != "KeyboardInterrupt":
                    return CRASH, f"interrupt did not surface as KeyboardInterrupt (rc={rc}: {err})"
                if left:
                    return SILENT, f"Ctrl-C during save left temporary files: {left}"
                return OK, "file loads, no temporary file left"
            # kill -9 cannot clean up: a stray temporary file is expected, a damaged target is not
            return OK, f"file loads ({len(left)} temporary file(s) left by kill -9)"
    return run


register("4 save/temp files", "save/ctrl-c-during-save", interrupted_save_case("ctrl-c", 1.5), timeout=90)
for _delay in (0.7, 1.5, 2.5):
    register("4 save/temp files", f"save/kill-9-during-save/{_delay}", interrupted_save_case("kill-9", _delay),
             timeout=90, quick=False)


def overwrite_guard_case(make_bad):
    """A save that must fail must leave the good file at its path as it was."""
    def run():
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.zip")
            good = distinct_models(1)[0]
            good.save(path)
            original = Path(path).read_bytes()
            bad = make_bad()
            attempt = Attempt(lambda: bad.save(path))
            if Path(path).read_bytes() != original:
                return LOSS, ("a failed save changed the good file at its path" if attempt.exc
                              else "save replaced the good file with a file of an estimator it cannot store")
            if attempt.exc is None:
                return SILENT, "saved an estimator whose parameters cannot be stored"
            return classify_exception(attempt.exc, ("callback", "save", "architecture", "object"))
    return run


def changed_after_fit():
    est = fitted("ad", ad, data())
    est.set_params(hidden_layer_sizes=(3,))
    return est


register("4 save/temp files", "save/unstorable-param-over-good-file", overwrite_guard_case(lambda: ad(callbacks=[object()])))
register("4 save/temp files", "save/changed-params-over-good-file", overwrite_guard_case(changed_after_fit))


# ---- 5. load memory (crafted files, subprocess peak RSS) ----------------------------

MEMORY_SCRIPT = """
import resource
from sklearn_autodecoder import load, ModelFileError
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
load({good!r})  # imports and first-call allocations happen here, not in the measure
limit = status("VmSize") + 3 * 2**30  # refuse (MemoryError) rather than exhaust the shared machine
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS high-water mark
    reset = True
except OSError:
    reset = False
base = status("VmRSS")
try:
    load({path!r})
    outcome = "loaded"
except ModelFileError as exc:
    outcome = "ModelFileError: " + str(exc)[:100]
except MemoryError as exc:
    outcome = "MemoryError"
except BaseException as exc:
    outcome = type(exc).__name__ + ": " + str(exc)[:100]
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
report(outcome=outcome, growth=peak - base)
"""


def members(blob):
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {info.filename: archive.read(info.filename) for info in archive.infolist()}


def rezip(parts, compress=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content, compress_type=compress, compresslevel=9)
    return buffer.getvalue()


def good_file():
    return model_bytes(fitted("ad", ad, data()))


def small_file():
    """A model file of about 5 KB: room for a crafted part under the 10 KB of the acceptance."""
    return model_bytes(fitted("ad-small", lambda: ad(hidden_layer_sizes=(4,), max_iter=2), data(n=20, p=3)))


def with_document(mutate, blob=None):
    parts = members(blob or good_file())
    document = json.loads(parts["model.json"])
    mutate(document)
    parts["model.json"] = json.dumps(document).encode()
    return rezip(parts)


def string_array_attribute(dtype, n):
    def mutate(document):
        document["estimator"]["attributes"]["feature_names_in_"] = {
            "__type__": "string_array", "dtype": dtype, "shape": [n], "items": ["a"] * n}
    return lambda: with_document(mutate, small_file())


def deflate_bomb(member, size):
    def make():
        parts = members(small_file())
        if member == "model.json":
            parts[member] = parts[member] + b" " * size
        else:
            parts[member] = b"\0" * size
        return rezip(parts)
    return make


def huge_module():
    def mutate(document):
        document["estimator"]["params"]["hidden_layer_sizes"] = {"__type__": "tuple", "items": [2**31, 2**31]}
    return with_document(mutate, small_file())


def huge_tensor_header():
    parts = members(small_file())
    header = json.dumps({"x": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}).encode()
    parts["tensors.safetensors"] = len(header).to_bytes(8, "little") + header
    return rezip(parts, zipfile.ZIP_STORED)


def memory_case(make_blob, input_bound=10 * 1024):
    def run():
        blob = make_blob()
        with tempfile.TemporaryDirectory() as folder:
            good, path = os.path.join(folder, "good.zip"), os.path.join(folder, "crafted.zip")
            Path(good).write_bytes(small_file())
            Path(path).write_bytes(blob)
            rc, result, err, timed_out = run_script(MEMORY_SCRIPT.format(good=good, path=path), 90)
        size = len(blob)
        if timed_out:
            return HANG, f"load of a {size:,}-byte file ran past 90 s"
        if result is None:
            return CRASH, f"load process died rc={rc}: {err}"
        growth, outcome = result["growth"], result["outcome"]
        bound = MEMORY_SLACK + 16 * size
        note = f"{size:,} B file, +{growth / 2**20:.0f} MiB peak"
        if size > input_bound:
            note += f" (over the {input_bound // 1024} KB of the acceptance)"
        if outcome == "MemoryError" or "can't allocate" in outcome or growth > bound:
            return ALLOC, f"{note}: {short(outcome, 60)}"
        if outcome.startswith("ModelFileError"):
            return CLEAR, f"{note}: {short(outcome, 70)}"
        if outcome == "loaded":
            return OK, f"{note}: loaded"
        return CRASH, f"{note}: {short(outcome, 70)}"
    return run


MEMORY = {
    "unicode-U100000000": string_array_attribute("<U100000000", 10),
    "unicode-U1000000x1000": string_array_attribute("<U1000000", 1000),
    "deflate-bomb-json-under-10KB": deflate_bomb("model.json", 6_000_000),
    "deflate-bomb-tensors-under-10KB": deflate_bomb("tensors.safetensors", 6_000_000),
    "deflate-bomb-0.5MB": deflate_bomb("tensors.safetensors", 512 * 2**20),
    "huge-module-params": huge_module,
    "huge-tensor-header": huge_tensor_header,
}
for _name, _make in MEMORY.items():
    register("5 load memory", f"load-memory/{_name}", memory_case(_make), timeout=120,
             quick=_name in ("unicode-U100000000", "deflate-bomb-json-under-10KB"))


# ---- 6. threads: random_state and global RNG ----------------------------------------


def thread_rng_case(make, n_fits=12, n_jobs=4, X=None):
    def run():
        from joblib import Parallel, delayed

        Xt = data() if X is None else X()

        def fit_one(seed):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = make(seed).fit(Xt)
            first = next(iter(est.decoder_.state_dict().values())).detach().cpu().numpy().copy()
            return first, np.asarray(est.transform(Xt[:10]))

        reference = [fit_one(seed) for seed in range(n_fits)]
        torch_state = torch.random.get_rng_state()
        threaded = Parallel(n_jobs=n_jobs, backend="threading")(delayed(fit_one)(s) for s in range(n_fits))
        moved = not torch.equal(torch_state, torch.random.get_rng_state())
        torch.random.set_rng_state(torch_state)
        differ = sum(not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
                     for a, b in zip(reference, threaded))
        problems = []
        if differ:
            problems.append(f"{differ} of {n_fits} threaded fits differ from the same random_state fitted alone")
        if moved:
            problems.append("the caller's global torch RNG changed")
        return (SILENT, "; ".join(problems)) if problems else (OK, f"{n_fits} threaded fits identical, global RNG kept")
    return run


THREAD_MODELS = {
    "autodecoder": lambda s: ad(random_state=s, max_iter=2),
    "autodecoder-repeat": lambda s: ad(random_state=s, max_iter=2, hidden_layer_sizes=(32,)),
    "autodecoder-randomstate-instance": lambda s: ad(random_state=np.random.RandomState(s), max_iter=2),
    "gmm": lambda s: ad(random_state=s, max_iter=2, latent_prior="gmm", n_prior_components=3),
    "encoder-start": lambda s: ad(random_state=s, max_iter=2, init="encoder", encoder_max_iter=2),
    "autoencoder": lambda s: ae(random_state=s, max_iter=2),
    "conv-autodecoder": lambda s: cad(random_state=s, max_iter=2),
}
for _name, _make in THREAD_MODELS.items():
    register("6 threads/RNG", f"threads/{_name}", thread_rng_case(_make, X=images if _name.startswith("conv") else None),
             timeout=120, quick=_name == "autodecoder")


def threadpool_state():
    from threadpoolctl import threadpool_info

    return sorted((i.get("internal_api"), i.get("filepath"), i.get("num_threads")) for i in threadpool_info())


@case("6 threads/RNG", "threads/concurrent-transform-threadpool-limits", timeout=120)
def concurrent_transform():
    from joblib import Parallel, delayed

    est = fitted("ad", ad, data())
    X = data(seed=3)
    before = threadpool_state()
    changed = 0
    for _ in range(5):
        Parallel(n_jobs=8, backend="threading")(delayed(est.transform)(X) for _ in range(16))
        if threadpool_state() != before:
            changed += 1
            break
    if changed:
        return SILENT, "concurrent transform left the BLAS/OpenMP thread limits changed"
    return OK, "thread limits restored after 5 x 16 concurrent transforms"


# ---- 7. bce models and X outside [0, 1] ---------------------------------------------

RANGE_WORDS = ("[0, 1]", "range", "between 0 and 1", "0 and 1", "bce", "bernoulli", "outside")


def bce_range_case(key, make, method, shift, X=None):
    def run():
        Xf = data() if X is None else X()
        est = fitted(key, make, Xf)
        bad = guard(Xf[:40] + shift if shift != "scale3" else Xf[:40] * 3)
        attempt = Attempt(lambda: getattr(est, method)(bad))
        if attempt.exc is not None:
            return classify_exception(attempt.exc, RANGE_WORDS)
        warned = attempt.warning_naming(RANGE_WORDS)
        if warned:
            return OK, f"warned: {short(warned, 70)}"
        value = attempt.value
        shown = f"{float(value):.4g}" if np.ndim(value) == 0 else f"array {np.shape(value)}"
        return SILENT, f"{method}(X outside [0, 1]) returned {shown} without error or warning"
    return run


BCE_MODELS = {
    "autodecoder": ("bce-ad", lambda: ad(loss="bce"), None),
    "gmm": ("bce-gmm", lambda: ad(loss="bce", latent_prior="gmm", n_prior_components=3), None),
    "autoencoder": ("bce-ae", lambda: ae(loss="bce"), None),
    "conv-autodecoder": ("bce-cad", lambda: cad(loss="bce"), images),
}
for _method, _model, _shift, _quick in [
    ("transform", "autodecoder", 5.0, True), ("transform", "autodecoder", -0.5, False),
    ("transform", "autodecoder", "scale3", False), ("score", "autodecoder", 5.0, True),
    ("score", "autodecoder", -0.5, False), ("score_samples", "autodecoder", 5.0, True),
    ("predict", "gmm", 5.0, True), ("score", "gmm", 5.0, False),
    ("transform", "autoencoder", 5.0, True), ("score", "autoencoder", 5.0, False),
    ("transform", "conv-autodecoder", 5.0, False), ("score", "conv-autodecoder", -0.5, False),
    ("partial_fit", "autodecoder", 5.0, False), ("fit", "autodecoder", 5.0, True),
]:
    _key, _make, _X = BCE_MODELS[_model]
    register("7 bce range", f"bce/{_model}/{_method}/{_shift}", bce_range_case(_key, _make, _method, _shift, _X), quick=_quick)


# ---- 8. adam inference with a huge inference_learning_rate --------------------------

INFERENCE_WORDS = ("inference_learning_rate", "diverg", "non-finite", "nan", "learning rate")


def low_rank(n=260, p=10, seed=0):
    """Data on a 2-d manifold: inference matters (the mean latent reconstructs it badly)."""
    rng = np.random.RandomState(seed)
    return 1 / (1 + np.exp(-rng.randn(n, 2) @ (2 * rng.randn(2, p))))


def inference_case(key, make, method, lr, call="transform", X=None):
    def run():
        Xa = low_rank() if X is None else X()
        Xf, new = guard(Xa[:200]), guard(Xa[200:])
        est = fitted("inference-" + key, make, Xf)
        reference = mse(est.inverse_transform(est.transform(new)), new)
        reference_score = est.score(new) if call == "score" else None
        est.set_params(inference_method=method, inference_learning_rate=lr)
        attempt = Attempt(lambda: getattr(est, call)(new))
        if attempt.exc is not None:
            return classify_exception(attempt.exc, INFERENCE_WORDS)
        warned = attempt.warning_naming(INFERENCE_WORDS)
        if call == "score":
            value = float(attempt.value)
            wrong = not math.isfinite(value) or value < reference_score - 0.5 * abs(reference_score) - 0.1
            detail = f"score {value:.4g} vs {reference_score:.4g} with lbfgs"
        else:
            Z = attempt.value
            error = mse(est.inverse_transform(Z), new) if finite(Z) else float("nan")
            wrong = not math.isfinite(error) or error > 1.5 * reference + 1e-3
            detail = f"reconstruction MSE {error:.4g} vs {reference:.4g} with lbfgs"
            if finite(Z) and np.allclose(Z, Z[0]):
                detail += "; every row got the same latent"
        if not wrong:
            return OK, detail
        if warned:
            return OK, f"warned: {short(warned, 70)}"
        return SILENT, detail + ", no warning"
    return run


for _method, _lr, _call, _model, _quick in [
    ("adam", 1e3, "transform", "ad", False), ("adam", 1e6, "transform", "ad", True),
    ("adam", 1e12, "transform", "ad", False), ("adam", 1e30, "transform", "ad", False),
    ("adam", 1e6, "score", "ad", True), ("adam", 1e6, "transform", "gmm", False),
    ("adam", 1e6, "transform", "cad", False), ("lbfgs", 1e6, "transform", "ad", True),
    ("lm", 1e6, "transform", "ad", False), ("adam", 1e6, "transform", "ad-nearest", False),
]:
    _makes = {"ad": (lambda: ad(max_iter=40, init="mean"), None),
              "ad-nearest": (lambda: ad(max_iter=40), None),
              "gmm": (lambda: ad(max_iter=40, init="mean", latent_prior="gmm", n_prior_components=3), None),
              "cad": (lambda: cad(max_iter=40, init="mean"), lambda: low_rank(p=16))}
    _make, _X = _makes[_model]
    register("8 inference lr", f"inference/{_model}/{_method}/{_call}/lr={_lr:g}",
             inference_case(_model, _make, _method, _lr, _call, _X), quick=_quick)


# ---- 9. the default imputer -----------------------------------------------------------


def holes(X, fraction=0.1, seed=1):
    X = X.copy()
    X[np.random.RandomState(seed).rand(*X.shape) < fraction] = np.nan
    return X


def imputer_case(make_X, names=("nan", "missing", "empty", "finite", "scale", "large"), **kwargs):
    def run():
        X = guard(make_X())
        imputer = AutoDecoderImputer(**kwargs)
        attempt = Attempt(lambda: imputer.fit_transform(X))
        if attempt.exc is not None:
            return classify_exception(attempt.exc, names)
        out = np.asarray(attempt.value, dtype=float)
        if not finite(out):
            return SILENT, f"{np.isnan(out).sum()} NaN in the imputed output, no error"
        observed = ~np.isnan(X)
        if out.shape == X.shape and not np.allclose(out[observed], X[observed], rtol=1e-6):
            return SILENT, "observed entries changed"
        if out.shape[1] == X.shape[1] and out.size:
            low, high = np.nanmin(X, 0), np.nanmax(X, 0)
            span = np.where(np.isfinite(high - low), high - low, 0)
            with np.errstate(all="ignore"):
                outside = np.any((out < low - span) | (out > high + span), axis=0)
            outside &= np.isfinite(low)
            if outside.any():
                return SILENT, f"imputed values far outside the observed range in {outside.sum()} column(s)"
        warned = short(attempt.warnings[0], 50) if attempt.warnings else ""
        return OK, f"finite output {out.shape}" + (f" ({warned})" if warned else "")
    return run


def one_empty_column():
    X = holes(np.random.RandomState(0).rand(200, 10))
    X[:, 3] = np.nan
    return X


IMPUTER = {
    "scale-1e200": (lambda: holes(np.random.RandomState(0).rand(200, 10) * 1e200), {}),
    "scale-1e150-signed": (lambda: holes(np.random.RandomState(0).randn(200, 10) * 1e150), {}),
    "scale-1e-200": (lambda: holes(np.random.RandomState(0).rand(200, 10) * 1e-200), {}),
    "all-nan": (lambda: np.full((50, 10), np.nan), {}),
    "all-nan-keep-empty": (lambda: np.full((50, 10), np.nan), {"keep_empty_features": True}),
    "one-empty-column": (one_empty_column, {}),
    "single-row": (lambda: holes(np.random.RandomState(0).rand(1, 10), 0.3), {"names": ("sample",)}),
    "with-inf": (lambda: np.where(np.eye(20, 10) > 0, np.inf, holes(np.random.RandomState(0).rand(20, 10))), {}),
}
for _name, (_make, _kwargs) in IMPUTER.items():
    register("9 imputer", f"imputer/{_name}", imputer_case(_make, **_kwargs), quick=_name in ("scale-1e200", "all-nan"))


# ---- Low: bad arguments -------------------------------------------------------------


def bad_argument(function, names, accept_return=False, types=(ValueError, TypeError), allow_raw=False):
    def run():
        attempt = Attempt(function)
        if attempt.exc is not None:
            return classify_exception(attempt.exc, names, types, allow_raw)
        if accept_return:
            return OK, "accepted"
        return SILENT, "accepted without error" + (f" (warned: {short(attempt.warnings[0], 60)})" if attempt.warnings else "")
    return run


def fit_with(**kwargs):
    return lambda: ad(**kwargs).fit(data())


def fit_on(make_X, **kwargs):
    return lambda: ad(**kwargs).fit(guard(make_X()))


BAD_ARGUMENTS = {
    "n_components=True": (fit_with(n_components=True), ("n_components",)),
    "n_components=0": (fit_with(n_components=0), ("n_components",)),
    "n_components=2.5": (fit_with(n_components=2.5), ("n_components",)),
    "n_components='2'": (fit_with(n_components="2"), ("n_components",)),
    "max_iter=True": (fit_with(max_iter=True), ("max_iter",)),
    "callbacks=[object()]": (fit_with(callbacks=[object()]), ("callback",)),
    "callbacks='print'": (fit_with(callbacks="print"), ("callback",)),
    "hidden_layer_sizes=(0,)": (fit_with(hidden_layer_sizes=(0,)), ("hidden_layer_sizes",)),
    "hidden_layer_sizes=(-3,)": (fit_with(hidden_layer_sizes=(-3,)), ("hidden_layer_sizes",)),
    "hidden_layer_sizes=('a',)": (fit_with(hidden_layer_sizes=("a",)), ("hidden_layer_sizes",)),
    "batch_size=0": (fit_with(batch_size=0), ("batch_size",)),
    "learning_rate=nan": (fit_with(learning_rate=float("nan")), ("learning_rate",)),
    "learning_rate=inf": (fit_with(learning_rate=float("inf")), ("learning_rate",)),
    "tol=nan": (fit_with(tol=float("nan")), ("tol",)),
    "device='cuda'": (fit_with(device="cuda"), ("cuda", "device")),
    "device='potato'": (fit_with(device="potato"), ("potato", "device")),
    "precision='float64'": (fit_with(precision="float64"), ("precision",)),
    "random_state='abc'": (fit_with(random_state="abc"), ("random_state",)),
    "loss='xyz'": (fit_with(loss="xyz"), ("loss",)),
    "activation='xyz'": (fit_with(activation="xyz"), ("activation", "xyz")),
    "spec-defaults-max_iter=0": (lambda: ConvAutoDecoder(ConvDecoderSpec(
        image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2), layers=((1, 4, 2, 1),),
        defaults=dict(loss="mse", max_iter=0)), device="cpu", random_state=0).fit(images()), ("max_iter",)),
    "spec-defaults-batch_size=-1": (lambda: ConvAutoDecoder(ConvDecoderSpec(
        image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2), layers=((1, 4, 2, 1),),
        defaults=dict(loss="mse", max_iter=2, batch_size=-1)), device="cpu", random_state=0).fit(images()), ("batch_size",)),
    "spec-defaults-unknown-key": (lambda: ConvAutoDecoder(ConvDecoderSpec(
        image_shape=(1, 4, 4), n_components=3, linear_head=(4, 2, 2), layers=((1, 4, 2, 1),),
        defaults=dict(loss="mse", max_iter=2, bogus=1)), device="cpu", random_state=0).fit(images()), ("bogus",)),
    "X-empty": (fit_on(lambda: np.empty((0, 10))), ("sample", "0")),
    "X-1d": (fit_on(lambda: np.arange(10.0)), ("2d", "2-d", "1d", "reshape")),
    "X-3d": (fit_on(lambda: np.zeros((5, 4, 3))), ("dim", "3")),
    "X-strings": (lambda: ad().fit(np.array([["a", "b"], ["c", "d"]] * 5)), ("float", "string", "convert", "numeric")),
    "X-complex": (fit_on(lambda: np.ones((20, 4)) * 1j), ("complex",)),
    "X-nan": (fit_on(lambda: np.where(np.eye(20, 4) > 0, np.nan, 0.5)), ("nan", "missing")),
    "X-inf": (fit_on(lambda: np.where(np.eye(20, 4) > 0, np.inf, 0.5)), ("inf",)),
    "X-scaled-1e200": (fit_on(lambda: np.random.RandomState(0).rand(200, 10) * 1e200),
                       ("scale", "large", "overflow", "finite", "standardi")),
    "transform-before-fit": (lambda: ad().transform(data()), ("fit",)),
    "transform-wrong-width": (lambda: fitted("ad", ad, data()).transform(data(p=7)), ("features",)),
    "inverse-wrong-width": (lambda: fitted("ad", ad, data()).inverse_transform(np.zeros((3, 5))),
                            ("n_components", "features", "columns", "latent")),
    "partial_fit-with-gmm": (lambda: ad(latent_prior="gmm").partial_fit(data()), ("partial_fit", "prior")),
    "n_jobs='x'": (fit_with(n_jobs="x"), ("n_jobs",)),
    "save(None)": (lambda: fitted("ad", ad, data()).save(None), ("path", "none")),
    "save(123)": (lambda: fitted("ad", ad, data()).save(123), ("path", "123")),
    "save('')": (lambda: fitted("ad", ad, data()).save(""), ("path", "''", "empty")),
    "load(None)": (lambda: load(None), ("path", "none")),
    "load(123)": (lambda: load(123), ("path", "123")),
    "load('')": (lambda: load(""), ("path", "''", "empty", "no such")),
}
# Accepted as they are by design: a bool is an int to scikit-learn's validation,
# NaN marks a missing entry, and skorch takes batch_size=-1 as the whole data set.
ACCEPTABLE = {"n_components=True", "max_iter=True", "X-nan", "spec-defaults-batch_size=-1"}
OPTIONS = {
    "X-scaled-1e200": dict(types=(ValueError, FloatingPointError)),
    # scikit-learn's available_if: an AttributeError naming the method is its convention
    "partial_fit-with-gmm": dict(types=(AttributeError, ValueError, TypeError), allow_raw=True),
    "save('')": dict(types=(ValueError, TypeError, OSError)),
    "load('')": dict(types=(ValueError, TypeError, OSError)),
}
for _name, (_function, _names) in BAD_ARGUMENTS.items():
    register("L bad arguments", f"args/{_name}",
             bad_argument(_function, _names, accept_return=_name in ACCEPTABLE, **OPTIONS.get(_name, {})),
             quick=_name in ("n_components=True", "callbacks=[object()]", "spec-defaults-max_iter=0",
                             "save(None)", "load(None)", "X-nan"))


def in_folder(test):
    def run():
        with tempfile.TemporaryDirectory() as folder:
            return test(folder)
    return run


register("L bad arguments", "args/save-to-directory", in_folder(lambda d: bad_argument(
    lambda: fitted("ad", ad, data()).save(d), (d, "directory"), types=(OSError, ValueError))()))
register("L bad arguments", "args/save-to-missing-folder", in_folder(lambda d: bad_argument(
    lambda: fitted("ad", ad, data()).save(os.path.join(d, "no", "m.zip")), ("no", "directory"),
    types=(OSError, ValueError))()))
register("L bad arguments", "args/load-missing-file", in_folder(lambda d: bad_argument(
    lambda: load(os.path.join(d, "m.zip")), ("m.zip",), types=(OSError, ValueError))()))
register("L bad arguments", "args/load-directory", in_folder(lambda d: bad_argument(
    lambda: load(d), (d, "directory"), types=(OSError, ValueError))()))


# ---- Low: crafted files and format_version ------------------------------------------


def crafted_case(make_blob, names=(), newer=False):
    """Load a crafted file: ModelFileError naming the problem is the documented answer."""
    def run():
        blob = make_blob()
        X = data()
        attempt = Attempt(lambda: load(io.BytesIO(blob)))
        if attempt.exc is not None:
            if not isinstance(attempt.exc, ModelFileError):
                return CRASH, "(not ModelFileError) " + describe(attempt.exc)
            message = str(attempt.exc).lower()
            if not newer and "newer" in message:
                return CRASH, "(unhelpful: says a newer version wrote it) " + describe(attempt.exc)
            # the documented answer; its message says the file is invalid, where is a bonus
            return CLEAR, describe(attempt.exc)
        model = attempt.value
        use = Attempt(lambda: (model.transform(X[:10]), model.inverse_transform(np.zeros((2, model.n_components_)))))
        if use.exc is not None:
            return CRASH, "load accepted the file; the model then raised " + describe(use.exc)
        return OK, "loaded a working model"
    return run


def set_path(keys, value):
    def mutate(document):
        node = document
        for key in keys[:-1]:
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return lambda: with_document(mutate)


DELETE = object()
for _value in ["1", 1.0, 0, -1, True, None, [1], {"v": 1}, 1.5, DELETE]:
    _label = "missing" if _value is DELETE else json.dumps(_value)
    register("L crafted files", f"format_version={_label}",
             crafted_case(set_path(["format_version"], _value), ("format_version", "format version")),
             quick=_label in ('"1"', "true", "missing"))
for _value in (999, 2**70):  # well-formed, larger: "a newer version wrote it" is right
    register("L crafted files", f"format_version={_value}", crafted_case(set_path(["format_version"], _value), newer=True),
             quick=_value == 999)

ATTRIBUTES = ["estimator", "attributes"]


def tensors_with(mutate_header):
    def make():
        parts = members(good_file())
        raw = parts["tensors.safetensors"]
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        body = raw[8 + n :]
        header, body = mutate_header(header, body)
        text = json.dumps(header).encode()
        parts["tensors.safetensors"] = len(text).to_bytes(8, "little") + text + body
        return rezip(parts)
    return make


def first_tensor(header):
    return next(k for k in header if k != "__metadata__")


def zero_shape(header, body):
    header[first_tensor(header)]["shape"] = [0, 2**63]
    return header, body


def overlap(header, body):
    keys = [k for k in header if k != "__metadata__"]
    header[keys[1]]["data_offsets"] = header[keys[0]]["data_offsets"]
    return header, body


def header_length(value):
    def make():
        parts = members(good_file())
        raw = parts["tensors.safetensors"]
        parts["tensors.safetensors"] = value.to_bytes(8, "little") + raw[8:]
        return rezip(parts)
    return make


def extra_member():
    parts = members(good_file())
    parts["evil.py"] = b"import os"
    return rezip(parts)


def nested_json(depth):
    def make():
        parts = members(good_file())
        parts["model.json"] = b"[" * depth + b"]" * depth
        return rezip(parts)
    return make


CRAFTED = {
    "empty-bytes": (lambda: b"", ()),
    "random-bytes": (lambda: np.random.RandomState(0).bytes(300), ()),
    "empty-zip": (lambda: rezip({}), ("model.json", "holds")),
    "extra-member": (extra_member, ("evil.py", "holds")),
    "json-not-object": (lambda: rezip({"model.json": b"[]", "tensors.safetensors": members(good_file())["tensors.safetensors"]}), ("format",)),
    "json-invalid": (lambda: rezip({"model.json": b"{nope", "tensors.safetensors": members(good_file())["tensors.safetensors"]}), ("json",)),
    "json-nested-100000": (nested_json(100000), ("json", "format", "nest", "deep")),
    "class=os.system": (set_path(["estimator", "class"], "os.system"), ("class",)),
    "param-n_components='x'": (set_path(["estimator", "params", "n_components"], "x"), ("n_components",)),
    "param-unknown": (set_path(["estimator", "params", "evil"], 1), ("evil",)),
    "attribute-__class__": (set_path(ATTRIBUTES + ["__class__"], 1), ("__class__",)),
    "attribute-shadows-transform": (set_path(ATTRIBUTES + ["transform"], 1), ("transform",)),
    "attribute-shadows-inverse_transform": (set_path(ATTRIBUTES + ["inverse_transform"], "x"), ("inverse_transform",)),
    "embedding_-as-string": (set_path(ATTRIBUTES + ["embedding_"], "x"), ("embedding_",)),
    "n_features_in_=-5": (set_path(ATTRIBUTES + ["n_features_in_"], -5), ("n_features_in_",)),
    "n_features_in_='x'": (set_path(ATTRIBUTES + ["n_features_in_"], "x"), ("n_features_in_",)),
    "n_components_=10**6": (set_path(ATTRIBUTES + ["n_components_"], 10**6), ("n_components",)),
    "decoder_-missing": (set_path(ATTRIBUTES + ["decoder_"], DELETE), ("decoder_",)),
    "device_-cuda:99": (set_path(ATTRIBUTES + ["device_"], {"__type__": "device", "value": "cuda:99"}), ("device",)),
    "device_-bogus": (set_path(ATTRIBUTES + ["device_"], {"__type__": "device", "value": "potato"}), ("device", "potato")),
    "unknown-type-tag": (set_path(ATTRIBUTES + ["loss_curve_"], {"__type__": "pickle", "data": "gASV"}), ("pickle", "type")),
    "string-array-bad-dtype": (set_path(ATTRIBUTES + ["feature_names_in_"], {
        "__type__": "string_array", "dtype": "<i8", "shape": [1], "items": ["a"]}), ("string array",)),
    "tensor-shape-0x2**63": (tensors_with(zero_shape), ("shape", "tensor")),
    "tensor-overlap": (tensors_with(overlap), ("overlap",)),
    "tensor-header-length-2**63": (header_length(2**63), ("truncated", "header")),
    "tensor-header-length-0": (header_length(0), ("header", "json")),
}
for _name, (_make, _names) in CRAFTED.items():
    register("L crafted files", f"crafted/{_name}", crafted_case(_make, _names),
             quick=_name in ("random-bytes", "class=os.system", "attribute-shadows-transform", "tensor-shape-0x2**63"))

AUDIT_SCRIPT = """
import io, sys
from sklearn_autodecoder import load, ModelFileError
files = [open(p, "rb").read() for p in {paths!r}]
load(io.BytesIO(files[0]))  # warm-up: lazy imports are not the file's doing
events = []
FORBIDDEN = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
             "pickle.find_class", "ctypes.dlopen", "socket.connect", "os.remove", "os.rename", "shutil")
def hook(event, args):
    if event.startswith(FORBIDDEN) or (event == "open" and len(args) > 1 and args[1] and any(c in str(args[1]) for c in "wax+")):
        events.append(event + " " + repr(args)[:80])
sys.addaudithook(hook)
for blob in files:
    try:
        load(io.BytesIO(blob))
    except ModelFileError:
        pass
    except Exception:
        pass
report(events=events)
"""


@case("L crafted files", "crafted/audit-hook-no-code-run", timeout=90)
def audit_hook():
    blobs = [good_file()] + [make() for make, _ in CRAFTED.values()]
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, blob in enumerate(blobs):
            paths.append(os.path.join(folder, f"{i}.zip"))
            Path(paths[-1]).write_bytes(blob)
        rc, result, err, timed_out = run_script(AUDIT_SCRIPT.format(paths=paths), 80)
    if timed_out:
        return HANG, "audit script ran past 80 s"
    if result is None:
        return CRASH, f"audit script died rc={rc}: {err}"
    if result["events"]:
        return SILENT, f"load raised audit events: {result['events'][:2]}"
    return OK, f"{len(blobs)} files loaded under an audit hook: no exec, spawn, pickle or write"


# ---- Low: dtypes and byte order ------------------------------------------------------


def byte_order_case(call, dtype):
    """Non-native byte order must give what the native array gives: same values, same dtype."""
    def run():
        X = data()
        native = X.astype(np.dtype(dtype).newbyteorder("="))
        swapped = guard(X.astype(np.dtype(dtype).newbyteorder(">")))
        results = []
        for Xi in (native, swapped):
            attempt = Attempt(lambda Xi=Xi: call(Xi))
            if attempt.exc is not None:
                if Xi is native:
                    return CRASH, "native dtype failed: " + describe(attempt.exc)
                return classify_exception(attempt.exc, ("byte order", "endian", "big"))
            results.append(np.asarray(attempt.value))
        a, b = results
        if a.dtype != b.dtype:
            return SILENT, f"{dtype} big-endian gave {b.dtype} output, native gave {a.dtype}"
        if not np.array_equal(a, b):
            return SILENT, f"big-endian result differs (max |diff| {np.max(np.abs(a.astype(float) - b.astype(float))):.3g})"
        return OK, f"same values and dtype {a.dtype}"
    return run


BYTE_ORDER = {
    "fit-transform-f8": (lambda X: ad(max_iter=2).fit(X).transform(X[:20]), "f8"),
    "fit-embedding-f8": (lambda X: ad(max_iter=2).fit(X).embedding_, "f8"),
    "transform-f8": (lambda X: fitted("ad", ad, data()).transform(X[:20]), "f8"),
    "transform-f4": (lambda X: fitted("ad", ad, data()).transform(X[:20]), "f4"),
    "inverse-f8": (lambda X: fitted("ad", ad, data()).inverse_transform(X[:20, :2]), "f8"),
    "score-f8": (lambda X: np.float64(fitted("ad", ad, data()).score(X[:20])), "f8"),
    "autoencoder-transform-f8": (lambda X: fitted("ae", ae, data()).transform(X[:20]), "f8"),
    "imputer-f8": (lambda X: AutoDecoderImputer().fit_transform(holes(X)), "f8"),
}
for _name, (_call, _dtype) in BYTE_ORDER.items():
    register("L byte order", f"byte-order/{_name}", byte_order_case(_call, _dtype), quick=_name == "fit-transform-f8")


# ---- the user's X is never modified (the harness checks every case; these aim at it) --


def untouched_case(function):
    def run():
        function()
        return OK, "call returned"  # the harness turns it into data loss if a guarded X changed
    return run


def fortran_float32():
    return guard(np.asfortranarray(np.random.RandomState(0).rand(200, 10).astype(np.float32)))


UNTOUCHED = {
    "fit-float32": lambda: ad().fit(guard(np.random.RandomState(0).rand(200, 10).astype(np.float32))),
    "fit-float32-fortran": lambda: ad().fit(fortran_float32()),
    "fit-tensor": lambda: ad().fit(guard(torch.rand(200, 10, generator=torch.Generator().manual_seed(0)))),
    "transform-tensor": lambda: fitted("ad", ad, data()).transform(guard(torch.rand(50, 10, generator=torch.Generator().manual_seed(1)))),
    "partial_fit-float32": lambda: ad().partial_fit(guard(np.random.RandomState(0).rand(100, 10).astype(np.float32))),
    "score-float32": lambda: fitted("ad", ad, data()).score(guard(np.random.RandomState(0).rand(50, 10).astype(np.float32))),
    "imputer-nan-float64": lambda: AutoDecoderImputer().fit_transform(guard(holes(np.random.RandomState(0).rand(200, 10)))),
    "imputer-nan-float32": lambda: AutoDecoderImputer().fit_transform(guard(holes(np.random.RandomState(0).rand(200, 10)).astype(np.float32))),
    "imputer-sentinel": lambda: AutoDecoderImputer(missing_values=-999.0).fit_transform(
        guard(np.where(np.isnan(holes(np.random.RandomState(0).rand(200, 10))), -999.0, 0.5))),
    "autoencoder-fit-float32": lambda: ae().fit(guard(np.random.RandomState(0).rand(200, 10).astype(np.float32))),
    "bce-fit-float32": lambda: ad(loss="bce").fit(guard(np.random.RandomState(0).rand(200, 10).astype(np.float32))),
    "conv-fit-float32": lambda: cad().fit(guard(np.random.RandomState(0).rand(200, 16).astype(np.float32))),
    "sparse-fit": lambda: ad().fit(guard_sparse()),
}


def guard_sparse():
    import scipy.sparse as sp

    X = sp.random(200, 10, density=0.3, format="csr", random_state=0, dtype=np.float64)
    guard(X.data)
    return X


for _name, _function in UNTOUCHED.items():
    register("X unmodified", f"untouched/{_name}", untouched_case(_function), quick=_name in ("fit-float32", "fit-tensor"))


# ---- global state (the harness checks every case; these add the n_jobs paths) -------

GLOBAL = {
    "fit-n_jobs=2": lambda: ad(n_jobs=2).fit(data()),
    "transform-n_jobs=2": lambda: fitted("ad", ad, data()).set_params(n_jobs=2).transform(data(seed=4)),
    "save-load": lambda: load(io.BytesIO(model_bytes(fitted("ad", ad, data())))),
    "gmm-fit-score": lambda: ad(latent_prior="gmm", n_prior_components=3).fit(data()).score(data(seed=2)),
    "imputer": lambda: AutoDecoderImputer().fit_transform(holes(data())),
    "autoencoder-fit": lambda: ae().fit(data()),
}
for _name, _function in GLOBAL.items():
    register("G global state", f"global/{_name}", untouched_case(_function), quick=_name == "fit-n_jobs=2")


# ---- load fuzz --------------------------------------------------------------------------

FUZZ = {}


def fuzz_reference():
    if not FUZZ:
        from unittest import mock

        X = data(seed=11)
        # A fixed clock makes the file the same bytes in every run (the history holds
        # epoch durations, the zip entries a date): the same flips hit the same fields.
        with mock.patch("time.time", return_value=1.7e9), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ad().fit(X)
            FUZZ["blob"] = model_bytes(model)
        FUZZ["X"] = X
        FUZZ["transform"] = model.transform(X[:20])
        FUZZ["params"] = repr(sorted(model.get_params().items()))
    GUARDED.clear()
    return FUZZ


def fuzz_case(kind, index, seed):
    def run():
        reference = fuzz_reference()
        blob = bytearray(reference["blob"])
        rng = np.random.RandomState([seed, index, 0 if kind == "truncation" else 1])
        if kind == "truncation":
            cut = int(rng.randint(0, len(blob)))
            blob, where = blob[:cut], f"cut at {cut}"
        else:
            position = int(rng.randint(0, len(blob)))
            blob[position] ^= int(rng.randint(1, 256))
            where = f"byte {position}"
        attempt = Attempt(lambda: load(io.BytesIO(bytes(blob))))
        if attempt.exc is not None:
            if isinstance(attempt.exc, ModelFileError):
                return CLEAR, "refused"
            return CRASH, f"{where}: " + describe(attempt.exc)
        model = attempt.value
        same = Attempt(lambda: np.array_equal(model.transform(reference["X"][:20]), reference["transform"])
                       and repr(sorted(model.get_params().items())) == reference["params"])
        if same.exc is None and same.value:
            return OK, "identical"
        if same.exc is not None:
            return CRASH, f"{where}: loaded, then raised " + describe(same.exc)
        return SILENT, f"{where}: loaded a different model"
    return run


def fuzz_cases(n, seed):
    for kind in ("truncation", "byte flip"):
        for index in range(n):
            yield Case(f"fuzz/{kind}/{index}", f"F fuzz {kind}", fuzz_case(kind, index, seed), timeout=30)


# ---- torchrun (gloo on the CPU): mismatched settings, a rank that catches its own error --

RANK_SCRIPT = """
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
import torch.distributed as dist
from sklearn_autodecoder import AutoDecoder
dist.init_process_group("gloo")  # the default 30-minute timeout, as in a user's script
rank = dist.get_rank()
out, mode = sys.argv[1], sys.argv[2]
with open(f"{out}/pid{rank}", "w") as f:  # torchrun starts ranks in their own sessions: the case ends them
    f.write(str(os.getpid()))
X = np.random.RandomState(0).rand(400, 10)
result = {"raised": None}
def write():
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(result, f)
try:
    if mode == "loss":
        AutoDecoder(2, max_iter=3, device="cpu", random_state=0, loss="mse" if rank == 0 else "bce").fit(X)
    else:
        if rank == 1:
            X[0, 0] = np.inf
        try:
            AutoDecoder(2, max_iter=3, device="cpu", random_state=0).fit(X)
        except ValueError as exc:
            if rank != 1:
                raise
            result["raised"] = "ValueError: " + str(exc)[:150]
            write()
            time.sleep(90)  # the rank caught its error and carries on with other work
except BaseException as exc:
    result["raised"] = type(exc).__name__ + ": " + str(exc)[:150]
write()
"""

TORCHRUN = """
import subprocess
proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       {script!r}, {out!r}, {mode!r}], capture_output=True, text=True)
report(rc=proc.returncode)
"""


def torchrun_case(mode, limit=45):
    def run():
        with tempfile.TemporaryDirectory() as folder:
            script = os.path.join(folder, "rank.py")
            Path(script).write_text(RANK_SCRIPT)
            _, _, err, timed_out = run_script(TORCHRUN.format(script=script, out=folder, mode=mode), limit,
                                              new_session=True)
            ranks = [json.loads(Path(folder, f"rank{r}.json").read_text()) if Path(folder, f"rank{r}.json").exists()
                     else None for r in range(2)]
            for r in range(2):
                pid = Path(folder, f"pid{r}")
                if pid.exists():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid.read_text()), signal.SIGKILL)
        if mode == "loss":
            if any(r is None for r in ranks):
                return HANG, f"ranks with different losses still running {limit} s later"
            raised = [r["raised"] for r in ranks]
            if not any(raised):
                return SILENT, "ranks with loss='mse' and loss='bce' trained together without error"
            message = next(r for r in raised if r)
            if "loss" in message.lower() and not any(m in message.lower() for m in ("gloo", "connection")):
                return CLEAR, short(message, 100)
            return CRASH, short(message, 100)
        if ranks[0] is None:
            return HANG, f"rank 1 caught its own error; rank 0 still waiting {limit} s later"
        raised = ranks[0]["raised"]
        if raised is None:
            return OK, "rank 0 finished its fit"
        if "rank" in raised.lower() and not any(m in raised.lower() for m in ("gloo", "connection")):
            return CLEAR, short(raised, 100)
        return CRASH, short(raised, 100)
    return run


register("L torchrun", "torchrun/ranks-with-different-loss", torchrun_case("loss"), timeout=70, quick=False)
register("L torchrun", "torchrun/rank-catches-its-error", torchrun_case("catch"), timeout=70, quick=False)


# ---- the harness's own check (ADVERSARIAL_SELF_TEST=1): a hang and a dying process ----

if os.environ.get("ADVERSARIAL_SELF_TEST") == "1":
    @case("S self-test", "self-test/hang", timeout=3)
    def _hang():
        time.sleep(60)
        return OK, "not reached"

    @case("S self-test", "self-test/process-dies")
    def _dies():
        os._exit(9)

    @case("S self-test", "self-test/modifies-X")
    def _modifies():
        data()[0, 0] = 5.0
        return OK, "returned"

    @case("S self-test", "self-test/moves-global-rng")
    def _moves():
        torch.rand(1)
        return OK, "returned"

    @case("S self-test", "self-test/after")
    def _after():
        return OK, "the next worker ran"
