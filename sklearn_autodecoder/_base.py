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
from ._amortized import encode, fit_encoder
from ._inference import decode_in_chunks, infer_latents, nearest_latents
from ._load import LowLoadWarning, decoder_load, n_free_parameters
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
INIT_STRATEGIES = ("zeros", "mean", "nearest", "encoder")
# init="nearest" compares a sample with at most this many decoded training
# values (rows x features; 128 MiB in float32), on evenly spaced rows.
NEAREST_MAX_VALUES = 2**25

# Samples decoded (or encoded) together when no inference batch size applies.
TRANSFORM_BATCH_SIZE = 256

# Settings a subclass may leave as None, to be resolved from its defaults:
# those every estimator has, then those of the auto-decoders' latent table.
COMMON_SETTINGS = (
    "n_components",
    "loss",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "max_iter",
    "batch_size",
)
LATENT_SETTINGS = (
    "latent_optimizer",
    "latent_learning_rate",
    "latent_momentum",
    "latent_l2",
)
TRAINING_SETTINGS = COMMON_SETTINGS + LATENT_SETTINGS


def _positive(kind):
    return Interval(kind, 0, None, closed="neither")


def _at_least_one():
    return Interval(Integral, 1, None, closed="left")


def _make_weight_optimizer(params, name, lr, weight_decay):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


def _rms(latents):
    """Root mean square of latents (tensor or array); 1 for an all-zero table.

    Inference step sizes are multiples of the training latents' RMS, so that
    ``inference_learning_rate`` does not depend on the scale the latents
    happened to take in training.
    """
    rms = float((latents**2).mean() ** 0.5)
    return rms if rms > 0 else 1.0


def _to_tensor(X, dtype=None):
    """X as a tensor with NaN replaced by 0, and the mask of observed entries.

    The caller's array is never written to: ``nan_to_num`` copies it when it
    holds NaN. ``mask`` is None when every entry is observed.
    """
    if not X.flags.writeable or any(stride < 0 for stride in X.strides):
        X = np.array(X)  # torch cannot wrap read-only or negatively strided arrays
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


class BaseRepresentationEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base of the auto-decoders and autoencoders; not for direct use.

    Validates input, resolves settings, the device and the seed, trains a
    representation and a decoder jointly (:mod:`._training`) and decodes.
    Subclasses say which decoder to build (``_build_decoder``) and which
    representation trains with it, through the hooks
    ``_make_representation``, ``_make_valid_encoder``,
    ``_store_representation`` and ``_transform_tensor``: a free latent table
    (:class:`BaseAutoDecoder`) or an encoder (the autoencoders).
    """

    _parameter_constraints = {
        "n_components": [_at_least_one()],
        "loss": [StrOptions(set(LOSSES))],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "learning_rate": [_positive(Real)],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_iter": [_at_least_one()],
        "batch_size": [_at_least_one()],
        "tol": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [_at_least_one()],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }
    _training_settings = COMMON_SETTINGS
    # Fitted torch modules, moved to the CPU when pickled.
    _torch_attributes = ("decoder_",)


    # ---- hooks for subclasses -------------------------------------------------

    def _default_settings(self):
        """Values for the TRAINING_SETTINGS a user left as None."""
        return {}

    def _build_decoder(self, n_features, settings):
        """A torch module mapping (n, n_components) to (n, n_features)."""
        raise NotImplementedError

    def _check_n_features(self, n_features):
        """Raise a ValueError if the decoder cannot produce this width."""

    def _make_representation(self, decoder, X_train, mask_train, settings, warm, device, generator):
        """``(representation, optimizer_factory)`` for the training samples.

        ``representation(index, x)`` gives the batch's latents; it is
        trained jointly with ``decoder`` by ``optimizer_factory(params)``.
        Called with torch's RNG seeded from ``random_state``.
        """
        raise NotImplementedError

    def _make_valid_encoder(self, decoder, representation, n_valid, settings, device):
        """``(encode(index, x, mask), state)`` giving held-out latents.

        ``(None, None)`` validates with ``representation`` itself, as an
        encoder can.
        """
        return None, None

    def _store_representation(self, representation, train, valid, valid_state, dtype):
        """Keep what ``transform`` needs of the fitted representation."""
        raise NotImplementedError

    def _transform_tensor(self, X_t, mask, decoder):
        """Latents of the tensor ``X_t`` (in its dtype), on ``device_``."""
        raise NotImplementedError

    def _fit_inference_aids(self, X_t, mask, generator):
        """Fit what makes ``transform`` fast, once the representation is stored."""

    # ---- settings, devices, data ---------------------------------------------

    def _settings(self):
        defaults = self._default_settings()
        settings = {}
        for name in self._training_settings:
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
        loads = self._loads(decoder, representation, settings, n_train=len(train), n_values=(
            len(train) * X.shape[1] if mask is None else int(mask[train].sum())
        ))
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
        for name, value in loads.items():
            setattr(self, name, value)
        self._store_representation(representation, train, valid, valid_state, X.dtype)
        self._fit_inference_aids(X_t, mask, generator)
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

    def _loads(self, decoder, representation, settings, *, n_train, n_values):
        """Fitted load attributes, warning when the decoder's is below 1.

        ``n_values`` counts the observed training entries, so missing
        entries do not inflate the load.
        """
        n_weights = n_free_parameters(decoder)
        load = decoder_load(n_train, n_values / n_train, settings["n_components"], n_weights)
        if load < 1:
            warnings.warn(
                f"The decoder load N*n/(W + N*m) is {load:.3g} < 1: {n_values} data values "
                f"for {n_weights} decoder weights and {n_train * settings['n_components']} "
                "latent values, so the fit is under-determined. Use more samples, a smaller "
                "decoder or fewer components.",
                LowLoadWarning,
                stacklevel=4,
            )
        return {"decoder_load_": load}

    def _transform_batch_size(self):
        """Samples encoded or decoded together (bounds device memory)."""
        return TRANSFORM_BATCH_SIZE

    def _make_net(self, model, representation_optimizer, valid_encoder, settings, device, generator):
        return RepresentationNet(
            model,
            loss=settings["loss"],
            latent_l2=settings.get("latent_l2", 0.0),
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

    def _module_for(self, module, dtype):
        """A fitted module in a torch dtype, or in the one X's numpy dtype calls for."""
        torch_dtype = dtype if isinstance(dtype, torch.dtype) else compute_dtype(dtype, self.device_)
        if torch_dtype == torch.float32:
            return module
        return copy.deepcopy(module).to(torch_dtype)

    def _decoder_for(self, dtype):
        """The fitted decoder in the torch dtype that X's dtype calls for."""
        return self._module_for(self.decoder_, dtype)

    def _latents(self, X):
        """Validated X, its mask, and its inferred latents as a device tensor."""
        X = self._validate_X(X, reset=False)
        decoder = self._decoder_for(X.dtype)
        dtype = next(decoder.parameters()).dtype
        X_t, mask = _to_tensor(X, dtype)
        Z = self._transform_tensor(X_t, mask, decoder)
        return X, X_t, mask, Z, decoder

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
        return self._run_batched(decoder, Z_t).cpu().numpy().astype(Z.dtype, copy=False)

    @torch.no_grad()
    def _run_batched(self, module, T):
        """``module(T)`` in eval mode, chunk by chunk on ``device_``."""
        was_training = module.training
        module.eval()
        step = self._transform_batch_size()
        try:
            parts = [module(T[i : i + step].to(self.device_)) for i in range(0, len(T), step)]
        finally:
            module.train(was_training)
        return torch.cat(parts)

    def _transform_array(self, X):
        """The latents of X as an array in X's dtype (the body of ``transform``)."""
        check_is_fitted(self)
        X, _, _, Z, _ = self._latents(X)
        return Z.detach().cpu().numpy().astype(X.dtype, copy=False)

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
        X_hat = self._run_batched(decoder, Z)
        losses = sample_losses(X_hat, X_t.to(self.device_), self.loss_, None if mask is None else mask.to(self.device_))
        n_observed = X_t.numel() if mask is None else int(mask.sum())
        return -float(losses.sum()) / n_observed

    # ---- pickling ---------------------------------------------------------------

    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__ itself.
        state = dict(super().__getstate__())
        for name in self._torch_attributes:
            if name in state:
                # Store CPU tensors so that a model fitted on a GPU loads anywhere.
                state[name] = copy.deepcopy(state[name]).cpu()
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
            for name in self._torch_attributes:
                if name in state:
                    setattr(self, name, getattr(self, name).to(self.device_))


