"""The training loop: a private skorch ``NeuralNet`` over (index, sample) batches.

skorch brings the callbacks (progress bar, early stopping, checkpoints, LR
schedulers), the ``history`` and the per-epoch log; this module only supplies
what differs from supervised training:

* batches are ``(index, x, mask)`` row blocks read from the array (or
  memmap) by :class:`~._data.RowData`, converted and moved one batch at a
  time, not a ``DataLoader`` over per-item ``__getitem__`` calls;
* two optimisers: one for the decoder weights and one for the representation
  (a row-sparse one for the latent table, so only the batch's rows move);
* validation infers the held-out samples' latents with the decoder frozen,
  since they have no trained latents.
"""

import math
import sys

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, PrintLog, ProgressBar
from skorch.utils import Ansi, TeeGenerator

from . import _distributed as distributed
from ._data import slices
from ._devices import autocast
from ._losses import decoded_losses

# Adam's learning rate for a latent prior's parameters (the DGD code's).
PRIOR_LEARNING_RATE = 1e-2


class RowBatches:
    """Mini-batches ``(index, x, mask)`` of a :class:`~._data.RowData`, reshuffled at each pass.

    ``index`` holds the batch's positions in ``data`` (the rows of the latent
    table), on the device; each batch's positions are sorted, so that a
    memmap is read in file order. The loss is a sum over samples, so the
    order inside a batch does not matter.

    Parameters
    ----------
    data : RowData
        The rows to iterate over.
    batch_size : int
        Samples per batch (the last batch may be smaller).
    generator : torch.Generator or None
        Shuffles the order at each pass; None keeps the order.
    """

    def __init__(self, data, batch_size, generator=None):
        self.data = data
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self):
        return math.ceil(len(self.data) / self.batch_size)

    def __iter__(self):
        n = len(self.data)
        if self.generator is None:
            positions = [np.arange(s.start, s.stop) for s in slices(n, self.batch_size)]
        else:
            order = torch.randperm(n, generator=self.generator).numpy()
            positions = [np.sort(order[s]) for s in slices(n, self.batch_size)]
        for rows, x, mask in self.data.batches(positions):
            yield torch.from_numpy(rows).to(self.data.device), x, mask


class StopOnNonFinite(Callback):
    """Stop training with a clear error when an epoch's loss is not finite.

    Checked once per epoch, from the epoch's mean loss, so that training
    never waits on the device for a per-batch value.
    """

    def on_epoch_end(self, net, **kwargs):
        for key in ("train_loss", "valid_loss"):
            value = net.history[-1].get(key)
            if value is not None and not math.isfinite(value):
                raise FloatingPointError(
                    f"Training diverged: the {key.replace('_', ' ')} became {value} in epoch "
                    f"{len(net.history)}. Lower the learning rates or rescale the data."
                )


