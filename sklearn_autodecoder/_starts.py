"""Where latents start: the training table, held-out rows and inference (``init``).

Training latents start from whitened PCA scores (a linear decoder from PCA
itself), from the projections on the current decoder on a warm start, or
small and random (the conv presets' published start, unless a prior wants
a data-driven one); see :meth:`LatentStartsMixin._training_start`.

Inference starts (``init=``) are functions in :data:`START_STRATEGIES`:
``strategy(estimator, decoder, latents, likelihood, dtype, device)``
returns ``init(x, mask) -> z0``, each row from its own sample only (rows
stay independent). With a prior that offers start candidates (the
mixture's means), the strategies in :data:`PRIOR_MODE_STARTS` start from the
candidate with the lowest objective instead. Adding a start: one function
and one line in :data:`START_STRATEGIES`.

:class:`LatentStartsMixin` gives the auto-decoders these methods; it
reaches the estimator through ``self`` (``init``, ``embedding_``,
``prior_`` and the helpers of :class:`~._base.BaseRepresentationEstimator`).
"""

from typing import NamedTuple

import numpy as np
import torch

from ._amortized import encode
from ._data import slices
from ._inference import decode_in_chunks, nearest_latents
from ._pca_init import linear_layer, pca_project, pca_start, set_linear_decoder, set_relu_decoder_linear
from ._priors import best_prior_starts, prior_wants_data_start


class TrainingStart(NamedTuple):
    """What :meth:`LatentStartsMixin._training_start` returns."""

    latents: torch.Tensor
    """The training latents' start, on the CPU."""
    data_driven: bool
    """Whether it follows the data (a prior may then start from it)."""
    is_pca: bool = False
    """Whether decoder and latents start as PCA's own model (early stopping may keep it)."""

# Training latents start as N(0, LATENT_INIT_STD^2): small, so that the decoder
# starts near its mean output, but not zero, so that samples differ at once.
LATENT_INIT_STD = 0.01
# init="nearest" compares a sample with at most this many decoded training
# values (rows x features; 128 MiB in float32), on evenly spaced rows.
NEAREST_MAX_VALUES = 2**25
# ... and at most this many rows: the comparison costs rows x features per
# sample, far more than the inference it shortens beyond a few thousand rows
# (measured at 20,000 training rows, counts x 2,000 genes and MNIST: 4,096
# rows gave the same held-out scores to 5 digits at a third of the time).
NEAREST_MAX_ROWS = 4096
# The PCA start's SVD runs on the whole training set up to this many values
# (rows x features; 128 MiB in float64), on evenly spaced rows holding
# PCA_SUBSAMPLE_VALUES above it (16 MiB: out-of-core data stays small in memory).
PCA_START_MAX_VALUES = 2**24
PCA_SUBSAMPLE_VALUES = 2**21


class HostLatents:
    """The training latents on the host, uploaded to ``device`` a selection at a time.

    ``transform`` used to upload the whole table at every call, even for
    ``init="zeros"``; a start reads ``shape``, ``len``, rows (``latents[rows]``)
    or the ``mean``, each sent to the device as a tensor of ``dtype``.
    """

    def __init__(self, host, dtype, device):
        self.host, self.dtype, self.device = host, dtype, device

    @property
    def shape(self):
        return self.host.shape

    def __len__(self):
        return len(self.host)

    def __getitem__(self, rows):
        rows = rows.cpu().numpy() if isinstance(rows, torch.Tensor) else rows
        return torch.as_tensor(self.host[rows], dtype=self.dtype, device=self.device)

    def mean(self, dim=0, keepdim=False):
        mean = torch.as_tensor(self.host, dtype=self.dtype).mean(dim=dim, keepdim=keepdim)
        return mean.to(self.device)


def zeros_start(estimator, decoder, latents, likelihood, dtype, device):
    """``init="zeros"``: the origin."""
    return lambda x, m: torch.zeros(len(x), latents.shape[1], dtype=dtype, device=x.device)


def mean_start(estimator, decoder, latents, likelihood, dtype, device):
    """``init="mean"``: the mean training latent."""
    mean = latents.mean(dim=0, keepdim=True)
    return lambda x, m: mean.expand(len(x), -1).clone()


def nearest_start(estimator, decoder, latents, likelihood, dtype, device):
    """``init="nearest"``: the training latent whose decoding fits the sample's observed entries best."""
    rows = estimator._nearest_rows(len(latents))
    references = getattr(estimator, "_references_", None)
    if references is None or len(references) != len(rows):  # init set after fit
        references = decode_in_chunks(decoder, latents[rows], estimator.inference_batch_size, device)
    references = torch.as_tensor(references, dtype=dtype, device=device)
    return lambda x, m: nearest_latents(x, m, references, latents[rows], likelihood)


def encoder_start(estimator, decoder, latents, likelihood, dtype, device):
    """``init="encoder"``: the amortised encoder trained at the end of fit."""
    if getattr(estimator, "encoder_", None) is None:
        raise ValueError(
            "init='encoder' needs the encoder trained at the end of fit; refit with init='encoder'."
        )
    encoder = estimator._module_for(estimator.encoder_, dtype)
    return lambda x, m: encode(encoder, x, m)


# The values of ``init=``: adding a start is one function and one line here.
START_STRATEGIES = {
    "zeros": zeros_start,
    "mean": mean_start,
    "nearest": nearest_start,
    "encoder": encoder_start,
}
INIT_STRATEGIES = tuple(START_STRATEGIES)
# Starts that a prior's start candidates replace: with a mixture prior, the
# component mean or training latent (the rows of init="nearest") with the
# lowest objective, reconstruction plus prior (for "nearest" too: the same
# rows, ranked with the prior), is more often in the right
# cluster than the best mean (benchmarks/bench_prior.py, seed 0: test ARI
# 0.617 against 0.594 from the means alone; predict 4.5 s against 2.4 s).
PRIOR_MODE_STARTS = frozenset({"zeros", "mean", "nearest"})


