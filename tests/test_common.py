"""scikit-learn's own estimator checks, on small configurations."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder
from _checks import AnyWidthConvAutoDecoder, TINY_BN_SPEC, TINY_SPEC, expected_width_failures

FAST = dict(inference_max_iter=20, random_state=0, device="cpu")


@parametrize_with_checks(
    [
        AutoDecoder(n_components=2, hidden_layer_sizes=(8,), max_iter=3, **FAST),
        AutoDecoder(n_components=2, hidden_layer_sizes=(), init="mean", max_iter=3, **FAST),
        AutoDecoder(n_components=2, hidden_layer_sizes=(8,), init="nearest", max_iter=3, **FAST),
        AutoDecoder(n_components=2, hidden_layer_sizes=(8,), init="encoder", max_iter=3, encoder_max_iter=3, **FAST),
        AutoDecoder(n_components=2, hidden_layer_sizes=(8,), latent_prior="gmm", n_prior_components=3, max_iter=3, **FAST),
        ConvAutoDecoder(TINY_SPEC, **FAST),
        ConvAutoDecoder(TINY_BN_SPEC, **FAST),
        AnyWidthConvAutoDecoder(TINY_SPEC, **FAST),
    ],
    expected_failed_checks=expected_width_failures(ConvAutoDecoder),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
