"""The training loop: skorch callbacks, early stopping, seeding, logs."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Checkpoint, EarlyStopping, GradientNormClipping, LRScheduler, ProgressBar

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder
from _checks import TINY_SPEC

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return rng.randn(120, 3) @ rng.randn(3, 10) + 0.05 * rng.randn(120, 10)


def _stock_callbacks(tmp_path):
    return [
        GradientNormClipping(gradient_clip_value=1.0),
        LRScheduler(policy="StepLR", step_size=2),
        Checkpoint(dirname=str(tmp_path), monitor=None),
        ProgressBar(),
    ]


@pytest.mark.parametrize("cls", [AutoDecoder, AutoEncoder])
def test_stock_skorch_callbacks_work(cls, X, tmp_path):
    # GradientNormClipping used to crash on the latent table's sparse gradient.
    model = cls(n_components=2, max_iter=3, callbacks=_stock_callbacks(tmp_path), **CPU).fit(X)
    assert model.n_iter_ == 3
    assert (tmp_path / "params.pt").exists()


def test_gradient_clipping_clips_the_decoder_only(X):
    # early_stopping=False (the old default): 3 epochs may not beat the PCA
    # start, which early stopping would keep for both.
    clipped = AutoDecoder(n_components=2, max_iter=3, callbacks=[GradientNormClipping(1e-6)],
                          early_stopping=False, **CPU).fit(X)
    free = AutoDecoder(n_components=2, max_iter=3, early_stopping=False, **CPU).fit(X)
    # The decoder barely moves; the latents still train, so the loss falls less.
    assert not np.allclose(clipped.embedding_, free.embedding_)
    assert clipped.loss_curve_[-1] > free.loss_curve_[-1]


@pytest.mark.parametrize("cls", [AutoDecoder, AutoEncoder])
def test_skorch_early_stopping_gets_held_out_rows(cls, X):
    # skorch's EarlyStopping monitors valid_loss by default: the estimator holds
    # out validation_fraction of the rows for it, as early_stopping=True does.
    model = cls(n_components=2, max_iter=300, callbacks=[EarlyStopping(patience=2, threshold=0.05)], **CPU).fit(X)
    assert "valid_loss" in model.history_[-1]
    assert model.n_iter_ < 300


def test_held_out_latents_belong_to_the_final_decoder(X):
    # Early stopping restores the best decoder; the held-out rows of embedding_
    # are inferred against it, so transform gives back the same latents.
    # tanh: a start that training beats (a ReLU decoder's exact PCA start may be
    # kept, and then refitted on every row). init="zeros" (the old default): the
    # same start in fit and in transform (init="nearest" compares with every
    # row of embedding_, which fit did not have yet for the held-out rows).
    ad = AutoDecoder(n_components=3, max_iter=60, early_stopping=True, n_iter_no_change=2,
                     validation_fraction=0.2, tol=0.2, inference_max_iter=200, activation="tanh",
                     init="zeros", **CPU).fit(X)
    assert ad.n_iter_ < 60
    inferred = ad.transform(X.astype(np.float32))  # float32, as in training
    n_valid = int(np.ceil(0.2 * len(X)))
    close = np.isclose(ad.embedding_, inferred, atol=1e-6).all(axis=1)
    assert close.sum() >= n_valid  # the held-out rows match transform
    assert close.sum() < len(X)  # the training rows are trained latents, not inferred


def test_fit_leaves_global_rng_states_alone(X):
    cpu = torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    np_state = np.random.get_state()[1].copy()
    AutoDecoder(n_components=2, max_iter=2, init="encoder", encoder_max_iter=1, **CPU).fit(X)
    assert torch.equal(torch.random.get_rng_state(), cpu)
    if cuda is not None:
        assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), cuda))
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_progress_bar_knows_the_number_of_batches(X, capsys):
    # early_stopping=False (the old default): no validation batch in the count.
    AutoDecoder(n_components=2, max_iter=1, batch_size=30, verbose=2, early_stopping=False, **CPU).fit(X)
    err = capsys.readouterr().err
    assert "/4" in err  # 120 rows in batches of 30


def test_epoch_log_has_no_colour_codes_without_a_terminal(X, capsys):
    AutoDecoder(n_components=2, max_iter=2, verbose=1, **CPU).fit(X)
    out = capsys.readouterr().out
    assert "train_loss" in out and "\x1b[" not in out


class FakeClock:
    """A clock advancing ``step`` seconds at each reading."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_epoch_log_shows_epoch_of_n_elapsed_and_eta(X, capsys, monkeypatch):
    from sklearn_autodecoder._training import EpochLog

    # One reading at the start and one per epoch: 30 s per epoch.
    monkeypatch.setattr(EpochLog, "clock", staticmethod(FakeClock(30.0)))
    AutoDecoder(n_components=2, max_iter=4, verbose=1, tol=0.0, **CPU).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "epoch" and lines[0].split()[-2:] == ["elapsed", "eta"]
    rows = [line.split() for line in lines[2:6]]
    assert [row[0] for row in rows] == ["1/4", "2/4", "3/4", "4/4"]
    assert " ".join(rows[0]).endswith(" 30.0 s 1 min 30 s")
    assert " ".join(rows[2]).endswith(" 1 min 30 s 30.0 s")
    assert " ".join(rows[3]).endswith(" 2 min 00 s 0.0 s")


