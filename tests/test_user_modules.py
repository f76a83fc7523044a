"""decoder= and encoder=: the user's own torch modules."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _user_modules import Encoder, TwoLayerDecoder
from torch import nn

import sklearn_autodecoder
from sklearn_autodecoder import AutoDecoder, AutoEncoder, load

FAST = dict(max_iter=3, device="cpu", random_state=0, n_jobs=1, inference_max_iter=10)


def _data(n=40, n_features=6, seed=0):
    rng = np.random.RandomState(seed)
    return (rng.randn(n, 2) @ rng.randn(2, n_features) + 0.1 * rng.randn(n, n_features)).astype(np.float32)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_user_decoder_fits_saves_and_loads_bit_identically_in_a_fresh_process(tmp_path):
    X = _data()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        given = TwoLayerDecoder(2, X.shape[1])
    before = _state(given)
    model = AutoDecoder(decoder=given, n_components=2, **FAST).fit(X)
    # The user's module is copied, never trained or moved.
    assert model.decoder_ is not given and type(model.decoder_) is TwoLayerDecoder
    for key, value in _state(given).items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert not torch.equal(model.decoder_.out.weight, given.out.weight)  # the copy trained
    Z = model.transform(X)
    assert Z.shape == (len(X), 2)
    model.save(tmp_path / "model.zip")
    np.save(tmp_path / "X.npy", X)

    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import numpy as np
        from sklearn_autodecoder import ModelFileError, load
        folder = Path(sys.argv[1])
        try:  # load imports nothing a file names: the user's module must be imported first
            load(folder / "model.zip")
        except ModelFileError as exc:
            assert "import _user_modules" in str(exc), exc
        else:
            raise AssertionError("loaded without the decoder's module")
        import _user_modules
        model = load(folder / "model.zip")
        assert type(model.decoder) is _user_modules.TwoLayerDecoder
        np.save(folder / "Z.npy", model.transform(np.load(folder / "X.npy")))
        np.save(folder / "D.npy", model.inverse_transform(model.transform(np.load(folder / "X.npy"))))
        """
    )
    root = Path(sklearn_autodecoder.__file__).parents[1]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "Z.npy"), Z)
    np.testing.assert_array_equal(np.load(tmp_path / "D.npy"), model.inverse_transform(Z))


def test_loaded_user_decoder_keeps_its_parameter_and_refits_alike(tmp_path):
    X = _data()
    model = AutoDecoder(decoder=TwoLayerDecoder(2, X.shape[1]), n_components=2, **FAST)
    model.save(tmp_path / "unfitted.zip")
    loaded = load(tmp_path / "unfitted.zip")
    for key, value in _state(model.decoder).items():
        torch.testing.assert_close(loaded.decoder.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.decoder.scale == 1.0
    with pytest.warns(Warning):  # max_iter=3 does not converge
        np.testing.assert_array_equal(loaded.fit(X).embedding_, model.fit(X).embedding_)


@pytest.mark.parametrize(
    "decoder, pattern",
    [
        (TwoLayerDecoder(2, 7), r"maps a batch of shape \(2, 2\) to \(2, 7\), expected \(2, 6\)"),
        (TwoLayerDecoder(3, 6), r"decoder must map inputs of shape \(n, 2\) to \(n, 6\).*raised RuntimeError"),
        (nn.Sequential(nn.Linear(2, 6), nn.Unflatten(1, (2, 3))), r"to \(2, 2, 3\), expected \(2, 6\)"),
    ],
)
def test_wrongly_shaped_decoder_fails_before_training(decoder, pattern, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("sklearn_autodecoder._base.RepresentationNet.fit", no_training)
    with pytest.raises(ValueError, match=pattern):
        AutoDecoder(decoder=decoder, n_components=2, **FAST).fit(_data())


def test_decoder_and_connectivity_are_exclusive():
    with pytest.raises(ValueError, match="connectivity .* not both"):
        AutoDecoder(decoder=TwoLayerDecoder(2, 6), connectivity=np.ones((2, 6)), n_components=2, **FAST).fit(_data())


def test_save_refuses_a_decoder_whose_class_cannot_be_imported(tmp_path):
    class Local(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 6)

        def forward(self, z):
            return self.layer(z)

    with pytest.raises(ValueError, match=r"Cannot save decoder: .*cannot be imported by its name"):
        AutoDecoder(decoder=Local()).save(tmp_path / "model.zip")
    hooked = nn.Linear(2, 6)
    hooked.register_forward_hook(lambda *args: None)
    with pytest.raises(ValueError, match=r"Cannot save decoder: .*hooks"):
        AutoDecoder(decoder=hooked).save(tmp_path / "model.zip")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_autoencoder_takes_user_decoder_and_encoder(tmp_path):
    X = _data()
    fast = {k: v for k, v in FAST.items() if k != "inference_max_iter"}
    model = AutoEncoder(decoder=TwoLayerDecoder(2, X.shape[1]), encoder=Encoder(X.shape[1], 2), n_components=2,
                        **fast).fit(X)
    assert type(model.encoder_) is Encoder and model.encoder_ is not model.encoder
    model.save(tmp_path / "model.zip")
    np.testing.assert_array_equal(load(tmp_path / "model.zip").transform(X), model.transform(X))
    with pytest.raises(ValueError, match=r"encoder must map inputs of shape \(n, 6\) to \(n, 2\)"):
        AutoEncoder(encoder=Encoder(6, 3), n_components=2, **fast).fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_autodecoder_encoder_is_the_amortised_start():
    X = _data()
    given = Encoder(X.shape[1], 2)
    model = AutoDecoder(init="encoder", encoder=given, encoder_max_iter=2, n_components=2, **FAST).fit(X)
    assert type(model.encoder_) is Encoder and model.encoder_ is not given
    assert model.transform(X).shape == (len(X), 2)
