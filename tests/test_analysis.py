"""Representation analysis: RDMs, RSA, consistency, CKA, layer activations, plots."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import ortho_group
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from _checks import TINY_SPEC
from sklearn_autodecoder import AutoDecoder, AutoEncoder, ConvAutoDecoder, ConvAutoEncoder
from sklearn_autodecoder.analysis import (
    layer_activations,
    linear_cka,
    plot_mds,
    plot_rdm,
    rdm,
    representational_consistency,
    rsa,
)
from sklearn_autodecoder.presets import ConvDecoderSpec

FAST = dict(max_iter=2, device="cpu", random_state=0)
# 4x4 images through a linear head, a batch-normalised block and an output
# block: every kind of entry a conv network gives.
CONV_SPEC = ConvDecoderSpec(
    image_shape=(1, 4, 4),
    n_components=3,
    linear_head=(2, 2, 2),
    layers=((2, 2, 1, 0, True), (1, 2, 1, 0)),
    defaults=dict(loss="bce", max_iter=2, batch_size=16),
)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:150] / 16.0


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(40, 16)


def _random(n, p, seed=0):
    return np.random.RandomState(seed).randn(n, p)


# ---- rdm --------------------------------------------------------------------------


def test_rdm_is_one_minus_pearson_symmetric_with_zero_diagonal():
    X = _random(12, 7)
    D = rdm(X)
    np.testing.assert_allclose(D, 1 - np.corrcoef(X), atol=1e-12)
    np.testing.assert_array_equal(D, D.T)
    np.testing.assert_array_equal(np.diag(D), 0)
    assert D.min() >= 0 and D.max() <= 2


def test_rdm_ignores_each_stimulus_positive_scale_and_shift():
    X = _random(10, 6)
    scale, shift = np.linspace(0.5, 3, 10)[:, None], np.arange(10.0)[:, None]
    np.testing.assert_allclose(rdm(scale * X + shift), rdm(X), atol=1e-12)


def test_rdm_other_metrics():
    X = _random(9, 4)
    np.testing.assert_allclose(rdm(X, "euclidean"), squareform(pdist(X)), atol=1e-12)
    np.testing.assert_allclose(rdm(X, "cityblock"), squareform(pdist(X, "cityblock")), atol=1e-12)
    def manhattan(a, b):
        return np.abs(a - b).sum()

    np.testing.assert_allclose(rdm(X, manhattan), rdm(X, "cityblock"), atol=1e-12)


def test_rdm_rejects_constant_rows_under_correlation():
    X = _random(5, 4)
    X[[1, 3]] = 2.0
    with pytest.raises(ValueError, match=r"Rows \[1, 3\] of X are constant"):
        rdm(X)
    assert np.isfinite(rdm(X, "euclidean")).all()


def test_rdm_validation():
    with pytest.raises(InvalidParameterError, match="metric"):
        rdm(_random(4, 3), metric=3)
    with pytest.raises(ValueError, match="unknown|Unknown|valid"):
        rdm(_random(4, 3), metric="no-such-metric")
    with pytest.raises(ValueError, match="minimum of 2"):
        rdm(_random(1, 3))


# ---- rsa ---------------------------------------------------------------------------


def test_rsa_identical_monotone_and_pearson_values():
    D = rdm(_random(15, 5))
    assert rsa(D, D) == pytest.approx(1.0)
    # A monotone transform keeps the ranks, not the linear relation.
    assert rsa(D, np.exp(3 * D)) == pytest.approx(1.0)
    assert rsa(D, np.exp(3 * D), method="pearson") < 0.99
    other = rdm(_random(15, 5, seed=1))
    upper = np.triu_indices(15, k=1)
    expected = np.corrcoef(D[upper], other[upper])[0, 1]
    assert rsa(D, other, method="pearson") == pytest.approx(expected, abs=1e-12)


def test_rsa_validation():
    D = rdm(_random(6, 3))
    with pytest.raises(ValueError, match="square"):
        rsa(D[:, :5], D)
    with pytest.raises(ValueError, match="same stimuli"):
        rsa(D, rdm(_random(7, 3)))
    asymmetric = D.copy()
    asymmetric[0, 1] += 1
    with pytest.raises(ValueError, match="symmetric"):
        rsa(D, asymmetric)
    with pytest.raises(ValueError, match="at least 3"):
        rsa(D[:2, :2], D[:2, :2])
    with pytest.raises(ValueError, match="off-diagonal entries equal"):
        rsa(D, 1 - np.eye(6))
    with pytest.raises(InvalidParameterError, match="method"):
        rsa(D, D, method="kendall")


# ---- representational consistency -------------------------------------------------


def test_consistency_of_identical_rescaled_and_permuted_instances_is_one():
    X = _random(30, 8)
    assert representational_consistency([X, X]) == pytest.approx(1.0)
    assert representational_consistency([X, 5 * X, X[:, ::-1], X[:, [3, 1, 0, 2, 7, 6, 4, 5]]]) == (
        pytest.approx(1.0)
    )


def test_consistency_of_rotated_instances():
    X = _random(30, 8)
    Q = ortho_group.rvs(8, random_state=0)
    # Euclidean RDMs see only the geometry: a rotation leaves them as they are.
    assert representational_consistency([X, X @ Q], metric="euclidean") == pytest.approx(1.0)
    # Correlation RDMs centre each stimulus across units, which a rotation does not commute with.
    assert representational_consistency([X, X @ Q]) < 0.99


def test_consistency_of_independent_instances_is_near_zero():
    reps = [_random(80, 30, seed=s) for s in range(4)]
    consistency, matrix = representational_consistency(reps, return_matrix=True)
    assert abs(consistency) < 0.05
    assert matrix.shape == (4, 4)
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1)
    off_diagonal = matrix[~np.eye(4, dtype=bool)]
    assert consistency == pytest.approx(off_diagonal.mean())


def test_consistency_is_the_mean_pairwise_pearson_rsa_and_allows_different_widths():
    reps = [_random(20, 5), _random(20, 9, seed=1), _random(20, 3, seed=2)]
    rdms = [rdm(X) for X in reps]
    pairs = [rsa(rdms[i], rdms[j], method="pearson") for i, j in ((0, 1), (0, 2), (1, 2))]
    assert representational_consistency(reps) == pytest.approx(np.mean(pairs), abs=1e-12)


def test_consistency_validation():
    X = _random(10, 4)
    with pytest.raises(ValueError, match="at least 2 instances"):
        representational_consistency([X])
    with pytest.raises(ValueError, match="same stimuli"):
        representational_consistency([X, X[:9]])
    with pytest.raises(InvalidParameterError, match="representations"):
        representational_consistency(X)


# ---- linear CKA --------------------------------------------------------------------


def _cka_by_hsic(X, Y):
    """Kornblith et al.'s definition through centred Gram matrices."""
    n = len(X)
    H = np.eye(n) - 1 / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return (K * L).sum() / np.sqrt((K * K).sum() * (L * L).sum())