def test_format_duration():
    from sklearn_autodecoder._training import format_duration

    assert format_duration(4.21) == "4.2 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(3720) == "1 h 02 min"


def test_progress_bar_reaches_the_end_of_each_epoch(X, capsys):
    # 120 rows in batches of 30: a fast epoch is over before tqdm's first redraw.
    AutoDecoder(n_components=2, max_iter=2, batch_size=30, verbose=2, early_stopping=False, **CPU).fit(X)
    err = capsys.readouterr().err
    assert err.count("4/4") >= 2


def test_hidden_layer_sizes_accepts_an_int(X):
    ad = AutoDecoder(n_components=2, hidden_layer_sizes=7, max_iter=1, **CPU).fit(X)
    assert ad.decoder_[0].out_features == 7


def test_resolved_settings_are_exposed():
    X = np.random.RandomState(0).rand(40, 4)
    cad = ConvAutoDecoder(TINY_SPEC, learning_rate=0.5, **CPU).fit(X)
    assert cad.get_params()["max_iter"] is None
    assert cad.settings_["max_iter"] == TINY_SPEC.defaults["max_iter"]
    assert cad.settings_["learning_rate"] == 0.5


def test_pandas_inverse_transform_does_not_warn(X):
    pd = pytest.importorskip("pandas")
    import warnings

    ad = AutoDecoder(n_components=2, max_iter=1, **CPU).set_output(transform="pandas")
    Z = ad.fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])).transform(X)
    assert isinstance(Z, pd.DataFrame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ad.inverse_transform(Z).shape == X.shape


def test_spec_without_defaults_fits_with_the_package_defaults():
    from sklearn_autodecoder.presets import DEFAULT_SETTINGS, ConvDecoderSpec

    spec = ConvDecoderSpec(image_shape=(1, 2, 2), n_components=2, latent_shape=(2, 1, 1), layers=((1, 2, 1, 0),))
    X = np.random.RandomState(0).rand(30, 4)
    cad = ConvAutoDecoder(spec, max_iter=2, **CPU).fit(X)
    assert cad.settings_["loss"] == DEFAULT_SETTINGS["loss"] == "mse"
    assert cad.settings_["batch_size"] == DEFAULT_SETTINGS["batch_size"]


def test_threads_are_scoped_to_the_estimators_calls(X):
    before = torch.get_num_threads()
    seen = []

    class Spy(LRScheduler):
        def on_epoch_end(self, net, **kwargs):
            seen.append(torch.get_num_threads())

    ad = AutoDecoder(n_components=2, max_iter=2, n_jobs=1, callbacks=[Spy()], **CPU).fit(X)
    assert seen == [1, 1]
    assert torch.get_num_threads() == before
    ad.transform(X)
    assert torch.get_num_threads() == before


def test_early_stopping_snapshots_reuse_their_buffers():
    # Defect 10 of the GPU issue: a snapshot at each improvement must not
    # allocate a new copy of the state (the latent table among it) on the device.
    from types import SimpleNamespace

    from sklearn_autodecoder._training import _snapshot

    net = SimpleNamespace(module_=torch.nn.Linear(3, 2))
    first = _snapshot(net)
    pointers = {key: value.data_ptr() for key, value in first.items()}
    with torch.no_grad():
        net.module_.weight += 1.0
    second = _snapshot(net, into=first)
    assert second is first
    assert {key: value.data_ptr() for key, value in second.items()} == pointers
    torch.testing.assert_close(second["weight"], net.module_.weight, rtol=0, atol=0)
    with torch.no_grad():  # a snapshot is a copy, not a view of the live state
        net.module_.weight += 1.0
    assert not torch.equal(second["weight"], net.module_.weight)
