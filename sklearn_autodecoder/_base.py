"""Shared scikit-learn glue of the auto-decoder estimators.

The base class validates input, resolves settings, the device and the seed,
hands the torch work to :mod:`._training` (fit) and :mod:`._inference`
(transform), and stores the fitted state. Subclasses only say which decoder
to build and which defaults apply.
"""

import copy
import math
import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_array, check_random_state

from ._compat import Interval, StrOptions, _fit_context, check_is_fitted, validate_data
from ._devices import compute_dtype, is_available, resolve_device
from ._inference import infer_latents
from ._losses import LOSSES, sample_losses
from ._sparse_optim import make_latent_optimizer
from ._training import RepresentationNet, make_callbacks
from .nn import LatentTable, RepresentationModel

# Training latents start as N(0, LATENT_INIT_STD^2): small, so that the decoder
# starts near its mean output, but not zero, so that samples differ at once.
LATENT_INIT_STD = 0.01
# Inference steps per epoch on the held-out latents when early stopping; they
# restart from the previous epoch's values, so a few steps track the decoder.
VALID_STEPS_PER_EPOCH = 10
INIT_STRATEGIES = ("zeros", "mean")

# Settings a subclass may leave as None, to be resolved from its defaults.
TRAINING_SETTINGS = (
    "n_components",
    "loss",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "latent_optimizer",
    "latent_learning_rate",
    "latent_momentum",
    "latent_l2",
    "max_iter",
    "batch_size",
)


def _positive(kind):
    return Interval(kind, 0, None, closed="neither")


def _at_least_one():
    return Interval(Integral, 1, None, closed="left")


def _make_weight_optimizer(params, name, lr, weight_decay):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


def _to_tensor(X, dtype=None):
    """X as a tensor with NaN replaced by 0, and the mask of observed entries.

    The caller's array is never written to: ``nan_to_num`` copies it when it
    holds NaN. ``mask`` is None when every entry is observed.
    """
    if not X.flags.writeable:
        X = np.array(X)  # torch cannot wrap a read-only array
    missing = np.isnan(X)
    if missing.any():
        if missing.all(axis=1).any():
            rows = np.flatnonzero(missing.all(axis=1))[:5].tolist()
            raise ValueError(
                f"Samples {rows} have no observed (non-NaN) entry; a latent vector "
                "cannot be inferred for them."
            )
        X = np.nan_to_num(X, nan=0.0)
        mask = torch.from_numpy(~missing)
    else:
        mask = None
    return torch.as_tensor(X, dtype=dtype), mask


class BaseAutoDecoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class for auto-decoders; not for direct use."""

    _parameter_constraints = {
        "n_components": [_at_least_one()],
        "loss": [StrOptions(set(LOSSES))],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "learning_rate": [_positive(Real)],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "latent_optimizer": [StrOptions({"sgd", "adam"})],
        "latent_learning_rate": [_positive(Real)],
        "latent_momentum": [Interval(Real, 0, 1, closed="left")],
        "latent_l2": [Interval(Real, 0, None, closed="left")],
        "max_iter": [_at_least_one()],
        "batch_size": [_at_least_one()],
        "inference_max_iter": [_at_least_one()],
        "inference_learning_rate": [_positive(Real)],
        "tol": [Interval(Real, 0, 1, closed="left")],
        "init": [StrOptions(set(INIT_STRATEGIES))],
        "inference_batch_size": [_at_least_one()],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [_at_least_one()],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    # ---- hooks for subclasses -------------------------------------------------

    def _default_settings(self):
        """Values for the TRAINING_SETTINGS a user left as None."""
        return {}

    def _build_decoder(self, n_features, settings):
        """A torch module mapping (n, n_components) to (n, n_features)."""
        raise NotImplementedError

    def _check_n_features(self, n_features):
        """Raise a ValueError if the decoder cannot produce this width."""

    # ---- settings, devices, data ---------------------------------------------

    def _settings(self):
        defaults = self._default_settings()
        settings = {}
        for name in TRAINING_SETTINGS:
            value = getattr(self, name)
            settings[name] = defaults[name] if value is None else value
        return settings

    def _validate_X(self, X, reset):
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
            ensure_min_samples=1 if not reset else 2,
        )
        if reset:
            self._check_n_features(X.shape[1])
        return X

    def _check_range(self, X, loss):
        if loss == "bce" and (np.nanmin(X) < 0 or np.nanmax(X) > 1):
            raise ValueError(
                "loss='bce' needs X in [0, 1]; got values in "
                f"[{np.nanmin(X):.3g}, {np.nanmax(X):.3g}]. Rescale X or use loss='mse'."
            )

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ---- fit --------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the decoder and the training latents jointly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples. NaN marks an unobserved entry, which the loss
            ignores.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = self._validate_X(X, reset=True)
        settings = self._settings()
        self._check_range(X, settings["loss"])
        X_t, mask = _to_tensor(X, torch.float32)
        device = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)

        warm = self.warm_start and hasattr(self, "decoder_")
        if warm and self.n_components_ != settings["n_components"]:
            raise ValueError(
                "warm_start=True needs the same n_components as the previous fit "
                f"({self.n_components_}), got {settings['n_components']}."
            )
        train, valid = self._split(len(X), generator)
        rows = lambda r: (X_t[r], None if mask is None else mask[r])  # noqa: E731
        with torch.random.fork_rng(devices=[]):  # seed without touching global RNG
            torch.manual_seed(seed)
            if warm:
                decoder = self.decoder_.float().to(device)
            else:
                decoder = self._build_decoder(X.shape[1], settings).to(device)
            representation, representation_optimizer = self._make_representation(
                decoder, *rows(train), settings, warm, device, generator
            )
        valid_encoder, valid_state = None, None
        if valid is not None:
            valid_encoder, valid_state = self._make_valid_encoder(
                decoder, representation, len(valid), settings, device
            )

        net = self._make_net(
            RepresentationModel(representation, decoder),
            representation_optimizer,
            valid_encoder,
            settings,
            device,
            generator,
        )
        on_device = lambda r: tuple(None if t is None else t.to(device) for t in rows(r))  # noqa: E731
        net.fit((on_device(train), None if valid is None else on_device(valid)))

        self.device_ = device
        self.decoder_ = decoder.eval()
        self.n_components_ = settings["n_components"]
        self.loss_ = settings["loss"]
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self.loss_curve_ = [float(v) for v in net.history[:, "train_loss"]]
        self._store_representation(representation, train, valid, valid_state, X.dtype)
        return self

    def _split(self, n_samples, generator):
        """Training and held-out rows (the latter None without early stopping)."""
        if not self.early_stopping:
            return torch.arange(n_samples), None
        n_valid = math.ceil(self.validation_fraction * n_samples)
        if n_valid >= n_samples:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training "
                f"sample out of {n_samples}."
            )
        order = torch.randperm(n_samples, generator=generator)
        return order[n_valid:].sort().values, order[:n_valid].sort().values

    # ---- the representation: hooks an autoencoder overrides -------------------

    def _make_representation(self, decoder, X_train, mask_train, settings, warm, device, generator):
        """The trainable representation of the training samples and its optimiser.

        Here a latent table (one free vector per sample) with a row-sparse
        optimiser. Called with torch's RNG seeded from ``random_state``.
        """
        if warm:
            # Project the data on the current manifold: a start as good as the
            # decoder, whether or not X is the previous fit's data.
            init, _ = self._infer_tensor(decoder, X_train, mask_train, settings["loss"], device)
        else:
            init = LATENT_INIT_STD * torch.randn(len(X_train), settings["n_components"], generator=generator)
        table = LatentTable(len(X_train), settings["n_components"], init=init.float()).to(device)
        optimizer = partial(
            make_latent_optimizer,
            name=settings["latent_optimizer"],
            lr=settings["latent_learning_rate"],
            momentum=settings["latent_momentum"],
        )
        return table, optimizer

    def _make_valid_encoder(self, decoder, representation, n_valid, settings, device):
        """``(encode(index, x, mask), state)`` for the held-out samples.

        Their latents are inferred with the decoder frozen, a few steps per
        epoch from the previous epoch's values (kept in ``state``).
        """
        valid_z = self._start_latents(n_valid, representation.weight.detach(), settings, device)

        def encode(index, x, mask):
            z, _ = infer_latents(
                decoder,
                x,
                lambda *_: valid_z[index],
                loss=settings["loss"],
                mask=mask,
                max_iter=VALID_STEPS_PER_EPOCH,
                learning_rate=self.inference_learning_rate,
                tol=self.tol,
                latent_l2=settings["latent_l2"],
                batch_size=len(x),
                device=device,
            )
            valid_z[index] = z
            return z

        return encode, valid_z

    def _store_representation(self, representation, train, valid, valid_state, dtype):
        """Keep the fitted representation: here the training latents."""
        embedding = torch.empty(len(train) + (0 if valid is None else len(valid)), self.n_components_)
        embedding[train] = representation.weight.detach().cpu()
        if valid is not None:
            embedding[valid] = valid_state.detach().cpu()
        self.embedding_ = embedding.numpy().astype(dtype, copy=False)

    def _start_latents(self, n_samples, reference, settings, device):
        """Deterministic starting latents for ``n_samples`` samples."""
        if self.init == "mean":
            return reference.mean(dim=0, keepdim=True).expand(n_samples, -1).clone()
        return torch.zeros(n_samples, settings["n_components"], device=device, dtype=reference.dtype)

    def _make_net(self, model, representation_optimizer, valid_encoder, settings, device, generator):
        return RepresentationNet(
            model,
            loss=settings["loss"],
            latent_l2=settings["latent_l2"],
            weight_optimizer=partial(
                _make_weight_optimizer,
                name=settings["optimizer"],
                lr=settings["learning_rate"],
                weight_decay=settings["weight_decay"],
            ),
            representation_optimizer=representation_optimizer,
            valid_encoder=valid_encoder,
            generator=generator,
            max_epochs=settings["max_iter"],
            batch_size=settings["batch_size"],
            callbacks=make_callbacks(
                self.callbacks,
                verbose=self.verbose,
                early_stopping=self.early_stopping,
                n_iter_no_change=self.n_iter_no_change,
                tol=self.tol,
            ),
            verbose=int(self.verbose),
            device=str(device),
        )

    # ---- inference ----------------------------------------------------------------

    def _infer_tensor(self, decoder, X_t, mask, loss, device):
        """Latents of the tensor ``X_t`` under ``decoder`` (same dtype as X_t)."""
        mean = None
        if self.init == "mean" and hasattr(self, "embedding_"):
            mean = torch.as_tensor(self.embedding_.mean(axis=0), dtype=X_t.dtype, device=device)
        n_components = self.n_components_

        def init(x, m):
            if mean is not None:
                return mean.expand(len(x), -1).clone()
            return torch.zeros(len(x), n_components, dtype=x.dtype, device=x.device)

        return infer_latents(
            decoder,
            X_t,
            init,
            loss=loss,
            mask=mask,
            max_iter=self.inference_max_iter,
            learning_rate=self.inference_learning_rate,
            tol=self.tol,
            latent_l2=self._settings()["latent_l2"],
            batch_size=self.inference_batch_size,
            device=device,
        )

    def _decoder_for(self, dtype):
        """The fitted decoder in the torch dtype that X's dtype calls for."""
        torch_dtype = compute_dtype(dtype, self.device_)
        if torch_dtype == torch.float32:
            return self.decoder_
        return copy.deepcopy(self.decoder_).to(torch_dtype)

    def _latents(self, X):
        """Validated X, its mask, and its inferred latents as a device tensor."""
        X = self._validate_X(X, reset=False)
        decoder = self._decoder_for(X.dtype)
        dtype = next(decoder.parameters()).dtype
        X_t, mask = _to_tensor(X, dtype)
        Z, _ = self._infer_tensor(decoder, X_t, mask, self.loss_, self.device_)
        return X, X_t, mask, Z, decoder

    def transform(self, X):
        """Infer the latent vector of each sample with the decoder frozen.

        Each sample's latent minimises its reconstruction loss over its
        observed (non-NaN) entries, by Adam from a deterministic start; the
        rows are independent of each other.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to project onto the decoder's manifold.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
            Latent vectors, in X's dtype.
        """
        check_is_fitted(self)
        X, _, _, Z, _ = self._latents(X)
        return Z.detach().cpu().numpy().astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Decode latent vectors into samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)
            Latent vectors.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Reconstructions, in the latents' dtype.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} columns, but {type(self).__name__} decodes latent "
                f"vectors of width n_components_={self.n_components_}."
            )
        decoder = self._decoder_for(Z.dtype)
        dtype = next(decoder.parameters()).dtype
        Z_t = torch.as_tensor(Z, dtype=dtype)
        return self._decode(decoder, Z_t).cpu().numpy().astype(Z.dtype, copy=False)

    @torch.no_grad()
    def _decode(self, decoder, Z_t):
        was_training = decoder.training
        decoder.eval()
        step = self.inference_batch_size
        parts = [decoder(Z_t[i : i + step].to(self.device_)) for i in range(0, len(Z_t), step)]
        decoder.train(was_training)
        return torch.cat(parts)

    def score(self, X, y=None):
        """Negative mean reconstruction loss per observed entry (higher is better).

        The samples are projected with :meth:`transform`, decoded, and the
        loss (``loss_``) is averaged over their observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        _, X_t, mask, Z, decoder = self._latents(X)
        X_hat = self._decode(decoder, Z)
        losses = sample_losses(X_hat, X_t.to(self.device_), self.loss_, None if mask is None else mask.to(self.device_))
        n_observed = X_t.numel() if mask is None else int(mask.sum())
        return -float(losses.sum()) / n_observed

    # ---- pickling ---------------------------------------------------------------

    def __getstate__(self):
        state = super().__getstate__()
        if "decoder_" in state:
            # Store CPU tensors so that a model fitted on a GPU loads anywhere.
            state["decoder_"] = copy.deepcopy(self.decoder_).cpu()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "decoder_" in state:
            if not is_available(self.device_):
                warnings.warn(
                    f"This model was fitted on {self.device_}, which is not available "
                    "here; it now runs on the CPU.",
                    UserWarning,
                )
                self.device_ = torch.device("cpu")
            self.decoder_ = self.decoder_.to(self.device_)