def test_cka_identical_rotated_rescaled_shifted():
    X = _random(200, 6)
    Q = ortho_group.rvs(6, random_state=0)
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, -4 * X @ Q + 7) == pytest.approx(1.0)
    # Not invariant to anisotropic scaling.
    assert linear_cka(X, X * np.array([10, 1, 1, 1, 1, 0.1])) < 0.9


def test_cka_of_independent_representations_is_near_zero():
    assert linear_cka(_random(5000, 5), _random(5000, 5, seed=1)) < 0.01


@pytest.mark.parametrize("n, p, q", [(300, 4, 7), (10, 40, 30)])  # feature space; Gram matrices
def test_cka_matches_the_hsic_definition(n, p, q):
    X, Y = _random(n, p), _random(n, q, seed=1)
    Y[:, :2] += X[:, :2]  # some shared structure
    assert linear_cka(X, Y) == pytest.approx(_cka_by_hsic(X, Y), rel=1e-10)


def test_cka_validation():
    X = _random(10, 3)
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(X, X[:8])
    with pytest.raises(ValueError, match="Y is constant"):
        linear_cka(X, np.ones((10, 2)))


# ---- layer activations ------------------------------------------------------------


def test_autodecoder_activations_order_shapes_and_values(digits):
    ad = AutoDecoder(4, hidden_layer_sizes=(8, 16), **FAST).fit(digits)
    X = digits[:30]
    acts = layer_activations(ad, X)
    assert list(acts) == ["latent", "decoder.1.ReLU", "decoder.3.ReLU", "decoder.4.Linear"]
    assert [a.shape for a in acts.values()] == [(30, 4), (30, 8), (30, 16), (30, 64)]
    np.testing.assert_allclose(acts["latent"], ad.transform(X), rtol=1e-6, atol=1e-8)
    reconstruction = ad.inverse_transform(acts["latent"])
    np.testing.assert_allclose(acts["decoder.4.Linear"], reconstruction, atol=1e-6)
    assert (acts["decoder.1.ReLU"] >= 0).all()

    every = layer_activations(ad, X, layers="all")
    assert list(every) == [
        "latent",
        "decoder.0.Linear",
        "decoder.1.ReLU",
        "decoder.2.Linear",
        "decoder.3.ReLU",
        "decoder.4.Linear",
    ]
    np.testing.assert_allclose(every["decoder.1.ReLU"], np.maximum(every["decoder.0.Linear"], 0))


