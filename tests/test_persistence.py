"""save/load: exact round trips in a fresh process, and files that cannot run code."""

import builtins
import copy
import inspect
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _checks import TINY_SPEC
from sklearn.base import BaseEstimator, clone
from skorch.callbacks import Callback
from skorch.history import History

import sklearn_autodecoder
from sklearn_autodecoder import (
    AutoDecoder,
    AutoDecoderImputer,
    AutoEncoder,
    ConvAutoDecoder,
    ConvAutoEncoder,
    load,
)
from sklearn_autodecoder._persistence import (
    FORMAT_VERSION,
    MODEL_MEMBER,
    TENSORS_MEMBER,
    TYPE_KEY,
    ModelFileError,
    _read_tensors,
)

SMALL = dict(hidden_layer_sizes=(8,), max_iter=3, device="cpu", random_state=0)
AD_SMALL = dict(SMALL, inference_max_iter=10)


def make_models():
    return {
        "ad_zeros": AutoDecoder(**AD_SMALL),
        "ad_encoder": AutoDecoder(init="encoder", encoder_max_iter=2, **AD_SMALL),
        # init="nearest" keeps a tensor cache, _references_.
        "ad_nearest": AutoDecoder(init="nearest", **{**AD_SMALL, "random_state": np.random.RandomState(1)}),
        "conv_ad": ConvAutoDecoder(TINY_SPEC, inference_max_iter=10, device="cpu", random_state=0),
        # A sparse linear decoder: an array parameter and a bool buffer.
        "ad_sparse": AutoDecoder(**{**AD_SMALL, "hidden_layer_sizes": ()}, connectivity=np.eye(2, 4)),
        "ae": AutoEncoder(**SMALL),
        "conv_ae": ConvAutoEncoder(TINY_SPEC, device="cpu", random_state=0),
        "imputer": AutoDecoderImputer(AutoDecoder(init="nearest", **AD_SMALL), n_candidates=2),
    }


NAMES = list(make_models())


def _data():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 4)  # 4 = the 1x2x2 images of TINY_SPEC
    X_test = rng.rand(9, 4)
    X_test[rng.rand(*X_test.shape) < 0.25] = np.nan
    X_test[:, 0] = 0.5  # every row keeps an observed entry
    return X, X_test


@pytest.fixture(scope="module")
def fitted():
    X, _ = _data()
    X_missing = X.copy()
    X_missing[::5, 1] = np.nan
    models = make_models()
    for name, model in models.items():
        # The imputer's model trains in float32 (its embedding_ is float32).
        model.fit(X_missing.astype("float32") if name == "imputer" else X)
    return models


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name, model in fitted.items():
        model.save(folder / f"{name}.zip")
    return folder


def outputs(model, X):
    """What a fitted model computes, as arrays: every method that exists."""
    result = {"transform": model.transform(X), "transform32": model.transform(X.astype("float32"))}
    if hasattr(model, "inverse_transform"):
        result["inverse_transform"] = model.inverse_transform(result["transform"])
    if hasattr(model, "score"):
        result["score"] = np.array(model.score(X))
    if hasattr(model, "predict"):
        result["predict"] = np.asarray(model.predict(X))
    if hasattr(model, "sample"):
        seeded = "random_state" in inspect.signature(model.sample).parameters
        result["sample"] = np.asarray(model.sample(5, random_state=0) if seeded else model.sample(5))
    return result


def assert_same(a, b, path="value"):
    """Equal values of the same types; arrays, tensors and floats bit for bit."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        if a.dtype.kind == "O":
            assert a.tolist() == b.tolist(), path
        else:
            assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.device == b.device and a.requires_grad == b.requires_grad, path
        assert torch.equal(a.detach(), b.detach()), path
    elif isinstance(a, torch.nn.Module):
        assert [(n, m.training, type(m)) for n, m in a.named_modules()] == [
            (n, m.training, type(m)) for n, m in b.named_modules()
        ], path
        assert_same(a.state_dict(), b.state_dict(), path)
    elif isinstance(a, np.random.RandomState):
        assert_same(a.get_state(), b.get_state(), path)
    elif isinstance(a, BaseEstimator):
        assert_same(vars(a), vars(b), path)
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert np.array(a).tobytes() == np.array(b).tobytes(), path
    else:
        assert a == b, path


# ---- round trips --------------------------------------------------------------------

CHILD = """
import sys, warnings
import numpy as np
warnings.simplefilter("error")  # no version or device warning on the same machine
from sklearn.exceptions import ConvergenceWarning
warnings.simplefilter("ignore", ConvergenceWarning)  # the tiny models' short inference
from sklearn_autodecoder import load
from sklearn.base import clone
folder, names = sys.argv[1], sys.argv[2:]
X_test = np.load(f"{folder}/X_test.npy")
for name in names:
    model = load(f"{folder}/{name}.zip")
    clone(model)
    np.savez(f"{folder}/{name}.child.npz", **outputs(model, X_test))
