"""The public estimators' docstrings: complete, in signature order, consistent.

Each estimator writes its parameters and attributes out in its own docstring,
repeating the shared text, as scikit-learn's estimators do. These tests keep
that text honest:

* Parameters has one entry per ``__init__`` parameter, in signature order,
  with the real default;
* a parameter or attribute that several estimators share has the same text in
  all of them, except the differences listed in ``PARAMETER_DIFFERENCES`` and
  ``ATTRIBUTE_DIFFERENCES`` (each with its reason). The image estimators'
  training settings default to None and end with ``PRESET_NOTE``, which is
  ignored in the comparison;
* Attributes lists exactly the public attributes that ``fit`` sets.

To add a parameter (``n_jobs``, ``latent_prior``, ...): add it to ``__init__``
and write its entry in the Parameters section of every class that takes it,
at its place in the signature, with the same text in each (or list it in
``PARAMETER_DIFFERENCES`` with the reason). To add a fitted attribute: write
its entry in Attributes; if only some settings create it, set them in
``FIT_PARAMS`` so that the fit here creates it.
"""

import ast
import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from numpydoc.docscrape import NumpyDocString

from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder, ConvAutoEncoder
from _checks import TINY_SPEC

ESTIMATORS = (AutoDecoder, ConvAutoDecoder, AutoEncoder, ConvAutoEncoder)

# The last sentence of a training setting that an image estimator takes from
# its preset when left as None.
PRESET_NOTE = "None takes the preset's value (see ``settings_``)."

# Groups of classes whose text for a name must agree, where it may differ
# between the groups.
BY_FAMILY = (("AutoDecoder", "ConvAutoDecoder"), ("AutoEncoder", "ConvAutoEncoder"))
BY_DECODER = (("AutoDecoder", "AutoEncoder"), ("ConvAutoDecoder", "ConvAutoEncoder"))

# name: (groups, reason). Names not listed have one text in every class.
PARAMETER_DIFFERENCES = {
    "preset": (BY_FAMILY, "an autoencoder's encoder mirrors the preset decoder"),
    "hidden_layer_sizes": (BY_FAMILY, "an autoencoder's encoder mirrors the layers"),
    "connectivity": (BY_FAMILY, "an autoencoder's encoder stays dense"),
    "loss": (BY_DECODER, "an MLP's output layer follows the loss; conv decoders end in a sigmoid"),
    "optimizer": (BY_FAMILY, "an autoencoder trains its encoder with the decoder's settings"),
    "learning_rate": (BY_FAMILY, "an autoencoder trains its encoder with the decoder's settings"),
    "weight_decay": (BY_FAMILY, "an autoencoder trains its encoder with the decoder's settings"),
    "early_stopping": (
        (("AutoDecoder",), ("ConvAutoDecoder",), ("AutoEncoder",), ("ConvAutoEncoder",)),
        "held-out samples get inferred latents vs. encoder outputs; 'auto' follows the decoder",
    ),
    "init": (
        (("AutoDecoder",), ("ConvAutoDecoder",)),
        "MLP decoders start from the nearest latent, the conv presets from the mean",
    ),
    "warm_start": (BY_FAMILY, "an auto-decoder also starts the new samples' latents"),
    "random_state": (BY_FAMILY, "it seeds training latents vs. an encoder"),
    "verbose": (BY_FAMILY, "only the auto-decoders run (and report) inference"),
    "precision": (BY_FAMILY, "only the auto-decoders infer latents, in float32"),
}
ATTRIBUTE_DIFFERENCES = {
    "encoder_": (BY_FAMILY, "the amortised start of init='encoder' vs. the representation"),
    "decoder_load_": (BY_FAMILY, "only the auto-decoders warn about it"),
}

# Settings under which fit sets every documented attribute (encoder_ and
# encoder_loss_curve_ need init="encoder"), on tiny data.
FIT_PARAMS = {
    AutoDecoder: dict(hidden_layer_sizes=(4,), init="encoder", encoder_max_iter=1, latent_prior="gmm"),
    ConvAutoDecoder: dict(preset=TINY_SPEC, init="encoder", encoder_max_iter=1, latent_prior="gmm"),
    AutoEncoder: dict(hidden_layer_sizes=(4,)),
    ConvAutoEncoder: dict(preset=TINY_SPEC),
}


def _section(Estimator, name):
    """The numpydoc entries of a docstring section, by name, in order."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a malformed docstring fails here
        doc = NumpyDocString(inspect.getdoc(Estimator))
    return {entry.name: entry for entry in doc[name]}


def _split_type(entry):
    """``(type, default)`` of an entry's ``type : ..., default=...`` line."""
    match = re.fullmatch(r"(.*), default=(.*)", entry.type)
    return (entry.type, None) if match is None else match.groups()


def _text(entry):
    """The entry's description on one line."""
    return " ".join(" ".join(entry.desc).split())


def _signature(Estimator):
    return inspect.signature(Estimator.__init__).parameters


def _preset_settings():
    """Parameters the image estimators default to None where others do not."""
    defaults = {}
    for Estimator in ESTIMATORS:
        for name, parameter in _signature(Estimator).items():
            defaults.setdefault(name, set()).add(repr(parameter.default))
    return {name for name, values in defaults.items() if "None" in values and len(values) > 1}


