"""Shared set-up for running scikit-learn's checks on the conv estimators."""

from skorch.callbacks import Callback

from sklearn_autodecoder import ConvAutoDecoder, ConvAutoEncoder
from sklearn_autodecoder.presets import ConvDecoderSpec

# A 1x2x2-image decoder: the conv path (transposed conv, sigmoid, flatten)
# at a size the checks run in seconds.
TINY_SPEC = ConvDecoderSpec(
    image_shape=(1, 2, 2),
    n_components=2,
    latent_shape=(2, 1, 1),
    layers=((1, 2, 1, 0),),
    defaults=dict(loss="mse", max_iter=3, batch_size=16),
)

# The same with a BatchNorm layer: the checks then exercise eval-mode inference
# (a sample's latent must not depend on the other samples of its batch).
TINY_BN_SPEC = ConvDecoderSpec(
    image_shape=(1, 2, 2),
    n_components=2,
    latent_shape=(2, 1, 1),
    layers=((2, 2, 1, 0, True), (1, 1, 1, 0)),
    defaults=dict(loss="mse", max_iter=3, batch_size=16),
)


class _AnyWidthSpec:
    """Gives a conv estimator a (1, 1, n_features) "image" that fits whatever X the checks make.

    A real conv decoder has a fixed output width, while the checks feed data
    of many widths; these subclasses keep the conv path under every check.
    """

    def _spec(self):
        width = getattr(self, "n_features_in_", 1)
        return ConvDecoderSpec(
            image_shape=(1, 1, width),
            n_components=2,
            linear_head=(1, 1, width),
            layers=((1, 1, 1, 0),),
            defaults=dict(loss="mse", max_iter=3, batch_size=16),
        )


class AnyWidthConvAutoDecoder(_AnyWidthSpec, ConvAutoDecoder):
    pass


class AnyWidthConvAutoEncoder(_AnyWidthSpec, ConvAutoEncoder):
    pass


# Checks that fit on data whose width is not the fixed image size: the
# estimator rightly refuses it (the AnyWidth subclasses cover them).
WIDTH_REASON = "the checks' data width differs from the decoder's fixed image size"
FIXED_WIDTH_CHECKS = [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_estimators_dtypes",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_transformer_n_iter",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
]


def expected_width_failures(*fixed_width_classes):
    """``expected_failed_checks`` callable for ``parametrize_with_checks``."""

    def expected(estimator):
        if type(estimator) in fixed_width_classes:
            return dict.fromkeys(FIXED_WIDTH_CHECKS, WIDTH_REASON)
        return {}

    return expected


def string_comparisons(tree, names):
    """(line, name) of every comparison (``==``, ``in``, ...) with one of ``names`` as a string literal."""
    import ast

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            literals = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            found += [(node.lineno, lit.value) for lit in literals
                      if isinstance(lit, ast.Constant) and lit.value in names]
    return found


def comparisons_outside(room, names):
    """``file:line`` of the package's comparisons with ``names`` outside the module ``room``."""
    import ast
    import pathlib

    import sklearn_autodecoder

    package = pathlib.Path(sklearn_autodecoder.__file__).parent
    return [
        f"{path.name}:{line} compares with {name!r}"
        for path in sorted(package.rglob("*.py"))
        if path.name != room
        for line, name in string_comparisons(ast.parse(path.read_text()), names)
    ]


def ppca_log_likelihood(X, weight, bias, noise_variance):
    """Log-likelihood of each sample's observed entries under a linear Gaussian model.

    The marginal density ``N(x_o; b_o, W_o W_o^T + Psi_o)``, latent
    integrated out (not a point estimate), so that on held-out data it does
    not keep rising with more components.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Samples, NaN for missing entries.
    weight : ndarray of shape (n_features, n_components)
    bias : ndarray of shape (n_features,)
    noise_variance : float or ndarray of shape (n_features,)
        Isotropic (PPCA) or per-feature (factor analysis) noise variance.

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples,)
    """
    import numpy as np

    from sklearn_autodecoder._pca_init import _as_psi, _posterior

    X = np.asarray(X, dtype=np.float64)
    observed = ~np.isnan(X)
    psi = _as_psi(noise_variance, X.shape[1])
    return _posterior(np.where(observed, X - bias, 0.0), observed, weight, psi)[2]


class Crash(Callback):
    """Raise at the end of epoch ``at``, as a crash would end the process there."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at:
            raise RuntimeError("simulated crash")