"""


def test_round_trip_in_a_fresh_process_is_bit_identical(fitted, saved):
    _, X_test = _data()
    np.save(saved / "X_test.npy", X_test)
    # The child computes the outputs with this module's own function.
    script = "import inspect\nimport numpy as np\n" + inspect.getsource(outputs) + textwrap.dedent(CHILD)
    root = str(Path(sklearn_autodecoder.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", script, str(saved), *NAMES], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    for name in NAMES:
        expected = outputs(fitted[name], X_test)
        with np.load(saved / f"{name}.child.npz") as got:
            assert sorted(got.files) == sorted(expected), name
            for key, value in expected.items():
                assert_same(got[key], value, f"{name}.{key}")


@pytest.mark.parametrize("name", NAMES)
def test_loaded_model_equals_the_saved_one(name, fitted, saved):
    model, loaded = fitted[name], load(saved / f"{name}.zip")
    # Every parameter and fitted attribute, with its type, arrays and
    # weights bit for bit, modules in the same modes.
    assert_same(vars(loaded), vars(model))
    assert_same(loaded.get_params(deep=True), model.get_params(deep=True))
    assert_same(vars(clone(loaded)), vars(clone(model)))


def test_loaded_model_refits_and_saves_again(fitted, saved, tmp_path):
    X, _ = _data()
    loaded = load(saved / "ad_zeros.zip")
    loaded.set_params(warm_start=True, max_iter=1).fit(X)
    loaded.save(tmp_path / "again.zip")
    assert_same(vars(load(tmp_path / "again.zip")), vars(loaded))


def test_file_objects_and_history(fitted):
    buffer = io.BytesIO()
    fitted["ae"].save(buffer)
    buffer.seek(0)
    loaded = load(buffer)
    assert isinstance(loaded.history_, History)
    assert loaded.history_[:, "train_loss"] == fitted["ae"].history_[:, "train_loss"]


def test_pandas_feature_names_and_output_config(tmp_path):
    pd = pytest.importorskip("pandas")
    X, X_test = _data()
    columns = ["a", "b", "c", "d"]
    model = AutoEncoder(**SMALL).set_output(transform="pandas").fit(pd.DataFrame(X, columns=columns))
    model.save(tmp_path / "model.zip")
    loaded = load(tmp_path / "model.zip")
    assert_same(vars(loaded), vars(model))
    Z = loaded.transform(pd.DataFrame(X_test, columns=columns))
    pd.testing.assert_frame_equal(Z, model.transform(pd.DataFrame(X_test, columns=columns)))


def test_tensors_member_is_a_standard_safetensors_file(fitted, saved):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    with zipfile.ZipFile(saved / "ad_encoder.zip") as archive:
        theirs = safetensors_torch.load(archive.read(TENSORS_MEMBER))
        ours = _read_tensors(bytearray(archive.read(TENSORS_MEMBER)))
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[key], ours[key]) for key in ours)
    assert torch.equal(theirs["decoder_.0.weight"], fitted["ad_encoder"].decoder_[0].weight)


def test_load_runs_no_unpickler_and_no_eval(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("load must not unpickle or evaluate")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                         (torch, "load"), (builtins, "eval"), (builtins, "exec")]:
        monkeypatch.setattr(module, name, forbidden)
    for name in NAMES:
        load(saved / f"{name}.zip")


# ---- files that must not load -------------------------------------------------------


class _Touch:
    """Unpickling this creates the file at ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def _rewrite(source, target, member, content):
    """Copy the zip ``source`` to ``target`` with ``member`` replaced by ``content``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, content if info.filename == member else old.read(info))


def _edit_model(source, target, edit):
    with zipfile.ZipFile(source) as archive:
        document = json.loads(archive.read(MODEL_MEMBER))
    edit(document)
    _rewrite(source, target, MODEL_MEMBER, json.dumps(document))


def test_the_code_running_payload_is_live(tmp_path):
    # So that the test below can fail: unpickling the payload does create a file.
    pickle.loads(pickle.dumps(_Touch(tmp_path / "proof"))).close()
    assert (tmp_path / "proof").exists()


@pytest.mark.parametrize("member", [MODEL_MEMBER, TENSORS_MEMBER, "whole file"])
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_in_place_of_any_part_does_not_run(member, writer, saved, tmp_path):
    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    if writer == "pickle":
        pickle.dump({"weights": _Touch(marker)}, payload)
    else:
        torch.save({"weights": _Touch(marker)}, payload)
    target = tmp_path / "evil.zip"
    if member == "whole file":
        target.write_bytes(payload.getvalue())
    else:
        _rewrite(saved / "ad_encoder.zip", target, member, payload.getvalue())
    with pytest.raises(ModelFileError):
        load(target)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_file(keep, saved, tmp_path):
    data = (saved / "ad_zeros.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: keep if isinstance(keep, int) else int(keep * len(data))])
    with pytest.raises(ModelFileError, match="damaged|truncated"):
        load(tmp_path / "cut.zip")


def test_flipped_weight_byte_is_detected(fitted, saved, tmp_path):
    data = bytearray((saved / "ad_zeros.zip").read_bytes())
    at = data.find(fitted["ad_zeros"].embedding_.tobytes())
    assert at > 0
    data[at + 3] ^= 0xFF
    (tmp_path / "flipped.zip").write_bytes(data)
    with pytest.raises(ModelFileError, match="CRC"):
        load(tmp_path / "flipped.zip")


def _set(*path):
    """An edit of a model document: the value at ``path[:-1]`` becomes ``path[-1]``."""
    *keys, value = path

    def edit(document):
        node = document
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


TAMPERINGS = {
    "unknown class": (_set("estimator", "class", "Pipeline"), "unknown estimator class"),
    "unknown parameter": (_set("estimator", "params", "command", "rm"), "unknown parameters"),
    "invalid parameter": (_set("estimator", "params", "activation", "system"), "activation"),
    "dunder attribute": (_set("estimator", "attributes", "__class__", "x"), "invalid attribute"),
    "unknown type tag": (_set("estimator", "attributes", "n_iter_", {TYPE_KEY: "pickle"}), "unknown value type"),
    "missing tensor": (_set("estimator", "attributes", "embedding_", "tensor", "nope"), "Missing tensor"),
    "architecture": (_set("estimator", "params", "hidden_layer_sizes", {TYPE_KEY: "tuple", "items": [9]}),
                     "do not fit the architecture"),
    "format version": (_set("format_version", FORMAT_VERSION + 1), "Unknown model file format version"),
    "format": (_set("format", "pickle"), "Not a sklearn_autodecoder model file"),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_tampered_model_json(tampering, saved, tmp_path):
    edit, message = TAMPERINGS[tampering]
    _edit_model(saved / "ad_zeros.zip", tmp_path / "tampered.zip", edit)
    with pytest.raises(ModelFileError, match=message):
        load(tmp_path / "tampered.zip")


def _tensors_file(header, data=b""):
    text = json.dumps(header).encode()
    return bytearray(len(text).to_bytes(8, "little") + text + data)


@pytest.mark.parametrize(
    "buffer, message",
    [
        (bytearray(b"\xff" * 8), "truncated"),
        (_tensors_file({"a": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}, bytes(8)), "unknown dtype"),
        (_tensors_file({"a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), "bytes for shape"),
        (_tensors_file({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 16]}}, bytes(8)), "offsets"),
        (_tensors_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)), "overlap"),
    ],
)
def test_malformed_tensor_headers(buffer, message):
    with pytest.raises(ModelFileError, match=message):
        _read_tensors(buffer)


def test_tensor_bytes_cannot_make_invalid_bools():
    buffer = _tensors_file({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x00\x07")
    assert _read_tensors(buffer)["a"].tolist() == [False, True]


# ---- versions and devices ------------------------------------------------------------


def test_other_versions_warn_but_load(fitted, saved, tmp_path):
    _edit_model(saved / "ad_zeros.zip", tmp_path / "old.zip", _set("versions", "torch", "1.0"))
    with pytest.warns(UserWarning, match=r"torch 1\.0 \(now"):
        loaded = load(tmp_path / "old.zip")
    _, X_test = _data()
    assert_same(loaded.transform(X_test), fitted["ad_zeros"].transform(X_test))


def _on_missing_gpu(node):
    """Mark every device in a model document as a GPU this machine lacks."""
    if isinstance(node, dict):
        if node.get(TYPE_KEY) == "device":
            node["value"] = "cuda:99"
        if node.get(TYPE_KEY) in ("module", "tensor"):
            node["device"] = "cuda:99"
        for value in node.values():
            _on_missing_gpu(value)
    elif isinstance(node, list):
        for value in node:
            _on_missing_gpu(value)


@pytest.mark.parametrize("name", ["ad_nearest", "imputer"])
def test_model_from_an_absent_gpu_loads_on_the_cpu(name, fitted, saved, tmp_path):
    _edit_model(saved / f"{name}.zip", tmp_path / "gpu.zip", _on_missing_gpu)
    with pytest.warns(UserWarning, match="cuda:99, which is not available here"):
        loaded = load(tmp_path / "gpu.zip")
    model = getattr(loaded, "estimator_", loaded)
    assert model.device_ == torch.device("cpu")
    _, X_test = _data()
    assert_same(loaded.transform(X_test), fitted[name].transform(X_test))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_model_saved_on_a_gpu_loads_in_a_cpu_only_process(tmp_path):
    X, X_test = _data()
    model = AutoDecoder(**{**AD_SMALL, "device": "cuda"}).fit(X)
    model.save(tmp_path / "gpu.zip")
    np.save(tmp_path / "X_test.npy", X_test)
    script = (
        "import sys, warnings, numpy as np, torch\n"
        "from sklearn_autodecoder import load\n"
        "assert not torch.cuda.is_available()\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    model = load(sys.argv[1] + '/gpu.zip')\n"
        "assert any('not available here' in str(w.message) for w in caught)\n"
        "assert model.device_.type == 'cpu'\n"
        "np.save(sys.argv[1] + '/Z.npy', model.transform(np.load(sys.argv[1] + '/X_test.npy')))\n"
    )
    root = str(Path(sklearn_autodecoder.__file__).parents[1])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": root}
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "Z.npy"), model.transform(X_test), rtol=1e-4, atol=1e-6)


# ---- what save refuses ----------------------------------------------------------------


class _MyAutoDecoder(AutoDecoder):
    pass


@pytest.mark.parametrize(
    "model, message",
    [
        (
            AutoDecoder(callbacks=[Callback()]),
            r"callbacks: callbacks are not part of a fitted model.*model\.set_params\(callbacks=None\)",
        ),
        (AutoDecoderImputer(AutoDecoder(callbacks=[Callback()])), r"estimator\.callbacks: callbacks are not"),
        (AutoDecoder(random_state=np.random.default_rng(0)), "random_state: a numpy.random"),
        (_MyAutoDecoder(), "_MyAutoDecoder; save.. stores only the package's public estimators"),
        (AutoDecoderImputer(_MyAutoDecoder()), "estimator is a .*_MyAutoDecoder"),
    ],
)
def test_save_refuses_what_it_cannot_store_safely(model, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        model.save(tmp_path / "model.zip")
    assert list(tmp_path.iterdir()) == []  # nothing written, no partial file


def test_save_refuses_unknown_fitted_attributes(fitted, tmp_path):
    model = copy.deepcopy(fitted["ad_zeros"])
    model.custom_ = lambda x: x
    with pytest.raises(ValueError, match="Cannot save custom_: a builtins.function .*callable"):
        model.save(tmp_path / "model.zip")


def test_save_refuses_a_decoder_its_params_do_not_describe(fitted, saved, tmp_path):
    model = copy.deepcopy(fitted["ad_zeros"]).set_params(hidden_layer_sizes=(3,))
    target = tmp_path / "model.zip"
    target.write_bytes((saved / "ad_zeros.zip").read_bytes())
    with pytest.raises(ValueError, match="decoder_: it does not have the architecture.*set_params"):
        model.save(target)
    load(target)  # the previous file is intact
