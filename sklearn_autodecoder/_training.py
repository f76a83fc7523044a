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
import signal
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import torch
from scipy.stats import t as student_t
from skorch import NeuralNet
from skorch.callbacks import Callback, PrintLog, ProgressBar
from skorch.utils import Ansi, TeeGenerator

from . import _distributed as distributed
from ._data import slices
from ._devices import autocast
from ._losses import decoded_losses

# An epoch replaces the start (e.g. the PCA solution) only if a one-sided
# paired t-test on the held-out rows' losses finds it better at this level.
START_TEST_LEVEL = 0.05
# With fewer held-out rows the test has no power worth the name (and the
# rows' loss differences are far from normal): the start is kept.
START_TEST_MIN_ROWS = 5
# Adam's learning rate for a latent prior's parameters (the DGD code's).
PRIOR_LEARNING_RATE = 1e-2
# Divergence: an epoch's mean training loss above the start's by this many
# times the start's scale (see StopOnNonFinite).
DIVERGENCE_FACTOR = 1e3


class RowBatches:
    """Mini-batches ``(index, x, mask)`` of a :class:`~._data.RowData`, reshuffled at each pass.

    ``index`` holds the batch's positions in ``data`` (the rows of the latent
    table), on the device; each batch's positions are sorted, so that a
    memmap is read in file order. The loss is a sum over samples, so the
    order inside a batch does not matter.

    Under ``torch.distributed`` the batches are global: every rank draws the
    same order and keeps its own positions of each batch
    (:func:`~._distributed.owned`), so every rank runs the same number of
    steps and ``batch_size`` means what it means on one process; a rank's
    share of a batch may be empty.

    Parameters
    ----------
    data : RowData
        The rows to iterate over.
    batch_size : int
        Samples per global batch (the last batch may be smaller).
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
        positions = [distributed.owned(p) for p in positions]
        device = self.data.device
        for rows, x, mask in self.data.batches(positions):
            index = torch.from_numpy(rows)
            if device.type == "cuda":
                # Pinned and asynchronous, like the batch: a pageable copy would block the host.
                with torch.cuda.device(device):
                    index = index.pin_memory().to(device, non_blocking=True)
            else:
                index = index.to(device)
            yield index, x, mask


class StopTraining(Exception):
    """The package's stopping rules' end of a fit (not an error).

    skorch's callbacks end a fit by raising ``KeyboardInterrupt``, which
    skorch's loop swallows, a user's Ctrl-C with it; the package's own rules
    raise this instead (see :meth:`RepresentationNet.partial_fit`).
    """


@contextmanager
def user_interrupts():
    """Yield ``interrupted()``: whether a SIGINT (Ctrl-C) raised ``KeyboardInterrupt`` inside.

    skorch's callbacks (``EarlyStopping`` and others a user passes) stop a
    fit by raising ``KeyboardInterrupt`` too; what tells a user's interrupt
    apart is that it comes through the SIGINT handler. In the main thread
    the block runs under a handler that calls the previous one and notes
    when it raised; the previous handler is restored on exit. Elsewhere (a
    fit in a worker thread) Python delivers no signal, and a handler that is
    not Python's (ignored, the default action) is left alone: nothing to note.
    """
    state = {"interrupted": False}
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        yield lambda: state["interrupted"]
        return

    def handler(signum, frame):
        try:
            previous(signum, frame)
        except KeyboardInterrupt:
            state["interrupted"] = True
            raise

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: state["interrupted"]
    finally:
        signal.signal(signal.SIGINT, previous)


def above_start(value, start, n_features, factor, unit=1.0):
    """Whether a loss ``value`` exceeds ``start`` by ``factor`` times max(|start|, ``unit`` per feature).

    Losses can be negative (a likelihood's normaliser) or near zero (a
    start that fits already): the floor of ``unit`` per feature keeps the
    margin meaningful there.
    """
    return value > start + factor * max(abs(start), unit * n_features)


class StopOnNonFinite(Callback):
    """Stop training with a clear error when an epoch's loss is not finite or has blown up.

    Checked once per epoch, from the epoch's mean loss, so that training
    never waits on the device for a per-batch value. Blown up: the epoch's
    mean training loss exceeds the start's (``net.start_loss_``, the first
    batch's loss before any step) by ``DIVERGENCE_FACTOR`` times the larger
    of the start's magnitude and one unit per feature. Losses can be
    negative (a likelihood's normaliser) or near zero (a start that fits
    already), hence the unit per feature; a fit that is learning never
    climbs three orders of magnitude above where it started.
    """

    def on_epoch_end(self, net, **kwargs):
        for key in ("train_loss", "valid_loss"):
            value = net.history[-1].get(key)
            if value is not None and not math.isfinite(value):
                raise FloatingPointError(
                    f"Training diverged: the {key.replace('_', ' ')} became {value} in epoch "
                    f"{len(net.history)}. Lower the learning rates or rescale the data."
                )
        start, n_features = getattr(net, "start_loss_", None), getattr(net, "n_features_", None)
        value = net.history[-1].get("train_loss")
        if start is None or n_features is None or value is None:
            return
        if above_start(value, start, n_features, DIVERGENCE_FACTOR):
            raise FloatingPointError(
                f"Training diverged: the train loss grew from {start:.4g} at the start to "
                f"{value:.4g} in epoch {len(net.history)}: the steps are too large for this model "
                "and data. Lower learning_rate (an auto-decoder's latent_learning_rate too) or "
                "rescale the data."
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

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """skorch's ``partial_fit``, but a user's Ctrl-C propagates.

        skorch swallows every ``KeyboardInterrupt`` of the loop, its
        callbacks' stop signal; here only those stay swallowed (and the
        package's :class:`StopTraining`), while one raised by the SIGINT
        handler (see :func:`user_interrupts`) reaches the caller.
        """
        if not self.initialized_:
            self.initialize()
        # The divergence check's reference: the first training batch's loss, before any step.
        # (partial_fit: the first call's, kept by the estimator; a chunk whose
        # start is already blown up must not become the reference.)
        self.start_loss_ = self.__dict__.get("reference_loss_")
        self.n_features_ = X[0].n_features if isinstance(X, tuple) else None
        with user_interrupts() as interrupted:
            self.__dict__["_interrupted"] = interrupted  # read by _stop_if_interrupted
            try:
                self.notify("on_train_begin", X=X, y=y)
                try:
                    # fit_params as skorch's fit passes them (skorch 1.4 adds its routing key).
                    self.fit_loop(X, y, **fit_params)
                except StopTraining:
                    pass
                except KeyboardInterrupt:
                    if interrupted():
                        raise
                self._stop_if_interrupted()
                self.notify("on_train_end", X=X, y=y)
            finally:
                self.__dict__.pop("_interrupted", None)
        return self

    def _stop_if_interrupted(self):
        """Raise ``KeyboardInterrupt`` if a Ctrl-C came whose exception never surfaced.

        The SIGINT handler's exception is raised wherever the main thread is;
        code that checks for signals and drops the error (C extensions,
        finalizers) loses it, while the handler has noted the interrupt.
        """
        interrupted = self.__dict__.get("_interrupted")
        if interrupted is not None and interrupted():
            raise KeyboardInterrupt

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
        # The epoch log says "epoch k/N" with the time elapsed and left;
        # without a terminal, it has no ANSI colour codes.
        plain = not sys.stdout.isatty()
        return [
            (name, EpochLog(plain=plain) if name == "print_log" else callback)
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
            # The batch's summed loss (a rank's share of a global batch may be empty).
            summed = step.get("total", loss * size).detach()
            if training and total is None and getattr(self, "start_loss_", 0) is None:
                self.start_loss_ = distributed.global_mean(summed, size)
            total = summed if total is None else total + summed
            count += size
            if self.batch_losses:
                self.history.record_batch(prefix + "_loss", loss.item())
            self.history.record_batch(prefix + "_batch_size", size)
            self.notify("on_batch_end", batch=batch, training=training, **step)
            self._stop_if_interrupted()
            n_batches += 1
        self.history.record(prefix + "_batch_count", n_batches)
        mean = distributed.global_mean(total, count)
        previous = [v for v in self.history[:-1, prefix + "_loss"]] if len(self.history) > 1 else []
        self.history.record(prefix + "_loss", mean)
        self.history.record(prefix + "_loss_best", not previous or mean < min(previous))

    def _objective(self, z, x, mask, return_rows=False):
        # decoded_losses works from the decoder's logits for BCE (a gradient
        # that does not vanish when saturated), in the data's dtype.
        losses = decoded_losses(self.module_.decoder, z, x, self.module_.likelihood, mask)
        total = self._total(z, x, mask, losses)
        return (total, losses) if return_rows else total

    def _total(self, z, x, mask, losses):
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
        if distributed.is_active():
            # The global batch's estimate, as on one process (a rank's share may be empty).
            summed, n_observed = distributed.sum_tensors(data.detach(), torch.as_tensor(n_observed, device=data.device))
            return self.module_.likelihood.batch_units_per_nat(summed.to(data.dtype), n_observed)
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
            distributed.sync_found_inf(self.scaler_, optimizers)  # every rank skips alike
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
        return {"loss": total.detach() / max(len(index), 1), "total": total.detach(), "y_pred": z}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        index, x, mask = batch
        with autocast(self.precision, x.device):
            if self.held_out is not None and len(index):
                z = self.held_out(index, x, mask)
            else:  # (also an empty share of a data-parallel batch: nothing to infer)
                with torch.no_grad():
                    z = self.module_.representation(index, x)
            with torch.no_grad():
                total, rows = self._objective(z, x, mask, return_rows=True)
        # Each held-out row's reconstruction loss: early stopping compares
        # epochs with the start row by row (HeldOutEarlyStopping). An empty
        # share of a data-parallel batch has no row.
        return {"loss": total / max(len(index), 1), "total": total, "y_pred": z, "row_losses": rows.detach()}


def format_duration(seconds):
    """A duration for progress lines: "4.2 s", "3 min 05 s", "1 h 02 min"."""
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class EpochLog(PrintLog):
    """skorch's epoch table, with "epoch k/N", the time elapsed and an ETA.

    The ETA assumes every remaining epoch up to ``max_epochs`` runs, at the
    mean epoch time so far: an early stop ends sooner.

    Parameters
    ----------
    plain : bool, default=False
        Drop the ANSI colour codes of the best values (for logs and pipes).
    """

    # The clock, a class attribute so that tests can replace it.
    clock = staticmethod(time.perf_counter)

    def __init__(self, plain=False, **kwargs):
        super().__init__(**kwargs)
        self.plain = plain

    def on_train_begin(self, net, **kwargs):
        self.start_ = self.clock()
        self.first_epoch_ = len(net.history)  # a skorch warm start continues its history

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        done = epoch - self.first_epoch_
        elapsed = self.clock() - self.start_
        self.row_extra_ = {
            "epoch": f"{epoch}/{self.first_epoch_ + net.max_epochs}",
            "elapsed": format_duration(elapsed),
            "eta": format_duration(elapsed / done * (net.max_epochs - done)),
        }
        super().on_epoch_end(net, **kwargs)

    def _yield_keys_formatted(self, row):
        extra = getattr(self, "row_extra_", {})
        for key, formatted in super()._yield_keys_formatted(row):
            yield key, extra.get(key, formatted)
        for key in ("elapsed", "eta"):
            if key in extra:
                yield key, extra[key]

    def format_row(self, row, key, color):
        formatted = super().format_row(row, key, color="" if self.plain else color)
        return str(formatted).replace(Ansi.ENDC.value, "") if self.plain else formatted


class EpochProgressBar(ProgressBar):
    """skorch's batch progress bar, drawn at 100% when the epoch ends.

    tqdm redraws at most every 0.1 s, so the last batches of an epoch were
    often never drawn before the bar closed.
    """

    def on_epoch_end(self, net, **kwargs):
        self.pbar_.refresh()
        super().on_epoch_end(net, **kwargs)


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
            raise StopTraining


class HeldOutEarlyStopping(Callback):
    """Stop where the held-out loss is lowest, and restore that state.

    Unlike skorch's ``EarlyStopping``, the *starting* model is a candidate
    (one validation pass before the first epoch): a fit that does not beat
    its own start on the held-out rows (e.g. an MLP decoder started at the
    PCA solution, on a small table it can only overfit) ends where it began.
    The held-out rows are split in two halves (alternate rows): the epoch
    whose state has the lowest loss on the first half is the candidate, and
    it replaces the start only if a one-sided paired t-test on the second
    half's rows finds it better at the 5% level (``START_TEST_LEVEL``), on
    at least ``START_TEST_MIN_ROWS`` rows. Choosing and testing on disjoint
    rows keeps the test honest: the lowest of many noisy validation losses
    is lucky by construction, and testing it on the rows that chose it
    would accept a lucky epoch far more often than 5% of the time. The test
    runs once, when training ends.

    Stopping: after each epoch, a validation loss below ``(1 - tol)`` times
    the lowest so far resets the patience; when ``patience`` epochs have
    passed without one, training stops. At the end of training the kept
    state (decoder, latents, prior) is loaded back.

    Attributes
    ----------
    best_loss_ : float
        Validation loss of the kept state.
    best_epoch_ : int
        Epoch of the kept state; 0 is the start.
    stopped_ : bool
        Whether the patience ran out (the fit stopped for that reason).
    misses_ : int
        Epochs since the validation loss last improved by more than ``tol``.
    """

    def __init__(self, tol, patience, sink=None):
        self.tol = tol
        self.patience = patience
        self.sink = sink

    def initialize(self):
        self.best_loss_ = math.inf
        self.best_epoch_ = 0
        self.stopped_ = False
        self.misses_ = 0
        self._lowest = math.inf
        self._start = None  # (loss, row losses, state) of the start
        # The candidate: its loss on the selection half, epoch, validation
        # loss, held-out row losses and state (the scalars and tensors a
        # Checkpoint stores).
        self._candidate_loss = math.inf
        self._candidate_epoch = None
        self._candidate_valid_loss = None
        self._best_rows = None
        self._best_state = None
        self._rows = []
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        valid = X[1] if isinstance(X, tuple) else None
        self.initialize()
        if valid is None:
            return
        loss, rows = start_loss(net, valid)
        self._start = (loss, rows, _snapshot(net))
        self._lowest = self.best_loss_ = loss
        self.best_epoch_ = len(net.history)

    def on_epoch_begin(self, net, **kwargs):
        self._rows = []

    def on_batch_end(self, net, training=False, row_losses=None, **kwargs):
        if not training and row_losses is not None:
            self._rows.append(row_losses)

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("valid_loss")
        if loss is None:
            return
        if loss < self._lowest * (1 - self.tol):
            self.misses_ = 0
        else:
            self.misses_ += 1
        self._lowest = min(self._lowest, loss)
        if self._rows:
            rows = torch.cat(self._rows)
            # Over every rank's held-out rows: the ranks choose alike.
            chosen = distributed.global_mean(_select_half(rows).sum(), len(_select_half(rows)))
            if chosen < self._candidate_loss:
                self._best_state = _snapshot(net, into=self._best_state)
                self._candidate_loss, self._candidate_epoch = chosen, len(net.history)
                self._candidate_valid_loss, self._best_rows = loss, rows
        if self.misses_ >= self.patience:
            self.stopped_ = True
            raise StopTraining

    def _beats_start(self, rows):
        """Whether the test half of the held-out row losses ``rows`` beats the start's (paired t-test)."""
        gain = _test_half(self._start[1] - rows.to(self._start[1].dtype))
        n = len(gain)
        mean = distributed.global_mean(gain.sum(), n)
        square = distributed.global_mean(gain.pow(2).sum(), n)
        n = _global_count(n)
        if n < START_TEST_MIN_ROWS:
            return False
        variance = max(square - mean**2, 0.0) * n / (n - 1)
        return mean > student_t.ppf(1 - START_TEST_LEVEL, n - 1) * math.sqrt(variance / n)

    def on_train_end(self, net, **kwargs):
        if self._start is not None:
            self._keep(net)
        # Not kept in the fitted estimator's callbacks.
        self._start, self._best_state, self._best_rows, self._rows = None, None, None, []

    def _keep(self, net):
        """Load the kept state: the lowest epoch if it beats the start, else the start."""
        if self._best_state is not None and self._beats_start(self._best_rows):
            self.best_loss_, self.best_epoch_ = self._candidate_valid_loss, self._candidate_epoch
            state = self._best_state
        else:
            state = self._start[2]
        if self.best_epoch_ != len(net.history):
            net.module_.load_state_dict(state)
        if self.stopped_ and self.sink is not None:
            self.sink(
                f"Stopping since valid_loss has not improved in the last {self.patience} "
                f"epochs. The kept state is from epoch {self.best_epoch_} "
                f"(valid_loss {self.best_loss_:.6f})."
            )