class RepresentationNet(NeuralNet):
    """skorch net training a ``RepresentationModel`` on its own samples.

    Parameters
    ----------
    module : RepresentationModel
        The representation, the decoder, the likelihood
        (``module.likelihood``: the reconstruction loss, see
        :mod:`._likelihoods`; :mod:`._losses` for the reduction) and
        optionally the latent prior (``module.prior``, a
        :class:`~._priors.LatentPrior`), trained jointly; the likelihood's
        parameters, if any, with the decoder's, the prior's with their own
        Adam.
    weight_optimizer : callable
        ``weight_optimizer(params)`` builds the decoder's optimiser.
    representation_optimizer : callable
        ``representation_optimizer(params)`` builds the representation's.
    held_out : callable or None
        ``held_out(index, x, mask) -> z`` gives held-out latents (by
        inference for an auto-decoder); None uses the representation.
    generator : torch.Generator
        Shuffles the training batches.
    precision : {"float32", "bfloat16", "float16"}, default="float32"
        Autocast dtype of the networks' forward passes; parameters, latents
        and losses stay float32. "float16" adds a gradient scaler.
    batch_losses : bool, default=False
        Record each batch's loss in the history (one device synchronisation
        per batch); otherwise only the epoch means are recorded, once per
        epoch.
    **kwargs
        skorch's own parameters (``max_epochs``, ``batch_size``,
        ``callbacks``, ``verbose``, ``device``).
    """

    def __init__(
        self,
        module,
        *,
        weight_optimizer,
        representation_optimizer,
        held_out=None,
        generator=None,
        precision="float32",
        batch_losses=False,
        **kwargs,
    ):
        super().__init__(module, criterion=torch.nn.Identity, train_split=None, **kwargs)
        self.weight_optimizer = weight_optimizer
        self.representation_optimizer = representation_optimizer
        self.held_out = held_out
        self.generator = generator
        self.precision = precision
        self.batch_losses = batch_losses

    def initialize_optimizer(self, triggered_directly=None):
        # A likelihood's own parameters (e.g. a dispersion) train with the decoder's weights.
        self.optimizer_ = self.weight_optimizer(
            [*self.module_.decoder.parameters(), *self.module_.likelihood.parameters()]
        )
        self.representation_optimizer_ = self.representation_optimizer(
            self.module_.representation.parameters()
        )
        prior = self.module_.prior
        if prior is not None and any(True for _ in prior.parameters()):
            self.prior_optimizer_ = torch.optim.Adam(prior.parameters(), lr=PRIOR_LEARNING_RATE)
        self.scaler_ = torch.amp.GradScaler("cuda") if self.precision == "float16" else None
        return self

    def get_split_datasets(self, X, y=None, **fit_params):
        # X is (train, valid or None), RowData both: the estimator has split.
        return X

    def get_iterator(self, dataset, training=False):
        return RowBatches(dataset, self.batch_size, self.generator if training else None)

    def get_default_callbacks(self):
        # The epoch losses are recorded by run_single_epoch (skorch's
        # PassthroughScoring would need every batch's loss on the host).
        # Without a terminal, print the epoch log without ANSI colour codes.
        plain = not sys.stdout.isatty()
        return [
            (name, PlainPrintLog() if plain and name == "print_log" else callback)
            for name, callback in super().get_default_callbacks()
            if name not in ("train_loss", "valid_loss")
        ]

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """One pass over ``iterator``; the epoch's mean loss recorded once, at the end.

        The per-batch losses stay on the device and are summed there; under
        ``torch.distributed`` the sums are all-reduced, so every rank
        records the same epoch loss (and early stopping agrees).
        """
        if iterator is None:
            return
        total, count, n_batches = None, 0, 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            size = len(batch[0])
            loss = step["loss"].detach()
            total = loss * size if total is None else total + loss * size
            count += size
            if self.batch_losses:
                self.history.record_batch(prefix + "_loss", loss.item())
            self.history.record_batch(prefix + "_batch_size", size)
            self.notify("on_batch_end", batch=batch, training=training, **step)
            n_batches += 1
        self.history.record(prefix + "_batch_count", n_batches)
        mean = distributed.global_mean(total, count)
        previous = [v for v in self.history[:-1, prefix + "_loss"]] if len(self.history) > 1 else []
        self.history.record(prefix + "_loss", mean)
        self.history.record(prefix + "_loss_best", not previous or mean < min(previous))

    def _objective(self, z, x, mask):
        # decoded_losses works from the decoder's logits for BCE (a gradient
        # that does not vanish when saturated), in the data's dtype.
        losses = decoded_losses(self.module_.decoder, z, x, self.module_.likelihood, mask)
        data = losses.sum()
        prior = self.module_.prior
        if prior is None:
            return data
        units = self._prior_weight(data, x, mask) if prior.needs_units else None
        return data + prior.training_loss(z.to(x.dtype), units)

    def _prior_weight(self, data, x, mask):
        """The prior's nats in the units of the batch's reconstruction loss.

        For squared error the noise variance is the batch's mean squared
        residual (no gradient); see ``Likelihood.batch_units_per_nat``.
        """
        n_observed = x.numel() if mask is None else mask.sum()
        return self.module_.likelihood.batch_units_per_nat(data, n_observed)

    def train_step(self, batch, **fit_params):
        # skorch passes its closure to every optimiser's step(), which with
        # two optimisers would run the forward and backward pass twice per
        # batch. One pass, then each optimiser steps on the same gradients.
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        for extra in (self.module_.prior, self.module_.likelihood):
            if extra is not None:
                distributed.sum_gradients(extra)  # not DDP modules: summed here
        optimizers = [getattr(self, name + "_") for name in self._optimizers]
        if self.scaler_ is not None:
            for optimizer in optimizers:
                self.scaler_.unscale_(optimizer)  # callbacks see true gradients
        # Callbacks see the dense gradients only: the latent table's are
        # sparse, which skorch's GradientNormClipping and others cannot take.
        dense = (
            (name, p)
            for name, p in self.get_all_learnable_params()
            if p.grad is None or not p.grad.is_sparse
        )
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(dense),
            batch=batch,
            training=True,
        )
        for optimizer in optimizers:
            if self.scaler_ is None:
                optimizer.step()
            else:
                self.scaler_.step(optimizer)
        if self.scaler_ is not None:
            self.scaler_.update()
        return step

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        index, x, mask = batch
        with autocast(self.precision, x.device):
            z = self.module_.representation(index, x)
            total = self._objective(z, x, mask)
        (total if self.scaler_ is None else self.scaler_.scale(total)).backward()
        # The history records the mean per-sample loss: readable whatever
        # the batch size, while the gradient uses the sum.
        return {"loss": total.detach() / len(index), "y_pred": z}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        index, x, mask = batch
        with autocast(self.precision, x.device):
            if self.held_out is not None:
                z = self.held_out(index, x, mask)
            else:
                with torch.no_grad():
                    z = self.module_.representation(index, x)
            with torch.no_grad():
                total = self._objective(z, x, mask)
        return {"loss": total / len(index), "y_pred": z}


