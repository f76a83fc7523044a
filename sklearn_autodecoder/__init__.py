"""Auto-decoders (decoder-only representation learning) for scikit-learn."""

from ._autodecoder import AutoDecoder
from ._autoencoder import AutoEncoder, ConvAutoEncoder
from ._checkpoint import Checkpoint
from ._conv_autodecoder import ConvAutoDecoder
from ._imputer import AutoDecoderImputer
from ._interpolation import interpolate, interpolate_latents
from ._likelihoods import (
    BernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
    NegativeBinomialLikelihood,
    PoissonLikelihood,
)
from ._load import LowLoadWarning, decoder_load, encoder_load, n_free_parameters
from ._metrics import representation_correlation
from ._model_selection import log_likelihood_scorer
from ._persistence import ModelFileError, load

__version__ = "0.1.0.dev0"

__all__ = [
    "AutoDecoder",
    "AutoDecoderImputer",
    "AutoEncoder",
    "BernoulliLikelihood",
    "Checkpoint",
    "ConvAutoDecoder",
    "ConvAutoEncoder",
    "GaussianLikelihood",
    "Likelihood",
    "LowLoadWarning",
    "ModelFileError",
    "NegativeBinomialLikelihood",
    "PoissonLikelihood",
    "__version__",
    "decoder_load",
    "encoder_load",
    "interpolate",
    "interpolate_latents",
    "load",
    "log_likelihood_scorer",
    "n_free_parameters",
    "representation_correlation",
]