def _select_half(rows):
    """The held-out rows that choose the candidate epoch (even positions)."""
    return rows[0::2]


def _test_half(rows):
    """The held-out rows that test the candidate against the start (odd positions)."""
    return rows[1::2]


def _global_count(n):
    """``n`` summed over the ranks of ``torch.distributed`` (``n`` without one)."""
    if not distributed.is_active():
        return n
    # A host count: global_mean moves it to the backend's device.
    count = torch.tensor(float(n), dtype=torch.float64, device="cpu")
    return round(distributed.global_mean(count, 1) * torch.distributed.get_world_size())


def _snapshot(net, into=None):
    """A copy of the model's state (decoder, latents, prior) on its device.

    ``into``, an earlier snapshot of the same model, is overwritten in place:
    the copies (the latent table among them) are allocated once per fit, not
    at every improvement.
    """
    state = net.module_.state_dict()
    if into is None or into.keys() != state.keys() or any(
        into[key].shape != value.shape or into[key].dtype != value.dtype for key, value in state.items()
    ):
        return {key: value.detach().clone() for key, value in state.items()}
    with torch.no_grad():
        for key, value in state.items():
            into[key].copy_(value)
    return into


def start_loss(net, valid):
    """Validation loss of the model as it stands, before any epoch, and its per-row losses."""
    total, count, rows = None, 0, []
    for batch in net.get_iterator(valid, training=False):
        step = net.validation_step(batch)
        size = len(batch[0])
        loss = step["loss"].detach()
        total = loss * size if total is None else total + loss * size
        count += size
        rows.append(step["row_losses"])
    return distributed.global_mean(total, count), torch.cat(rows)


def make_callbacks(user_callbacks, *, verbose, early_stopping, n_iter_no_change, tol):
    """The callbacks of a fit: divergence check, progress bar, stopping rule, then the user's."""
    callbacks = [("stop_on_non_finite", StopOnNonFinite())]
    if verbose >= 2:
        # "auto" sizes the bar from the data's len(): our RowData has one.
        callbacks.append(("progress_bar", EpochProgressBar(batches_per_epoch="auto")))
    if early_stopping:
        callbacks.append(
            (
                "early_stopping",
                HeldOutEarlyStopping(tol, n_iter_no_change, sink=print if verbose else None),
            )
        )
    else:
        callbacks.append(("training_convergence", TrainingConvergence(tol, n_iter_no_change)))
    return callbacks + list(user_callbacks or [])
