"""Docstring fragments shared by the estimators (one wording per parameter)."""

import textwrap


def indent(text):
    """Indent a fragment to sit in a class docstring."""
    return textwrap.indent(text, "    ")

TRAINING_PARAMS = """\
optimizer : {{"adam", "sgd"}}, default={optimizer}
    Optimiser of the decoder weights ("sgd" uses momentum 0.9).
learning_rate : float, default={learning_rate}
    Learning rate of the decoder weights.
weight_decay : float, default={weight_decay}
    L2 penalty on the decoder weights (coupled, as in ``torch.optim.Adam``).
latent_optimizer : {{"sgd", "adam"}}, default={latent_optimizer}
    Optimiser of the training latents. Both update only the rows of the
    current batch, momentum included ("adam" is ``torch.optim.SparseAdam``).
latent_learning_rate : float, default={latent_learning_rate}
    Learning rate of the training latents. Losses are summed over features
    and samples, so this rate does not depend on the batch size.
latent_momentum : float, default={latent_momentum}
    Momentum of ``latent_optimizer="sgd"``.
latent_l2 : float, default={latent_l2}
    Weight of an L2 (Gaussian) prior on the latents, in training and in
    inference.
max_iter : int, default={max_iter}
    Number of training epochs (passes over the data).
batch_size : int, default={batch_size}
    Samples per training batch."""

COMMON_PARAMS = """\
inference_max_iter : int, default=100
    Most Adam steps per sample in :meth:`transform` and :meth:`score`.
inference_learning_rate : float, default=0.1
    Adam step size in inference, in units of the training latents' root
    mean square (so that it does not depend on the latents' scale).
inference_tol : float, default=1e-4
    Relative loss improvement below which an inference step counts as no
    progress: after 3 such steps in a row a sample returns to its best latent
    with a 0.3 times smaller step, and after 4 cuts it stops.
tol : float, default=1e-4
    With ``early_stopping``, the relative improvement of the validation loss
    that resets the patience.
init : {"zeros", "mean", "nearest", "encoder"}, default="zeros"
    Starting latent of inference, deterministic and computed for each sample
    from that sample alone: zeros; the mean training latent; "nearest", the
    training latent whose decoding has the lowest loss on the sample's
    observed entries; or "encoder", the output of an amortised encoder
    trained at the end of :meth:`fit` to map the training samples (clean
    and randomly masked) to their latents. "encoder" needs the fewest
    inference steps (see ``benchmarks/bench_inference.py``).
encoder_max_iter : int, default=20
    Epochs of the amortised encoder's training (``init="encoder"`` only).
inference_batch_size : int, default=256
    Samples optimised together in inference and decoded together in
    :meth:`inverse_transform`; bounds device memory.
early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the samples, infer their latents with
    the decoder frozen after each epoch, and stop when the validation loss
    has not improved for ``n_iter_no_change`` epochs; the best decoder is
    restored.
validation_fraction : float, default=0.1
    Fraction of the samples held out when ``early_stopping`` is True.
n_iter_no_change : int, default=10
    Patience of early stopping, in epochs.
callbacks : list of skorch callbacks, default=None
    Extra skorch callbacks (e.g. ``LRScheduler``, ``Checkpoint``) run during
    training after the built-in ones.
warm_start : bool, default=False
    Continue from the fitted decoder when ``fit`` is called again; the new
    samples' latents start from their projection on it.
device : str or torch.device, default="auto"
    Torch device for training and inference. "auto" picks CUDA, then MPS,
    then the CPU; the choice is stored in ``device_``.
precision : {"float32", "bfloat16", "float16"}, default="float32"
    Precision of the networks' forward passes in fit and transform
    (``torch.autocast``): parameters, latents and losses stay float32,
    only matrix products and convolutions run in the lower precision.
    "bfloat16" runs on CPUs and recent GPUs; "float16" needs CUDA and
    adds a gradient scaler.
compile : bool, default=False
    Train through ``torch.compile`` of the networks (the fitted modules
    stay plain, picklable ones). Where compiling fails (no C++ compiler,
    an unsupported operation) training warns once and runs eagerly.
verbose : int, default=0
    0 is silent, 1 prints a line per epoch, 2 adds a progress bar.
random_state : int, RandomState instance or None, default=None
    Seeds the decoder's initialisation, the training latents and the
    shuffling, through local generators (torch's global RNG is left as it
    was). Pass an int for reproducible results."""

ATTRIBUTES = """\
decoder_ : torch.nn.Module
    The fitted decoder, on ``device_``, in eval mode. It maps latents of
    shape (n, n_components_) to samples of shape (n, n_features_in_).
embedding_ : ndarray of shape (n_samples, n_components_)
    Latent vectors of the training samples, learnt jointly with the decoder
    (held-out samples, under ``early_stopping``, get inferred ones).
n_components_ : int
    Latent size.
latent_scale_ : float
    Root mean square of the trained latents; inference step sizes
    (``inference_learning_rate``) are in its units.
settings_ : dict
    The training settings in use, with the preset's values for those left
    as None.
loss_ : str
    The loss in use.
decoder_load_ : float
    Training values per free parameter of decoder and latents, N*n / (W +
    N*m) (see :func:`~sklearn_autodecoder.decoder_load`); fit warns with a
    :class:`~sklearn_autodecoder.LowLoadWarning` when it is below 1.
device_ : torch.device
    Device the model lives and runs on.
n_iter_ : int
    Number of epochs run.
loss_curve_ : list of float
    Mean training loss per sample, per epoch.
history_ : skorch.history.History
    skorch's training history (losses, durations, validation loss).
n_features_in_ : int
    Number of features seen during :term:`fit`.
feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X` has
    feature names that are all strings."""


def select(fragment, names):
    """The entries of a numpydoc fragment whose names are in ``names``, in order.

    An entry is a ``name : type`` line and the indented lines under it; this
    lets an estimator with fewer parameters reuse the shared wording.
    """
    entries, current = {}, None
    for line in fragment.splitlines():
        if line and not line[0].isspace():
            current = line.split(" : ")[0]
            entries[current] = []
        entries[current].append(line)
    return "\n".join("\n".join(entries[name]) for name in names)