def test_autodecoder_with_encoder_init_reports_the_decoder_only(digits):
    ad = AutoDecoder(3, hidden_layer_sizes=(8,), init="encoder", encoder_max_iter=1, **FAST)
    ad.fit(digits)
    assert list(layer_activations(ad, digits[:5])) == [
        "latent",
        "decoder.1.ReLU",
        "decoder.2.Linear",
    ]


def test_autoencoder_activations_order_shapes_and_values(digits):
    ae = AutoEncoder(4, hidden_layer_sizes=(8, 16), **FAST).fit(digits)
    X = digits[:30]
    acts = layer_activations(ae, X)
    assert list(acts) == [
        "input",
        "encoder.1.ReLU",
        "encoder.3.ReLU",
        "latent",
        "decoder.1.ReLU",
        "decoder.3.ReLU",
        "decoder.4.Linear",
    ]
    assert [a.shape[1] for a in acts.values()] == [64, 16, 8, 4, 8, 16, 64]
    np.testing.assert_array_equal(acts["input"], X)
    np.testing.assert_allclose(acts["latent"], ae.transform(X), atol=1e-6)
    reconstruction = ae.inverse_transform(ae.transform(X))
    np.testing.assert_allclose(acts["decoder.4.Linear"], reconstruction, atol=1e-6)
    every = layer_activations(ae, X, layers="all")
    assert list(every)[:6] == [
        "input",
        "encoder.0.Linear",
        "encoder.1.ReLU",
        "encoder.2.Linear",
        "encoder.3.ReLU",
        "latent",
    ]


def test_conv_activations_are_flattened_blocks(images):
    cad = ConvAutoDecoder(CONV_SPEC, **FAST).fit(images)
    acts = layer_activations(cad, images[:7])
    assert {name: a.shape for name, a in acts.items()} == {
        "latent": (7, 3),
        "decoder.0.1.ReLU": (7, 8),  # linear head, 2x2x2
        "decoder.0.5.ReLU": (7, 18),  # 2 channels of 3x3, batch-normalised
        "decoder.0.7.Sigmoid": (7, 16),  # the image
    }
    reconstruction = cad.inverse_transform(acts["latent"])
    np.testing.assert_allclose(acts["decoder.0.7.Sigmoid"], reconstruction, atol=1e-6)
    every = layer_activations(cad, images[:7], layers="all")
    assert list(every) == [
        "latent",
        "decoder.0.0.Linear",
        "decoder.0.1.ReLU",
        "decoder.0.3.ConvTranspose2d",
        "decoder.0.4.BatchNorm2d",
        "decoder.0.5.ReLU",
        "decoder.0.6.ConvTranspose2d",
        "decoder.0.7.Sigmoid",
    ]

    cae = ConvAutoEncoder(CONV_SPEC, **FAST).fit(images)
    acts = layer_activations(cae, images[:7])
    assert {name: a.shape[1] for name, a in acts.items()} == {
        "input": 16,
        "encoder.1.2.ReLU": 18,
        "encoder.1.4.ReLU": 8,
        "latent": 3,
        "decoder.0.1.ReLU": 8,
        "decoder.0.5.ReLU": 18,
        "decoder.0.7.Sigmoid": 16,
    }
    np.testing.assert_allclose(acts["latent"], cae.transform(images[:7]), atol=1e-6)


def test_tiny_conv_spec_without_hidden_blocks(images):
    X = images[:, :4]
    assert list(layer_activations(ConvAutoDecoder(TINY_SPEC, **FAST).fit(X), X)) == [
        "latent",
        "decoder.0.2.Sigmoid",
    ]
    # The encoder's only layer computes the latent.
    assert list(layer_activations(ConvAutoEncoder(TINY_SPEC, **FAST).fit(X), X)) == [
        "input",
        "latent",
        "decoder.0.2.Sigmoid",
    ]


