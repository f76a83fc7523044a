"""Resumable fits: the Checkpoint callback (issue 23, "Resumable long fits").

An interrupted fit started again with its checkpoint must end bit-identical
(on the CPU) to the fit never interrupted: the final embedding, the decoder,
the prior, the loss curve and ``n_iter_``.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from _checks import Crash
from sklearn_autodecoder import (
    AutoDecoder,
    AutoEncoder,
    Checkpoint,
    ConvAutoDecoder,
    ModelFileError,
    _checkpoint,
)
from sklearn_autodecoder.presets import ConvDecoderSpec

# Short fits stop at max_iter, unconverged: not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SCRIPT = Path(__file__).with_name("_checkpoint_fit.py")
ROOT = Path(__file__).resolve().parents[1]

MLP = dict(n_components=3, hidden_layer_sizes=(16,), inference_max_iter=20, device="cpu", random_state=0)
CONV_SPEC = ConvDecoderSpec(
    image_shape=(1, 4, 4),
    n_components=3,
    linear_head=(2, 2, 2),
    layers=((2, 2, 1, 0, True), (1, 2, 1, 0)),
    defaults=dict(loss="bce", max_iter=8, batch_size=16),
)
# (name, estimator class, parameters, data kind): early stopping on (the default on
# small MLP fits) and off, the mixture prior, an autoencoder, a small conv auto-decoder.
CASES = [
    ("defaults", AutoDecoder, dict(MLP, max_iter=40), "table"),
    ("no_early_stopping", AutoDecoder, dict(MLP, max_iter=12, early_stopping=False), "table"),
    ("gmm", AutoDecoder, dict(MLP, max_iter=12, latent_prior="gmm", n_prior_components=2), "table"),
    ("sgd_latents", AutoDecoder, dict(MLP, max_iter=12, latent_optimizer="sgd",
                                      early_stopping=False), "table"),
    ("autoencoder", AutoEncoder, dict(n_components=3, hidden_layer_sizes=(16,), max_iter=12,
                                      early_stopping=True, device="cpu", random_state=0), "table"),
    ("conv", ConvAutoDecoder, dict(preset=CONV_SPEC, inference_max_iter=10, device="cpu", random_state=0), "images"),
]


class CountEpochs(Callback):
    """Epochs begun (a stopping rule's last epoch never reaches later callbacks' on_epoch_end)."""

    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.epochs_ += 1


def _data(kind):
    rng = np.random.RandomState(0)
    if kind == "images":
        return rng.rand(96, 16)
    return rng.randn(240, 3) @ rng.randn(3, 12) + 0.1 * rng.randn(240, 12)


def _fitted_state(model):
    """Everything a fit leaves that must match, bit for bit."""
    state = {
        "n_iter_": model.n_iter_,
        "loss_curve_": model.loss_curve_,
        "history": [
            {k: row.get(k) for k in ("train_loss", "valid_loss", "train_loss_best")} for row in model.history_
        ],
    }
    for name in ("decoder_", "encoder_", "prior_"):
        module = getattr(model, name, None)
        if module is not None:
            state[name] = {k: v.clone() for k, v in module.state_dict().items()}
    if hasattr(model, "embedding_"):
        state["embedding_"] = model.embedding_.copy()
    return state


def assert_same_fit(a, b):
    a, b = _fitted_state(a), _fitted_state(b)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        elif isinstance(a[key], dict):
            assert a[key].keys() == b[key].keys(), key
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), f"{key}{name}"
        else:
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def uninterrupted():
    """Each case fitted once without a checkpoint: the reference."""
    return {name: cls(**params).fit(_data(kind)) for name, cls, params, kind in CASES}


@pytest.mark.parametrize("name, cls, params, kind", CASES, ids=[c[0] for c in CASES])
def test_resume_after_a_crash_is_bit_identical(uninterrupted, tmp_path, name, cls, params, kind):
    X = _data(kind)
    reference = uninterrupted[name]
    n_epochs = reference.n_iter_
    assert n_epochs >= 4  # room for crashes between checkpoints
    # A crash right after a save (resumed as it was) and one two epochs past it (replayed).
    for crash in (2, n_epochs - 1):
        path = tmp_path / f"{crash}.ckpt"
        with pytest.raises(RuntimeError, match="simulated crash"):
            cls(**params, callbacks=[Checkpoint(path, every=2), Crash(crash)]).fit(X)
        assert path.exists()
        counter = CountEpochs()
        resumed = cls(**params, callbacks=[Checkpoint(path, every=2), counter]).fit(X)
        assert counter.epochs_ == n_epochs - 2 * (crash // 2)  # only the epochs left ran
        assert_same_fit(resumed, reference)


def test_checkpoint_does_not_change_the_fit(uninterrupted, tmp_path):
    name, cls, params, kind = CASES[0]
    model = cls(**params, callbacks=[Checkpoint(tmp_path / "fit.ckpt", every=3)]).fit(_data(kind))
    assert_same_fit(model, uninterrupted[name])


@pytest.mark.parametrize("name, cls, params, kind", CASES[:2], ids=[c[0] for c in CASES[:2]])
def test_finished_fit_rerun_gives_the_same_model(tmp_path, name, cls, params, kind):
    # Stopped by early stopping (defaults), or at max_iter: no epoch runs again.
    X, path = _data(kind), tmp_path / "fit.ckpt"
    first = cls(**params, callbacks=[Checkpoint(path, every=5)]).fit(X)
    counter = CountEpochs()
    again = cls(**params, callbacks=[Checkpoint(path, every=5), counter]).fit(X)
    assert counter.epochs_ == 0
    assert_same_fit(again, first)


def test_max_iter_may_grow_and_n_iter_continues(tmp_path):
    X, path = _data("table"), tmp_path / "fit.ckpt"
    params = dict(MLP, early_stopping=False)
    short = AutoDecoder(**params, max_iter=6, callbacks=[Checkpoint(path, every=4)]).fit(X)
    assert short.n_iter_ == 6
    longer = AutoDecoder(**params, max_iter=10, callbacks=[Checkpoint(path, every=4)]).fit(X)
    assert longer.n_iter_ == 10
    assert_same_fit(longer, AutoDecoder(**params, max_iter=10).fit(X))
    with pytest.raises(ValueError, match=r"epoch 10, past max_iter=8: set max_iter to at least 10"):
        AutoDecoder(**params, max_iter=8, callbacks=[Checkpoint(path)]).fit(X)


def test_random_state_none_resumes_with_the_checkpoints_seed(tmp_path):
    # random_state=None draws the fit's seed from NumPy's global RNG: the resumed fit
    # must take the interrupted fit's seed (its split and starts), not a new draw.
    X, path = _data("table"), tmp_path / "fit.ckpt"
    params = dict(MLP, random_state=None, max_iter=6, early_stopping=True)
    saved = np.random.get_state()
    try:
        np.random.seed(7)
        with pytest.raises(RuntimeError, match="simulated crash"):
            AutoDecoder(**params, callbacks=[Checkpoint(path, every=2), Crash(3)]).fit(X)
        np.random.seed(7)
        reference = AutoDecoder(**params).fit(X)
        np.random.seed(8)
        resumed = AutoDecoder(**params, callbacks=[Checkpoint(path, every=2)]).fit(X)
    finally:
        np.random.set_state(saved)
    assert_same_fit(resumed, reference)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(learning_rate=0.05), r"learning_rate \(0\.01 in the checkpoint, 0\.05 now\)"),
        (dict(hidden_layer_sizes=(8,)), r"hidden_layer_sizes \(\[16\] in the checkpoint, \[8\] now\)"),
        (dict(X="values"), r"X's values \(same shape and dtype, but sampled rows differ\)"),
        (dict(X="rows"), r"X's shape \(\[240, 12\] in the checkpoint, \[200, 12\] now\)"),
        (dict(X="float32"), r"X's dtype \(float64 in the checkpoint, float32 now\)"),
    ],
)
def test_mismatch_names_what_differs(tmp_path, change, message):
    X, path = _data("table"), tmp_path / "fit.ckpt"
    params = dict(MLP, learning_rate=0.01, max_iter=2, early_stopping=False)
    AutoDecoder(**params, callbacks=[Checkpoint(path)]).fit(X)
    change = dict(change)
    other = {"values": X + 1e-3, "rows": X[:200], "float32": X.astype(np.float32)}.get(change.pop("X", None), X)
    with pytest.raises(ValueError, match=message) as error:
        AutoDecoder(**{**params, **change}, callbacks=[Checkpoint(path)]).fit(other)
    assert "delete the file" in str(error.value)


def test_another_estimator_class_is_refused(tmp_path):
    X, path = _data("table"), tmp_path / "fit.ckpt"
    AutoEncoder(n_components=3, max_iter=2, device="cpu", random_state=0, callbacks=[Checkpoint(path)]).fit(X)
    with pytest.raises(ValueError, match=r"the estimator \(AutoEncoder in the checkpoint, AutoDecoder now\)"):
        AutoDecoder(**dict(MLP, max_iter=2), callbacks=[Checkpoint(path)]).fit(X)


def test_warm_start_refit_is_not_taken_for_its_first_fit(tmp_path):
    # A second warm-started fit continues the fitted decoder: the first fit's (finished)
    # checkpoint is not its own, and resuming it would silently train nothing.
    X, path = _data("table"), tmp_path / "fit.ckpt"
    model = AutoDecoder(**dict(MLP, max_iter=2, warm_start=True), callbacks=[Checkpoint(path)]).fit(X)
    with pytest.raises(ValueError, match="the model the fit starts from"):
        model.fit(X)


def test_free_parameters_may_change(tmp_path):
    X, path = _data("table"), tmp_path / "fit.ckpt"
    params = dict(MLP, max_iter=6, early_stopping=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        AutoDecoder(**params, callbacks=[Checkpoint(path, every=2), Crash(3)]).fit(X)
    resumed = AutoDecoder(**params, verbose=1, n_jobs=1, callbacks=[Checkpoint(path, every=3)]).fit(X)
    assert_same_fit(resumed, AutoDecoder(**params).fit(X))


def test_bad_files_and_arguments_give_clear_errors(tmp_path):
    X = _data("table")
    params = dict(MLP, max_iter=2)
    not_a_checkpoint = tmp_path / "x.ckpt"
    not_a_checkpoint.write_bytes(b"not a zip file")
    with pytest.raises(ModelFileError, match="not a checkpoint file"):
        AutoDecoder(**params, callbacks=[Checkpoint(not_a_checkpoint)]).fit(X)
    model_file = tmp_path / "model.ckpt"
    AutoDecoder(**params).fit(X).save(model_file)
    with pytest.raises(ModelFileError, match="not a checkpoint file"):
        AutoDecoder(**params, callbacks=[Checkpoint(model_file)]).fit(X)
    for every in (0, 1.5, True):
        with pytest.raises(ValueError, match="every must be an integer >= 1"):
            AutoDecoder(**params, callbacks=[Checkpoint(tmp_path / "a", every=every)]).fit(X)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        AutoDecoder(**params, callbacks=[Checkpoint(None)]).fit(X)
    with pytest.raises(ValueError, match="pass one"):
        AutoDecoder(**params, callbacks=[Checkpoint(tmp_path / "a"), Checkpoint(tmp_path / "b")]).fit(X)
    with pytest.raises(ValueError, match="not partial_fit"):
        AutoDecoder(**dict(params, max_iter=1), callbacks=[Checkpoint(tmp_path / "a")]).partial_fit(X)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    X, path = _data("table"), tmp_path / "fit.ckpt"
    params = dict(MLP, max_iter=6, early_stopping=False)
    writes = []
    write_tensors = _checkpoint._write_tensors

    def dying_write(file, tensors):
        writes.append(len(tensors))
        if len(writes) == 2:  # the second save dies halfway through its tensors
            file.write(b"\0" * 1000)
            raise OSError("No space left on device")
        write_tensors(file, tensors)

    monkeypatch.setattr(_checkpoint, "_write_tensors", dying_write)
    with pytest.raises(OSError, match="No space left"):
        AutoDecoder(**params, callbacks=[Checkpoint(path, every=2)]).fit(X)
    monkeypatch.setattr(_checkpoint, "_write_tensors", write_tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.ckpt"]  # no partial file left
    document = json.loads(zipfile.ZipFile(path).read(_checkpoint.DOCUMENT_MEMBER))
    assert len(document["history"]) == 2  # the first save, whole
    resumed = AutoDecoder(**params, callbacks=[Checkpoint(path, every=2)]).fit(X)
    assert_same_fit(resumed, AutoDecoder(**params).fit(X))


def _env():
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=path)


def kill_during_fit(data_path, checkpoint, params, kill_epoch, delay):
    """Run _checkpoint_fit.py, ``kill -9`` it ``delay`` s after it reports epoch ``kill_epoch``.

    Returns the last epoch it reported (None if it finished first).
    """
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(data_path), str(checkpoint), json.dumps(params)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    last = None
    try:
        for line in process.stdout:
            if line.startswith("epoch"):
                last = int(line.split()[1])
                if last == kill_epoch:
                    time.sleep(delay)
                    os.kill(process.pid, signal.SIGKILL)
                    break
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "the fit ended before it was killed"
    return last


def test_kill_9_then_resume_is_bit_identical(tmp_path):
    # A real SIGKILL at a random point (seeded): during an epoch or during a save.
    rng = np.random.RandomState(23)
    X = np.random.RandomState(1).randn(600, 4) @ np.random.RandomState(2).randn(4, 20)
    data_path = tmp_path / "X.npy"
    np.save(data_path, X)
    params = dict(n_components=4, hidden_layer_sizes=(32,), max_iter=12, early_stopping=True,
                  n_iter_no_change=50, device="cpu", random_state=0)
    reference = AutoDecoder(**params).fit(X)
    for trial in range(1):  # five kill points: benchmarks/bench_resume.py
        checkpoint = tmp_path / f"{trial}.ckpt"
        kill_epoch = int(rng.randint(1, params["max_iter"] - 1))
        kill_during_fit(data_path, checkpoint, dict(params, every=1), kill_epoch, float(rng.uniform(0, 0.05)))
        resumed = AutoDecoder(**params, callbacks=[Checkpoint(checkpoint, every=1)]).fit(X)
        assert_same_fit(resumed, reference)


def test_torchrun_two_ranks_resume_bit_identical(tmp_path):
    # Rank 0 gathers the latents each rank trained and writes; every rank reads and takes
    # back its own rows: each rank's resumed fit equals its uninterrupted one.
    rng = np.random.RandomState(0)
    np.save(tmp_path / "X.npy", rng.randn(400, 3) @ rng.randn(3, 20) + 0.05 * rng.randn(400, 20))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPT.with_name("_distributed_checkpoint.py")), str(tmp_path / "X.npy"), str(tmp_path)]
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        results = json.loads((tmp_path / f"result_{rank}.json").read_text())
        assert len(results) == 2
        for name, same in results.items():
            assert same["embedding"] and same["decoder"] and same["loss_curve"], (rank, name)
            assert same["valid_loss"], (rank, name)  # the held-out latents each rank tracks
            assert same["n_iter"][0] == same["n_iter"][1], (rank, name)