class LatentStartsMixin:
    """Start strategies of the auto-decoders (see the module's notes)."""

    def _training_start(self, decoder, data, settings, warm, generator):
        """The training latents' start (a :class:`TrainingStart`).

        A data-driven start (PCA scores, a warm start's projections) is what
        a prior may start from (:meth:`~._priors.LatentPrior.start_from`).
        """
        if warm:
            # Project the data on the current manifold: a start as good as the
            # decoder, whether or not X is the previous fit's data.
            return TrainingStart(torch.as_tensor(self._latents_of(data, decoder), dtype=torch.float32), True)
        if self._pca_start_applies(data):
            return self._pca_start(decoder, data, settings["n_components"], settings["loss"])
        return TrainingStart(
            LATENT_INIT_STD * torch.randn(len(data), settings["n_components"], generator=generator), False
        )

    def _pca_start_applies(self, data):
        """PCA starts for MLP decoders, and for conv decoders with a mixture prior.

        The conv presets keep the published small random start, except with a
        mixture prior, which needs a data-driven start to cluster (from the
        DGD ball start it does not; see :mod:`._priors`). Under
        ``torch.distributed`` every rank computes it from all the rows, alike.
        """
        return not self._random_latent_start or prior_wants_data_start(self.latent_prior)

    def _pca_start(self, decoder, data, n_components, likelihood):
        """Whitened PCA latents of the training rows; the decoder starts at PCA itself.

        A linear decoder then begins at the least-squares optimum that
        training would otherwise approach over many epochs; the package's
        ReLU MLP decoder (under MSE) begins at the same reconstruction,
        exactly (:func:`~._pca_init.set_relu_decoder_linear`), and learns the
        nonlinear part from there (early stopping keeps the start where
        training cannot beat it on held-out rows); other decoders start from
        the best linear coordinates (as GLO does). The SVD sees at
        most PCA_START_MAX_VALUES values; on larger data it runs on evenly
        spaced rows (PCA_SUBSAMPLE_VALUES values), and every row then gets its
        projection on their basis, batch by batch.
        """
        n_features = data.n_features

        def values(rows):  # what the likelihood starts from (log-normalised counts, say)
            return likelihood.start_values(data.host_array(rows, np.float64))

        if len(data) * n_features <= PCA_START_MAX_VALUES:
            latents, weight, bias = pca_start(values(slice(None)), n_components)
        else:
            n_fit = min(max(PCA_SUBSAMPLE_VALUES // n_features, n_components + 1), len(data))
            subset = np.unique(np.linspace(0, len(data) - 1, n_fit).round().astype(np.int64))
            _, weight, bias = pca_start(values(subset), n_components)
            latents = np.empty((len(data), n_components))
            for rows in slices(len(data), max(PCA_SUBSAMPLE_VALUES // n_features, 1)):
                latents[rows] = pca_project(values(rows), weight, bias)
        # PCA is the optimum of the package's dense linear decoder under MSE only;
        # is_pca tells fit that the start is PCA's own model (see
        # BaseRepresentationEstimator._kept_start).
        is_pca = False
        if likelihood.pca_is_optimum and self._decoder_is_pca_linear():
            if linear_layer(decoder) is not None:
                set_linear_decoder(decoder, weight, bias)
                is_pca = True
            else:
                is_pca = set_relu_decoder_linear(decoder, weight, bias, latents)
        return TrainingStart(torch.as_tensor(latents, dtype=torch.float32), True, bool(is_pca))

    def _held_out_start(self, reference, n_held_out):
        """Held-out rows' first latents in early stopping: zeros, or the training mean.

        "nearest" and "encoder" have nothing to start from yet: the mean.
        """
        if self.init == "zeros":
            return torch.zeros(n_held_out, reference.shape[1], device=reference.device)
        return reference.mean(dim=0, keepdim=True).expand(n_held_out, -1).clone()

    def _init_function(self, decoder, dtype, device):
        """``init(x, mask) -> z0`` of ``self.init``: each row from its own sample."""
        # The table stays on the host; each start uploads what it uses (not all of it for "zeros").
        latents = HostLatents(self.embedding_, dtype, device)
        likelihood = self._module_for(self._likelihood(), dtype)
        prior = self.__dict__.get("prior_")
        prior = None if prior is None else self._prior_for(dtype)
        if prior is not None and prior.start_candidates() is not None and self.init in PRIOR_MODE_STARTS:
            return self._prior_mode_start(decoder, latents, prior, likelihood, dtype, device)
        return START_STRATEGIES[self.init](self, decoder, latents, likelihood, dtype, device)

    def _prior_mode_start(self, decoder, latents, prior, likelihood, dtype, device):
        """The prior's candidate or training latent with the lowest objective (see PRIOR_MODE_STARTS)."""
        candidates = torch.cat([prior.start_candidates().to(device), latents[self._nearest_rows(len(latents))]])
        references = decode_in_chunks(decoder, candidates, self.inference_batch_size, device).to(dtype)
        weight = self._prior_weight()

        def best_start(x, m):
            _, z0 = best_prior_starts(x, m, prior, candidates, references, loss=likelihood, prior_weight=weight)
            return z0[:, 0].clone()

        return best_start

    def _nearest_rows(self, n_train):
        """Training rows that init="nearest" compares with (evenly spaced)."""
        n_rows = min(n_train, NEAREST_MAX_ROWS, max(1, NEAREST_MAX_VALUES // self.n_features_in_))
        return torch.linspace(0, n_train - 1, n_rows).round().long()