class PlainPrintLog(PrintLog):
    """skorch's epoch log without the ANSI colour of the best values."""

    def format_row(self, row, key, color):
        return str(super().format_row(row, key, color="")).replace(Ansi.ENDC.value, "")


def needs_validation(user_callbacks):
    """Whether a user callback monitors a validation quantity (e.g. skorch's EarlyStopping).

    Such callbacks then get the held-out rows of ``validation_fraction``,
    as ``early_stopping=True`` would give them.
    """
    return any(
        str(getattr(callback, "monitor", "")).startswith("valid_")
        for callback in _callback_objects(user_callbacks)
    )


def _callback_objects(user_callbacks):
    for item in user_callbacks or []:
        yield item[1] if isinstance(item, tuple) else item


class TrainingConvergence(Callback):
    """Stop when the training loss has converged (``converged_`` says whether it did).

    Converged: for ``patience`` epochs in a row, the epoch's training loss
    was not below ``(1 - tol)`` times the best so far (scikit-learn's
    ``MLPRegressor`` rule). It can only shorten training: ``max_epochs``
    stays the cap (the estimator warns when it ends an unconverged fit).
    """

    def __init__(self, tol, patience):
        self.tol = tol
        self.patience = patience

    def initialize(self):
        self.best_ = math.inf
        self.misses_ = 0
        self.converged_ = False
        return self

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, "train_loss"]
        if loss < self.best_ * (1 - self.tol):
            self.misses_ = 0
        else:
            self.misses_ += 1
        self.best_ = min(self.best_, loss)
        if self.misses_ >= self.patience:
            self.converged_ = True
            raise KeyboardInterrupt  # skorch's way to end fit early


def make_callbacks(user_callbacks, *, verbose, early_stopping, n_iter_no_change, tol):
    """The callbacks of a fit: divergence check, progress bar, stopping rule, then the user's."""
    callbacks = [("stop_on_non_finite", StopOnNonFinite())]
    if verbose >= 2:
        # "auto" sizes the bar from the data's len(): our RowData has one.
        callbacks.append(("progress_bar", ProgressBar(batches_per_epoch="auto")))
    if early_stopping:
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_loss",
                    patience=n_iter_no_change,
                    threshold=tol,
                    load_best=True,
                    sink=print if verbose else (lambda *a, **k: None),
                ),
            )
        )
    else:
        callbacks.append(("training_convergence", TrainingConvergence(tol, n_iter_no_change)))
    return callbacks + list(user_callbacks or [])
