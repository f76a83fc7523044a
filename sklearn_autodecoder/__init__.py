"""Auto-decoders (decoder-only representation learning) for scikit-learn."""

from ._autodecoder import AutoDecoder, ConvAutoDecoder

__version__ = "0.1.0.dev0"

__all__ = ["AutoDecoder", "ConvAutoDecoder", "__version__"]