class BaseAutoDecoder(BaseRepresentationEstimator):
    """Base class for auto-decoders; not for direct use.

    The representation is a table of free latent vectors, one per training
    sample; new samples get theirs by inference with the decoder frozen.
    """

    _parameter_constraints = {
        **BaseRepresentationEstimator._parameter_constraints,
        "latent_optimizer": [StrOptions({"sgd", "adam"})],
        "latent_learning_rate": [_positive(Real)],
        "latent_momentum": [Interval(Real, 0, 1, closed="left")],
        "latent_l2": [Interval(Real, 0, None, closed="left")],
        "inference_max_iter": [_at_least_one()],
        "inference_learning_rate": [_positive(Real)],
        "init": [StrOptions(set(INIT_STRATEGIES))],
        "encoder_max_iter": [_at_least_one()],
        "inference_batch_size": [_at_least_one()],
    }
    _training_settings = TRAINING_SETTINGS
    _torch_attributes = ("decoder_", "encoder_")

    # ---- the representation: a latent table -----------------------------------

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
            z, *_ = infer_latents(
                decoder,
                x,
                lambda *_: valid_z[index],
                loss=settings["loss"],
                mask=mask,
                max_iter=VALID_STEPS_PER_EPOCH,
                learning_rate=self.inference_learning_rate * _rms(representation.weight.detach()),
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
        """Deterministic starting latents for ``n_samples`` samples.

        Used for the held-out samples of early stopping, before any encoder
        or final latents exist: "nearest" and "encoder" start at the mean.
        """
        if self.init != "zeros":
            return reference.mean(dim=0, keepdim=True).expand(n_samples, -1).clone()
        return torch.zeros(n_samples, settings["n_components"], device=device, dtype=reference.dtype)

    # ---- inference ----------------------------------------------------------------

    def _infer_tensor(self, decoder, X_t, mask, loss, device, init=None):
        """Latents of the tensor ``X_t`` under ``decoder`` (same dtype as X_t).

        ``init``, a tensor of starting latents, overrides the ``init`` strategy.
        """
        return infer_latents(
            decoder,
            X_t,
            self._init_function(decoder, loss, X_t.dtype, device) if init is None else init,
            loss=loss,
            mask=mask,
            max_iter=self.inference_max_iter,
            learning_rate=self.inference_learning_rate * _rms(self.embedding_),
            tol=self.tol,
            latent_l2=self._settings()["latent_l2"],
            batch_size=self.inference_batch_size,
            device=device,
        )[:2]

    def _init_function(self, decoder, loss, dtype, device):
        """``init(x, mask) -> z0`` of ``self.init``: each row from its own sample."""
        latents = torch.as_tensor(self.embedding_, dtype=dtype, device=device)
        if self.init == "mean":
            mean = latents.mean(dim=0, keepdim=True)
            return lambda x, m: mean.expand(len(x), -1).clone()
        if self.init == "nearest":
            rows = self._nearest_rows(len(latents))
            references = getattr(self, "_references_", None)
            if references is None or len(references) != len(rows):  # init set after fit
                references = decode_in_chunks(decoder, latents[rows], self.inference_batch_size, device)
            references = torch.as_tensor(references, dtype=dtype, device=device)
            return lambda x, m: nearest_latents(x, m, references, latents[rows], loss)
        if self.init == "encoder":
            if getattr(self, "encoder_", None) is None:
                raise ValueError(
                    "init='encoder' needs the encoder trained at the end of fit; "
                    "refit with init='encoder'."
                )
            encoder = self._module_for(self.encoder_, dtype)
            return lambda x, m: encode(encoder, x, m)
        return lambda x, m: torch.zeros(len(x), latents.shape[1], dtype=dtype, device=x.device)

    def _nearest_rows(self, n_train):
        """Training rows that init="nearest" compares with (evenly spaced)."""
        n_rows = min(n_train, max(1, NEAREST_MAX_VALUES // self.n_features_in_))
        return torch.linspace(0, n_train - 1, n_rows).round().long()

    def _fit_inference_aids(self, X_t, mask, generator):
        """Decode the references of init="nearest", or train the encoder of init="encoder".

        The amortised encoder regresses the fitted latents from the samples
        (targets fixed), on clean and randomly masked copies, plus the frozen
        decoder's reconstruction loss of its output.
        """
        for name in ("_references_", "encoder_", "encoder_loss_curve_"):
            self.__dict__.pop(name, None)  # from a previous fit with another init
        if self.init == "nearest":
            latents = torch.as_tensor(self.embedding_, dtype=torch.float32)
            rows = self._nearest_rows(len(latents))
            self._references_ = decode_in_chunks(
                self.decoder_, latents[rows], self.inference_batch_size, self.device_
            ).cpu()
        elif self.init == "encoder":
            with torch.random.fork_rng(devices=[]):  # seeded build, global RNG untouched
                torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
                encoder = self._build_encoder(X_t.shape[1], self._settings())
            self.encoder_loss_curve_ = fit_encoder(
                encoder,
                X_t,
                mask,
                torch.as_tensor(self.embedding_, dtype=torch.float32),
                max_iter=self.encoder_max_iter,
                batch_size=self._settings()["batch_size"],
                generator=generator,
                device=self.device_,
                decoder=self.decoder_,
                loss=self.loss_,
            )
            self.encoder_ = encoder

    def _transform_tensor(self, X_t, mask, decoder):
        """Inferred latents of ``X_t`` (the transform hook)."""
        Z, _ = self._infer_tensor(decoder, X_t, mask, self.loss_, self.device_)
        return Z

    def _transform_batch_size(self):
        return self.inference_batch_size

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
        return self._transform_array(X)
