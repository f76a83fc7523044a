import pytest
import torch
from torch import nn

from sklearn_autodecoder.presets import (
    DEFAULT_SETTINGS,
    PRESETS,
    ConvDecoderSpec,
    ConvLayer,
    get_preset,
    make_decoder,
    make_encoder,
    n_parameters,
)

# Parameter counts of the reference implementations (DESIGN.md section 1).
EXPECTED_DECODER_PARAMS = {
    "mnist": 263_873,
    "cifar10": 984_387,
    "cifar10_4x4": 106_883,
    "stl10": 1_837_507,
}


@pytest.fixture(autouse=True)
def _seed():
    # Fork so that seeding here leaves the global RNG of other tests untouched.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def test_preset_names():
    assert set(PRESETS) == set(EXPECTED_DECODER_PARAMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_DECODER_PARAMS))
def test_decoder_parameter_count(name):
    assert n_parameters(make_decoder(name)) == EXPECTED_DECODER_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_decoder_encoder_shapes(name):
    spec = PRESETS[name]
    decoder, encoder = make_decoder(name), make_encoder(name)
    z = torch.randn(2, spec.n_components)
    x = decoder(z)
    assert x.shape == (2, *spec.image_shape)
    assert x.dtype == torch.float32
    assert torch.all((x >= 0) & (x <= 1))  # sigmoid output
    assert encoder(x).shape == (2, spec.n_components)
    assert spec.n_features == x[0].numel()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_encoder_size_matches_decoder(name):
    # Mirrored convolutions share their weight counts; only biases and
    # BatchNorm sizes differ, so the totals agree to within a few percent.
    n_dec, n_enc = n_parameters(make_decoder(name)), n_parameters(make_encoder(name))
    assert 0.9 < n_enc / n_dec < 1.1


@pytest.mark.parametrize(
    "name, n_components, first_type, in_size",
    [
        ("mnist", 7, nn.Linear, 7),
        ("cifar10", 64, nn.ConvTranspose2d, 64),
        ("stl10", 32, nn.ConvTranspose2d, 32),
        ("cifar10_4x4", 512, nn.ConvTranspose2d, 32),  # 512 = 32 x 4 x 4
    ],
)
def test_custom_n_components(name, n_components, first_type, in_size):
    spec = PRESETS[name]
    decoder = make_decoder(name, n_components=n_components)
    first = next(m for m in decoder if isinstance(m, (nn.Linear, nn.ConvTranspose2d)))
    assert isinstance(first, first_type)
    assert (first.in_features if first_type is nn.Linear else first.in_channels) == in_size
    x = decoder(torch.rand(2, n_components))
    assert x.shape == (2, *spec.image_shape)
    encoder = make_encoder(name, n_components=n_components)
    assert encoder(x).shape == (2, n_components)


def test_spec_and_default_n_components_agree():
    spec = PRESETS["cifar10"]
    assert n_parameters(make_decoder(spec)) == n_parameters(
        make_decoder("cifar10", n_components=256)
    )


def test_unknown_preset():
    with pytest.raises(ValueError, match="cifar10_4x4.*mnist.*stl10"):
        make_decoder("imagenet")
    with pytest.raises(ValueError, match="Unknown preset"):
        make_encoder(3)


def test_indivisible_n_components():
    with pytest.raises(ValueError, match="not divisible"):
        make_decoder("cifar10_4x4", n_components=1000)
    with pytest.raises(ValueError, match="not divisible"):
        make_encoder("cifar10_4x4", n_components=8)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_n_components(bad):
    with pytest.raises(ValueError, match="positive integer"):
        make_decoder("mnist", n_components=bad)


def test_build_is_deterministic_given_torch_rng():
    torch.manual_seed(1)
    a = make_decoder("mnist")
    torch.manual_seed(1)
    b = make_decoder("mnist")
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_defaults_published_settings():
    for name, spec in PRESETS.items():
        d = spec.defaults
        assert d["loss"] == ("bce" if name == "mnist" else "mse")
        assert d["latent_optimizer"] == "sgd"
        assert d["latent_momentum"] == 0.9
        assert d["weight_decay"] == 1e-5
        assert {"learning_rate", "latent_learning_rate", "max_iter", "batch_size"} <= set(d)
        with pytest.raises(TypeError):
            d["loss"] = "mse"  # read-only


def test_presets_are_hashable_and_frozen():
    spec = PRESETS["mnist"]
    hash(spec)
    with pytest.raises(AttributeError):
        spec.n_components = 3
    assert get_preset("mnist") is spec
    assert get_preset(spec) is spec


def test_custom_spec():
    spec = ConvDecoderSpec(
        image_shape=(2, 8, 8),
        n_components=8,
        latent_shape=(2, 2, 2),
        layers=((6, 4, 2, 1, True), (4, 3, 1, 1), (2, 4, 2, 1)),
        defaults={"loss": "mse"},
    )
    assert spec.layers[0] == ConvLayer(6, 4, 2, 1, True)
    decoder = make_decoder(spec)
    # (2*6*16 + 6) + BN 12 + (6*4*9 + 4) + (4*2*16 + 2): no BN on the last block.
    assert n_parameters(decoder) == 198 + 12 + 220 + 130
    assert sum(isinstance(m, nn.BatchNorm2d) for m in decoder) == 1
    assert isinstance(decoder[-1], nn.Sigmoid)
    x = decoder(torch.randn(2, 8))
    assert x.shape == (2, 2, 8, 8)
    encoder = make_encoder(spec)
    assert encoder(x).shape == (2, 8)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in encoder) == 1
    assert isinstance(encoder[-1], nn.Flatten)  # the latent gets no activation


