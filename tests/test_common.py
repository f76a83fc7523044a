"""scikit-learn's own estimator checks, on small configurations."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder
from _checks import AnyWidthConvAutoDecoder, TINY_BN_SPEC, TINY_SPEC, expected_width_failures

FAST = dict(inference_max_iter=20, random_state=0, device="cpu")

# scikit-learn's sparse-input checks call predict_proba as a classifier's (its
# classifier_tags, 2 or 4 classes); the mixture prior's has one column per
# component. Sparse input with the prior is tested in test_sparse.py.
PROBA_REASON = "the sparse checks read predict_proba as a classifier's"
PROBA_CHECKS = ("check_estimator_sparse_array", "check_estimator_sparse_matrix")

# fit_transform returns the latents learnt with the decoder (embedding_), at no
# extra cost; transform re-infers them against the final decoder, so the two
# agree once both have converged, not after the checks' max_iter=3 epochs.
TRAINING_LATENTS_REASON = "fit_transform returns the training latents, transform re-infers them"
TRAINING_LATENTS_CHECKS = ("check_transformer_general", "check_transformer_data_not_an_array")


def expected_failed_checks(estimator):
    expected = expected_width_failures(ConvAutoDecoder)(estimator)
    expected.update(dict.fromkeys(TRAINING_LATENTS_CHECKS, TRAINING_LATENTS_REASON))
    if getattr(estimator, "latent_prior", "none") == "gmm":
        expected.update(dict.fromkeys(PROBA_CHECKS, PROBA_REASON))
    return expected


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
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