def test_chunking_and_dtypes_do_not_change_the_activations(digits):
    ae = AutoEncoder(3, hidden_layer_sizes=(8,), **FAST).fit(digits)
    X = digits[:25]
    whole, chunked = layer_activations(ae, X), layer_activations(ae, X, batch_size=4)
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], atol=1e-6)
        assert whole[name].dtype == np.float64
    single = layer_activations(ae, X.astype(np.float32))
    assert all(a.dtype == np.float32 for a in single.values())
    np.testing.assert_allclose(single["decoder.2.Linear"], whole["decoder.2.Linear"], atol=1e-4)


def _forward_hooks(module):
    return sum(len(m._forward_hooks) for m in module.modules())


def test_modes_restored_and_hooks_removed_also_on_error(digits):
    ae = AutoEncoder(3, hidden_layer_sizes=(8,), **FAST).fit(digits)
    ae.decoder_.train()
    ae.encoder_[1].train()  # a mixed state comes back as it was
    layer_activations(ae, digits[:5])
    assert all(m.training for m in ae.decoder_.modules())
    assert ae.encoder_[1].training and not ae.encoder_[0].training
    assert _forward_hooks(ae.decoder_) == 0 and _forward_hooks(ae.encoder_) == 0

    def fail(module, args):
        raise RuntimeError("boom")

    handle = ae.decoder_[2].register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            layer_activations(ae, digits[:5])
    finally:
        handle.remove()
    assert _forward_hooks(ae.decoder_) == 0 and _forward_hooks(ae.encoder_) == 0
    assert all(m.training for m in ae.decoder_.modules())


def test_layer_activations_validation(digits):
    with pytest.raises(NotFittedError):
        layer_activations(AutoDecoder(), digits)
    with pytest.raises(TypeError, match="no decoder_"):
        layer_activations(PCA(2).fit(digits), digits)
    with pytest.raises(InvalidParameterError, match="estimator"):
        layer_activations(object(), digits)
    ad = AutoDecoder(2, hidden_layer_sizes=(), **FAST).fit(digits)
    with pytest.raises(InvalidParameterError, match="layers"):
        layer_activations(ad, digits, layers="some")
    with pytest.raises(ValueError, match="features"):
        layer_activations(ad, digits[:, :10])


def test_module_called_twice_is_refused(digits):
    ad = AutoDecoder(2, hidden_layer_sizes=(4, 4), **FAST).fit(digits)
    shared = ad.decoder_[1]
    ad.decoder_[3] = shared  # the same ReLU runs twice
    with pytest.raises(ValueError, match="more than once"):
        layer_activations(ad, digits[:3])
    assert _forward_hooks(ad.decoder_) == 0


# ---- plots ------------------------------------------------------------------------


def test_plot_rdm_and_plot_mds():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X = _random(12, 5)
    fig, (left, right) = plt.subplots(1, 2)
    try:
        assert plot_rdm(rdm(X), ax=left) is left
        np.testing.assert_allclose(left.images[0].get_array(), rdm(X))
        rdms = [rdm(X + 0.1 * _random(12, 5, seed=s)) for s in range(3)]
        rdms += [rdm(_random(12, 5, seed=10 + s)) for s in range(3)]
        ax = plot_mds(rdms, ["similar"] * 3 + ["random"] * 3, ax=right, random_state=0)
        assert ax is right
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["similar", "random"]
        # The near-copies cluster: their spread is well below the random RDMs'.
        similar, random_ = (c.get_offsets() for c in ax.collections)
        assert np.ptp(similar, axis=0).max() < np.ptp(random_, axis=0).max()
        with pytest.raises(ValueError, match="labels has 2 entries"):
            plot_mds(rdms, ["a", "b"], ax=right)
        with pytest.raises(ValueError, match="at least 3 RDMs"):
            plot_mds(rdms[:2], ax=right)
        with pytest.raises(ValueError, match="square"):
            plot_rdm(X, ax=left)
    finally:
        plt.close(fig)


def test_plots_without_ax_open_a_new_figure():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X = _random(12, 5)
    rdms = [rdm(_random(12, 5, seed=s)) for s in range(3)]
    before = plt.get_fignums()
    try:
        first, second = plot_rdm(rdm(X)), plot_rdm(rdm(X))
        third, fourth = plot_mds(rdms, random_state=0), plot_mds(rdms, random_state=0)
        axes = [first, second, third, fourth]
        assert len({id(ax.figure) for ax in axes}) == 4  # no call draws over another
        assert [len(ax.images) for ax in axes[:2]] == [1, 1]
        assert [len(ax.collections) for ax in axes[2:]] == [1, 1]
    finally:
        for fig in set(plt.get_fignums()) - set(before):
            plt.close(fig)