def test_custom_spec_with_linear_head():
    spec = ConvDecoderSpec(
        image_shape=(1, 8, 8), n_components=5, linear_head=(4, 4, 4), layers=((1, 4, 2, 1),)
    )
    decoder = make_decoder(spec, n_components=3)
    assert decoder(torch.zeros(2, 3)).shape == (2, 1, 8, 8)
    assert make_encoder(spec, n_components=3)(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def _small_spec(**kwargs):
    kwargs = {"latent_shape": (4, 1, 1), "layers": ((8, 4, 1, 0, True), (1, 4, 2, 1)), **kwargs}
    return ConvDecoderSpec(image_shape=(1, 8, 8), n_components=4, **kwargs)


def test_spec_without_defaults_has_complete_settings():
    # Without defaults, fit used to fail with KeyError: 'loss'.
    spec = _small_spec()
    assert dict(spec.defaults) == {}
    assert spec.settings == {"n_components": 4, **DEFAULT_SETTINGS}
    assert spec.settings["loss"] == "mse"


def test_spec_settings_complete_partial_defaults():
    spec = _small_spec(defaults={"loss": "bce", "max_iter": 7})
    assert dict(spec.defaults) == {"loss": "bce", "max_iter": 7}  # stored as given
    settings = spec.settings
    assert set(settings) == {"n_components", *DEFAULT_SETTINGS}
    assert (settings["loss"], settings["max_iter"]) == ("bce", 7)
    assert settings["batch_size"] == DEFAULT_SETTINGS["batch_size"]
    settings["loss"] = "mse"  # a fresh dict each time, the spec is unchanged
    assert spec.settings["loss"] == "bce"
    with pytest.raises(TypeError):
        DEFAULT_SETTINGS["loss"] = "bce"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_settings_are_the_published_ones(name):
    spec = PRESETS[name]
    assert spec.settings == {"n_components": spec.n_components, **DEFAULT_SETTINGS, **spec.defaults}
    # The presets publish every setting but the optimiser and the latent prior.
    assert set(DEFAULT_SETTINGS) - set(spec.defaults) == {"optimizer", "latent_l2"}


@pytest.mark.parametrize(
    "defaults, match",
    [
        ({"lr": 1e-3}, r"Unknown key\(s\) \['lr'\].*learning_rate"),
        ({"loss": "l1"}, r"defaults\['loss'\] must be one of \('mse', 'bce', 'poisson', 'negative_binomial'\), got 'l1'"),
        ({"latent_optimizer": "lbfgs"}, "latent_optimizer"),
    ],
)
def test_spec_rejects_bad_defaults(defaults, match):
    with pytest.raises(ValueError, match=match):
        _small_spec(defaults=defaults)


def test_wrong_image_shape_names_every_shape():
    # One upsampling block from 1x1 gives 2x2, not 8x8.
    with pytest.raises(ValueError) as info:
        _small_spec(layers=((1, 4, 2, 1),))
    message = str(info.value)
    assert "produce images of shape (1, 2, 2), not image_shape (1, 8, 8)" in message
    assert "(4, 1, 1) -> layer 0: (1, 2, 2)" in message
    with pytest.raises(ValueError, match=r"layer 1: \(3, 8, 8\)"):
        _small_spec(layers=((8, 4, 1, 0), (3, 4, 2, 1)))  # channels differ


def test_vanishing_feature_map_names_the_layer():
    # Padding 3 on a 1x1 map with a 1x1 kernel: -5x-5 after layer 0.
    with pytest.raises(ValueError, match=r"Layer 0 produces a feature map smaller than 1x1.*"
                       r"layer 0: \(8, -5, -5\)"):
        _small_spec(layers=((8, 1, 1, 3), (1, 20, 1, 0)))


@pytest.mark.parametrize(
    "layer, match",
    [
        ((0, 4, 2, 1), r"layers\[0\].out_channels must be an integer >= 1"),
        ((8, 0, 2, 1), r"layers\[0\].kernel"),
        ((8, 4, 0, 1), r"layers\[0\].stride"),
        ((8, 4, 2, -1), r"layers\[0\].padding must be an integer >= 0"),
        ((8, 4.0, 2, 1), r"layers\[0\].kernel"),
    ],
)
def test_malformed_layer(layer, match):
    with pytest.raises(ValueError, match=match):
        _small_spec(layers=(layer, (1, 4, 2, 1)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(latent_shape=(4, 1, 1), layers=((1, 4, 2, 1),)), "produce images"),
        (dict(latent_shape=(3, 1, 1), layers=((1, 8, 1, 0),)), "n_components is 4"),
        (dict(layers=((1, 8, 1, 0),)), "exactly one"),
        (
            dict(latent_shape=(4, 1, 1), linear_head=(4, 1, 1), layers=((1, 8, 1, 0),)),
            "exactly one",
        ),
        (dict(latent_shape=(4, 1, 1), layers=()), "at least one"),
    ],
)
def test_invalid_spec(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvDecoderSpec(image_shape=(1, 8, 8), n_components=4, **kwargs)