def _normalised(Estimator, entry):
    """An entry's type (default removed) and text, the preset note removed."""
    type_, _ = _split_type(entry)
    text = _text(entry)
    if entry.name in _preset_settings() and text.endswith(PRESET_NOTE):
        text = text[: -len(PRESET_NOTE)].rstrip()
    return type_, text


def _shared(section):
    names = {}
    for Estimator in ESTIMATORS:
        for name in _section(Estimator, section):
            names.setdefault(name, []).append(Estimator)
    return sorted(name for name, classes in names.items() if len(classes) > 1)


def _check_consistent(section, name, differences):
    """Classes sharing ``name`` agree on its text, except the listed groups."""
    texts = {}
    for Estimator in ESTIMATORS:
        entry = _section(Estimator, section).get(name)
        if entry is not None:
            texts.setdefault(_normalised(Estimator, entry), set()).add(Estimator.__name__)
    present = set().union(*texts.values())
    groups, reason = differences.get(name, ((tuple(present),), None))
    expected = {frozenset(present.intersection(group)) for group in groups} - {frozenset()}
    found = {frozenset(classes) for classes in texts.values()}
    if found == expected:
        return
    variants = "\n".join(f"  {sorted(classes)}: {text}" for text, classes in texts.items())
    if reason is None:
        hint = f"Use one text, or list {name!r} in the differences with the reason."
    else:
        hint = f"Expected one text per group {sorted(map(sorted, expected))} ({reason})."
    pytest.fail(f"{section} entry {name!r} differs between estimators:\n{variants}\n{hint}")


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda E: E.__name__)
def test_every_parameter_is_documented_in_signature_order(Estimator):
    signature = [name for name in _signature(Estimator) if name != "self"]
    documented = list(_section(Estimator, "Parameters"))
    missing = [name for name in signature if name not in documented]
    extra = [name for name in documented if name not in signature]
    assert not missing, (
        f"{Estimator.__name__}.__init__ takes {missing}, which its docstring's Parameters "
        "section lacks: write the entries out in the class docstring, in signature order, "
        "with the same text in every estimator that takes them."
    )
    assert not extra, f"{Estimator.__name__} documents {extra}, which __init__ does not take."
    assert documented == signature, (
        f"{Estimator.__name__}'s Parameters are not in signature order:\n"
        f"  documented: {documented}\n  signature:  {signature}"
    )


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda E: E.__name__)
def test_documented_defaults_are_the_real_ones(Estimator):
    signature = _signature(Estimator)
    for name, entry in _section(Estimator, "Parameters").items():
        _, default = _split_type(entry)
        assert default is not None, f"{Estimator.__name__}: {name!r} has no 'default=' in its type."
        assert ast.literal_eval(default) == signature[name].default, (
            f"{Estimator.__name__}: {name!r} is documented with default={default}, "
            f"but __init__ has {signature[name].default!r}."
        )


@pytest.mark.parametrize("Estimator", (ConvAutoDecoder, ConvAutoEncoder), ids=lambda E: E.__name__)
def test_image_estimators_say_where_none_defaults_come_from(Estimator):
    settings = _preset_settings()
    entries = _section(Estimator, "Parameters")
    preset_settings = [name for name in entries if name in settings]
    assert {"n_components", "loss", "learning_rate", "max_iter"} <= set(preset_settings)
    for name in preset_settings:
        assert _text(entries[name]).endswith(PRESET_NOTE), (
            f"{Estimator.__name__}: {name!r} defaults to None; end its text with {PRESET_NOTE!r}"
        )


@pytest.mark.parametrize("name", _shared("Parameters"))
def test_shared_parameters_have_the_same_text(name):
    _check_consistent("Parameters", name, PARAMETER_DIFFERENCES)


@pytest.mark.parametrize("name", _shared("Attributes"))
def test_shared_attributes_have_the_same_text(name):
    _check_consistent("Attributes", name, ATTRIBUTE_DIFFERENCES)


def test_listed_differences_are_shared_names():
    # An entry for a name no two estimators share would hide nothing: a typo.
    assert set(PARAMETER_DIFFERENCES) <= set(_shared("Parameters"))
    assert set(ATTRIBUTE_DIFFERENCES) <= set(_shared("Attributes"))


@pytest.mark.filterwarnings("ignore::sklearn_autodecoder.LowLoadWarning")
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda E: E.__name__)
def test_attributes_are_exactly_the_fitted_ones(Estimator):
    params = FIT_PARAMS[Estimator]
    n_features = 4 if "preset" in params else 6  # TINY_SPEC decodes 1x2x2 images
    X = np.random.RandomState(0).rand(8, n_features)
    X = pd.DataFrame(X, columns=[f"x{j}" for j in range(n_features)])  # sets feature_names_in_
    estimator = Estimator(**params, max_iter=1, device="cpu", random_state=0).fit(X)

    fitted = {name for name in vars(estimator) if name.endswith("_") and not name.startswith("_")}
    documented = set(_section(Estimator, "Attributes"))
    assert all(name.endswith("_") for name in documented), sorted(documented)
    assert not fitted - documented, (
        f"{Estimator.__name__} sets {sorted(fitted - documented)} in fit, which its "
        "docstring's Attributes section lacks."
    )
    assert not documented - fitted, (
        f"{Estimator.__name__} documents {sorted(documented - fitted)}, which fit "
        f"with {params} did not set."
    )
