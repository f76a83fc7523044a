"""The training loop: a private skorch ``NeuralNet`` over (index, sample) batches.

skorch brings the callbacks (progress bar, early stopping, checkpoints, LR
schedulers), the ``history`` and the per-epoch log; this module only supplies
what differs from supervised training:

* batches are ``(index, x, mask)`` tensors sliced on the device, not a
  ``DataLoader`` over per-item ``__getitem__`` calls (an order of magnitude
  cheaper per batch);
* two optimisers: one for the decoder weights and one for the representation
  (a row-sparse one for the latent table, so only the batch's rows move);
* validation infers the held-out samples' latents with the decoder frozen,
  since they have no trained latents.
"""

import math

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from skorch.utils import TeeGenerator

from ._losses import sample_losses


class TensorBatches:
    """Mini-batches of ``(index, x, mask)`` tensors, reshuffled at each pass.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
        Samples, already on the training device.
    mask : torch.Tensor of bool or None
        Observed entries of X, or None when all are observed.
    batch_size : int
        Samples per batch (the last batch may be smaller).
    generator : torch.Generator or None
        Shuffles the order at each pass; None keeps the order.
    """

    def __init__(self, X, mask, batch_size, generator=None):
        self.X = X
        self.mask = mask
        self.batch_size = batch_size
        self.generator = generator
        self.index = torch.arange(len(X), device=X.device)

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        order = self.index
        if self.generator is not None:
            order = torch.randperm(len(self.X), generator=self.generator).to(self.X.device)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            mask = None if self.mask is None else self.mask[rows]
            yield rows, self.X[rows], mask


class StopOnNonFinite(Callback):
    """Stop training with a clear error as soon as a batch loss is not finite."""

    def on_batch_end(self, net, training=False, **kwargs):
        key = "train_loss" if training else "valid_loss"
        value = net.history[-1, "batches", -1, key]
        if not math.isfinite(value):
            raise FloatingPointError(
                f"Training diverged: the {key.replace('_', ' ')} became {value} in epoch "
                f"{len(net.history)}. Lower the learning rates or rescale the data."
            )


class RepresentationNet(NeuralNet):
    """skorch net training a ``RepresentationModel`` on its own samples.

    Parameters
    ----------
    module : RepresentationModel
        The representation and the decoder, trained jointly.
    loss : {"mse", "bce"}
        Reconstruction loss (see :mod:`._losses` for the reduction).
    latent_l2 : float
        Weight of an L2 prior on the latents of the batch.
    weight_optimizer : callable
        ``weight_optimizer(params)`` builds the decoder's optimiser.
    representation_optimizer : callable
        ``representation_optimizer(params)`` builds the representation's.
    valid_encoder : callable or None
        ``valid_encoder(index, x, mask) -> z`` gives held-out latents (by
        inference for an auto-decoder); None uses the representation.
    generator : torch.Generator
        Shuffles the training batches.
    **kwargs
        skorch's own parameters (``max_epochs``, ``batch_size``,
        ``callbacks``, ``verbose``, ``device``).
    """

    def __init__(
        self,
        module,
        *,
        loss,
        latent_l2,
        weight_optimizer,
        representation_optimizer,
        valid_encoder=None,
        generator=None,
        **kwargs,
    ):
        super().__init__(module, criterion=torch.nn.Identity, train_split=None, **kwargs)
        self.loss = loss
        self.latent_l2 = latent_l2
        self.weight_optimizer = weight_optimizer
        self.representation_optimizer = representation_optimizer
        self.valid_encoder = valid_encoder
        self.generator = generator

    def initialize_optimizer(self, triggered_directly=None):
        self.optimizer_ = self.weight_optimizer(self.module_.decoder.parameters())
        self.representation_optimizer_ = self.representation_optimizer(
            self.module_.representation.parameters()
        )
        return self

    def get_split_datasets(self, X, y=None, **fit_params):
        # X is ((X_train, mask_train), (X_valid, mask_valid) or None): the
        # estimator has split and moved the data already.
        return X

    def get_iterator(self, dataset, training=False):
        X, mask = dataset
        generator = self.generator if training else None
        return TensorBatches(X, mask, self.batch_size, generator)

    def _objective(self, z, x_hat, x, mask):
        losses = sample_losses(x_hat, x, self.loss, mask)
        if self.latent_l2:
            losses = losses + self.latent_l2 * z.pow(2).sum(dim=1)
        return losses.sum()

    def train_step(self, batch, **fit_params):
        # skorch passes its closure to every optimiser's step(), which with
        # two optimisers would run the forward and backward pass twice per
        # batch. One pass, then each optimiser steps on the same gradients.
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        for name in self._optimizers:
            getattr(self, name + "_").step()
        return step

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        index, x, mask = batch
        z, x_hat = self.module_(index, x)
        total = self._objective(z, x_hat, x, mask)
        total.backward()
        # The history records the mean per-sample loss: readable whatever
        # the batch size, while the gradient uses the sum.
        return {"loss": total.detach() / len(index), "y_pred": x_hat}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        index, x, mask = batch
        if self.valid_encoder is not None:
            z = self.valid_encoder(index, x, mask)
        else:
            with torch.no_grad():
                z = self.module_.representation(index, x)
        with torch.no_grad():
            x_hat = self.module_.decoder(z)
            total = self._objective(z, x_hat, x, mask)
        return {"loss": total / len(index), "y_pred": x_hat}


def make_callbacks(user_callbacks, *, verbose, early_stopping, n_iter_no_change, tol):
    """The callbacks of a fit: divergence check, progress bar, early stopping, then the user's."""
    callbacks = [("stop_on_non_finite", StopOnNonFinite())]
    if verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
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
    return callbacks + list(user_callbacks or [])
