"""Resumable fits: the :class:`Checkpoint` callback.

A long fit (hours on a GPU) should survive a ``kill -9``, a preempted node
or a power cut, and the fit started again should end exactly where the
uninterrupted one would have (anchors: DeepSDF's ``--continue``,
Lightning's ``ckpt_path``). A checkpoint holds everything the training loop
carries from one epoch to the next:

* the trained modules (decoder, latent table or encoder, latent prior,
  the likelihood's own parameters);
* the state of every optimiser (weights, latents, prior) and of the
  float16 gradient scaler;
* the generator that shuffles the batches (and draws what follows the
  loop), and the seed the fit started from;
* the held-out rows' latents that early stopping tracks from epoch to
  epoch, and the state of the stopping rule (``TrainingConvergence`` or
  ``HeldOutEarlyStopping`` with its best snapshot);
* the history, hence the epoch.

Everything before the loop (the split, the starts, the prior's EM) is a
function of the seed and the data, so it is recomputed, not stored.

The file is the package's code-free format (as :func:`~._persistence.save`
writes): a zip of a JSON document and raw tensors in the safetensors
layout, read back without pickle; it is replaced atomically
(:func:`~._files.write_atomically`), so a kill during a write leaves the
previous checkpoint whole.

Under ``torch.distributed`` (torchrun) every rank holds a full latent table
of which it trains its own rows (row ``i``: rank ``i % world_size``); the
others keep their start values. Rank 0 gathers the trained rows (one
all-reduce, :func:`~._distributed.merge_owned_rows`) and the other ranks'
histories, and writes the one file; on resume every rank reads it and
takes back its own rows, its other rows staying at the start it rebuilt
from the seed: each rank continues bit for bit where it was.
"""

import hashlib
import json
import math
import os
import zipfile
import zlib
from numbers import Integral

import numpy as np
import torch
from skorch.callbacks import Callback

from . import _distributed as distributed
from ._files import write_atomically
from ._persistence import ModelFileError, _read_tensors, _write_tensors

FORMAT = "sklearn-autodecoder-checkpoint"
FORMAT_VERSION = 1
DOCUMENT_MEMBER = "checkpoint.json"
TENSORS_MEMBER = "tensors.safetensors"
# Rows of X hashed into the fingerprint (evenly spaced): a cheap check that X is the same.
FINGERPRINT_ROWS = 64
# Parameters that do not change the fitted model: a fit may resume with others.
# max_iter may grow, so that a finished fit can be trained further.
FREE_PARAMETERS = ("callbacks", "verbose", "n_jobs", "max_iter")
# The package's stopping callbacks (see _training.make_callbacks), whose state is stored.
STOPPING_CALLBACKS = ("early_stopping", "training_convergence")
# Their snapshot of the best state (HeldOutEarlyStopping), a dict of tensors.
BEST_STATE = "_best_state"


class Checkpoint(Callback):
    """Save a resumable state of the fit every few epochs; resume from it.

    Pass it in an estimator's ``callbacks``. At the start of ``fit``, if
    ``path`` exists and was written by a fit of the same estimator class,
    parameters and ``X``, training resumes from it: the fit then ends
    bit-identical (on the CPU) to one never interrupted. Otherwise the fit
    starts afresh and writes ``path`` every ``every`` epochs, at the last
    epoch and when the stopping rule ends the fit.

    The checkpoint holds the decoder, the latent table (or encoder), the
    latent prior, the state of every optimiser and of the gradient scaler,
    the batch-shuffling generator and the seed, the early-stopping state
    (with its best snapshot), and the history. It is written in the
    package's code-free format (JSON and raw tensors, never pickle) and
    replaced atomically: a crash during a write leaves the previous one.

    ``n_iter_`` counts the epochs of the checkpoint with the new ones and
    never exceeds ``max_iter``. A fit that already ended (by its stopping
    rule or at ``max_iter``) returns the same model again; ``max_iter``
    alone may be raised to train a finished fit further. With
    ``random_state=None`` the resumed fit takes the seed of the fit that
    wrote the checkpoint. A refit with ``warm_start=True`` continues
    another model: it needs a path of its own.

    Under ``torchrun`` rank 0 gathers the latents every rank trained and
    writes the file; every rank reads it back (``path`` must be visible to
    all ranks, and the world size must be the same).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file, read at the start of ``fit`` if it exists,
        then replaced at each save.
    every : int, default=10
        Epochs between two saves.

    Notes
    -----
    Only ``fit`` takes a checkpoint (not ``partial_fit``). The state of
    other user callbacks (e.g. skorch's learning-rate schedulers) is not
    stored. One path serves one fit: in a hyperparameter search, whose
    candidates are clones of one estimator, the candidates would find each
    other's checkpoints and refuse them.

    Examples
    --------
    >>> from sklearn_autodecoder import AutoDecoder, Checkpoint
    >>> model = AutoDecoder(callbacks=[Checkpoint("fit.ckpt", every=10)])  # doctest: +SKIP
    >>> model.fit(X)  # killed? run the same line again to resume  # doctest: +SKIP
    """

    def __init__(self, path, every=10):
        self.path = path
        self.every = every

    # ---- the estimator's side: before the net is built ----------------------------

    def _check_params(self):
        if not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(f"Checkpoint's path must be a str or os.PathLike, got {type(self.path).__name__}.")
        if isinstance(self.every, bool) or not isinstance(self.every, Integral) or self.every < 1:
            raise ValueError(f"Checkpoint's every must be an integer >= 1, got {self.every!r}.")

    def _prepare(self, estimator, data, seed):
        """Read a matching checkpoint (or none) and return the seed the fit runs with."""
        self._check_params()
        self._identity = _identity(estimator, data)
        self._resume = _read(self.path, self._identity) if os.path.exists(self.path) else None
        _check_same_on_every_rank(self.path, self._resume)
        if self._resume is not None:
            document = self._resume[0]
            max_iter = estimator._settings()["max_iter"]
            epoch = len(document["history"])
            if epoch > max_iter:
                raise ValueError(
                    f"The checkpoint {os.fspath(self.path)!r} is at epoch {epoch}, past "
                    f"max_iter={max_iter}: set max_iter to at least {epoch} to resume from it, "
                    "or delete the file (or pass Checkpoint another path) to start afresh."
                )
            seed = document["seed"]
        self._seed = seed
        return seed

    # ---- the training loop's side --------------------------------------------------

    def on_train_begin(self, net, **kwargs):
        if getattr(self, "_identity", None) is None:
            raise RuntimeError(
                "Checkpoint works within an estimator's fit (pass it in the estimator's callbacks)."
            )
        self._total = net.max_epochs
        if self._resume is not None:
            document, tensors = self._resume
            self._resume = None  # the loaded tensors are freed as soon as restored
            _restore(net, document, tensors)
            stopped = document["stopped"] or _stopped(net)
            if net.verbose:
                epoch = len(net.history)
                print(f"Resuming from the checkpoint {os.fspath(self.path)!r} at epoch {epoch}/{self._total}"
                      + (" (the fit had ended)." if stopped or epoch == self._total else "."))
            # skorch reads max_epochs after this hook: only the epochs left are run.
            net.max_epochs = 0 if stopped else self._total - len(net.history)
        self._first = len(net.history)

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        if epoch % self.every == 0 or epoch == self._total:
            self._save(net, stopped=False)

    def on_train_end(self, net, **kwargs):
        # The stopping rule ended the fit during an epoch's end, before this
        # callback's on_epoch_end: the final state is saved here (the kept state
        # loaded back). A fit ended otherwise (an interrupt) keeps the last save.
        if _stopped(net) and len(net.history) > self._first:
            self._save(net, stopped=True)
        self._identity = self._resume = None

    def _save(self, net, stopped):
        document, tensors = _capture(net)
        document.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            identity=self._identity,
            seed=self._seed,
            stopped=stopped,
        )
        if distributed.rank() == 0:
            _write(self.path, document, tensors)


def resume(estimator, data, seed, partial):
    """The seed of the fit: a matching checkpoint's, if a :class:`Checkpoint` is among the callbacks.

    Called by the estimator before anything is drawn from the seed; reads
    and checks the checkpoint file, which the callback then restores at the
    start of training.
    """
    checkpoints = [
        cb for cb in (item[1] if isinstance(item, tuple) else item for item in estimator.callbacks or [])
        if isinstance(cb, Checkpoint)
    ]
    if not checkpoints:
        return seed
    if len(checkpoints) > 1:
        raise ValueError(f"callbacks holds {len(checkpoints)} Checkpoint callbacks; pass one.")
    if partial:
        raise ValueError(
            "Checkpoint resumes fit, not partial_fit (one pass over a chunk): drop it from the "
            "callbacks and save the model between chunks instead."
        )
    return checkpoints[0]._prepare(estimator, data, seed)


# ---- what identifies a fit ---------------------------------------------------------


def _describe(value):
    """A JSON value standing for a parameter's value (objects by class and parameters)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (Integral, float, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return f"{value.__module__}.{value.__qualname__}"
    described = f"{type(value).__module__}.{type(value).__qualname__}"
    if hasattr(value, "get_params") and not isinstance(value, np.random.RandomState):
        return {"class": described, "params": _describe(value.get_params(deep=False))}
    return described


def _data_fingerprint(data):
    """Shape, dtype and a hash of evenly spaced rows of the training data."""
    n = len(data)
    rows = np.unique(np.linspace(0, n - 1, num=min(n, FINGERPRINT_ROWS)).round().astype(np.int64))
    sample = np.ascontiguousarray(data.host_array(rows, dtype=np.float64))
    return {
        "shape": [n, data.n_features],
        "dtype": str(data.X.dtype),
        "sampled_rows_hash": hashlib.blake2b(sample.tobytes(), digest_size=16).hexdigest(),
    }


def _identity(estimator, data):
    parameters = {
        name: value for name, value in estimator.get_params(deep=False).items() if name not in FREE_PARAMETERS
    }
    # Through JSON, so that it compares equal to what a file holds (tuples as lists).
    return json.loads(json.dumps({
        "estimator": type(estimator).__qualname__,
        "parameters": _describe(parameters),
        "data": _data_fingerprint(data),
        "world_size": distributed.world_size() if distributed.is_active() else 1,
        "warm_start_from": _warm_start_fingerprint(estimator),
    }))


def _warm_start_fingerprint(estimator):
    """A hash of the fitted decoder a warm start continues from (None for a fresh fit)."""
    if not (estimator.warm_start and hasattr(estimator, "decoder_")):
        return None
    digest = hashlib.blake2b(digest_size=16)
    for key, value in estimator.decoder_.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _differences(saved, current):
    """What differs between two identities, in words."""
    found = []
    if saved.get("estimator") != current["estimator"]:
        found.append(f"the estimator ({saved.get('estimator')} in the checkpoint, {current['estimator']} now)")
    old, new = saved.get("parameters") or {}, current["parameters"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            found.append(f"{name} ({old.get(name)!r} in the checkpoint, {new.get(name)!r} now)")
    old, new = saved.get("data") or {}, current["data"]
    for key, what in (("shape", "X's shape"), ("dtype", "X's dtype")):
        if old.get(key) != new[key]:
            found.append(f"{what} ({old.get(key)} in the checkpoint, {new[key]} now)")
    if not found and old.get("sampled_rows_hash") != new["sampled_rows_hash"]:
        found.append("X's values (same shape and dtype, but sampled rows differ)")
    if saved.get("warm_start_from") != current["warm_start_from"]:
        found.append(
            "the model the fit starts from (warm_start=True continues another fitted decoder, "
            "or a fresh fit meets a warm start's checkpoint)"
        )
    if saved.get("world_size") != current["world_size"]:
        found.append(
            f"the number of processes ({saved.get('world_size')} in the checkpoint, "
            f"{current['world_size']} now)"
        )
    return found


# ---- the training state --------------------------------------------------------------


def _stopping(net):
    callbacks = dict(net.callbacks_)
    return {name: callbacks[name] for name in STOPPING_CALLBACKS if name in callbacks}


def _stopped(net):
    """Whether the stopping rule ended the fit (not an interrupt, not max_iter)."""
    return any(
        getattr(cb, "converged_", False) or getattr(cb, "stopped_", False)
        for cb in _stopping(net).values()
    )


def _optimizers(net):
    return {name: getattr(net, name + "_") for name in net._optimizers}


def _is_scalar(value):
    return value is None or isinstance(value, (bool, Integral, float))


def _local_rows(net):
    """Rows of the rank-local tensors (the latent table's), or None when nothing is rank-local."""
    representation = net.module_.representation
    if not distributed.is_active() or not getattr(representation, "rank_local", False):
        return None
    return len(representation.weight)


def _local_keys(net):
    """Module state keys of the rank-local latent table."""
    representation = net.module_.representation
    if not getattr(representation, "rank_local", False):
        return set()
    return {"representation." + key for key in representation.state_dict()}


def _capture(net):
    """The net's training state: a JSON document and a dict of CPU tensors."""
    n_local = _local_rows(net)
    local_keys = _local_keys(net) if n_local is not None else set()

    def host(tensor, local=False):
        if local:  # every rank's own rows, merged (a collective: all ranks run it)
            rows = tensor.reshape(len(tensor), -1)  # (a row-wise step count is 1-D)
            return distributed.merge_owned_rows(rows).reshape(tensor.shape).contiguous()
        return tensor.detach().cpu().contiguous()

    tensors = {}
    for key, value in net.module_.state_dict().items():
        tensors["module/" + key] = host(value, key in local_keys)
    optimizers = {}
    for name, optimizer in _optimizers(net).items():
        state = optimizer.state_dict()
        entries = {}
        for index, values in state["state"].items():
            entries[str(index)] = {}
            for key, value in values.items():
                if torch.is_tensor(value):
                    local = (
                        n_local is not None and name == "representation_optimizer"
                        and value.dim() >= 1 and len(value) == n_local
                    )
                    tensors[f"optimizer/{name}/{index}/{key}"] = host(value, local)
                else:
                    entries[str(index)][key] = value
        optimizers[name] = {"param_groups": state["param_groups"], "state": entries}
    if net.generator is not None:
        tensors["generator"] = net.generator.get_state()
    held_out = getattr(net.held_out, "latents", None)
    if held_out is not None:
        tensors["held_out"] = host(held_out, n_local is not None)
    callbacks = {}
    for name, callback in _stopping(net).items():
        callbacks[name] = {k: v for k, v in vars(callback).items() if _is_scalar(v)}
        best = getattr(callback, BEST_STATE, None)
        callbacks[name]["has_best_state"] = best is not None
        for key, value in (best or {}).items():
            tensors[f"callback/{name}/{key}"] = host(value, key in local_keys)
        # Tensor attributes (early stopping's held-out row losses) are the
        # rank's own rows: every rank's are stored.
        for key, value in vars(callback).items():
            if torch.is_tensor(value):
                for rank, rows in enumerate(_every_rank(value.detach().cpu())):
                    tensors[f"callback/{name}/@{key}/{rank}"] = rows
    history = net.history.to_list()
    if distributed.is_active():
        # Batch entries (a rank's share of each batch) differ by rank: each keeps its own.
        histories = [None] * distributed.world_size()
        torch.distributed.all_gather_object(histories, history)
    else:
        histories = [history]
    scaler = None if net.scaler_ is None else net.scaler_.state_dict()
    document = {
        "history": history,
        "rank_histories": histories,
        "optimizers": optimizers,
        "scaler": scaler,
        "callbacks": callbacks,
    }
    return document, tensors


def _every_rank(tensor):
    """``tensor`` of every rank, in rank order (``[tensor]`` without torch.distributed)."""
    if not distributed.is_active():
        return [tensor]
    gathered = [None] * distributed.world_size()
    torch.distributed.all_gather_object(gathered, tensor)
    return gathered


def _take_own_rows(saved, current, n_local):
    """``saved`` in this rank's rows, ``current`` (or zeros) in the others'."""
    if n_local is None:
        return saved
    current = torch.zeros_like(saved) if current is None else current.detach().to(saved.device)
    mine = torch.arange(len(saved), device=saved.device) % distributed.world_size() == distributed.rank()
    return torch.where(mine.reshape(-1, *[1] * (saved.dim() - 1)), saved, current)


def _restore(net, document, tensors):
    """Load a checkpoint's training state into a freshly initialised net."""
    n_local = _local_rows(net)
    local_keys = _local_keys(net) if n_local is not None else set()
    state = net.module_.state_dict()
    loaded = {}
    for key, value in state.items():
        saved = tensors[f"module/{key}"]
        loaded[key] = _take_own_rows(saved, value.cpu(), n_local) if key in local_keys else saved
    net.module_.load_state_dict(loaded)
    for name, optimizer in _optimizers(net).items():
        saved = document["optimizers"][name]
        current_groups = optimizer.state_dict()["param_groups"]
        groups = []
        for group, current in zip(saved["param_groups"], current_groups, strict=True):
            # JSON turned tuples (Adam's betas) into lists.
            groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in group.items()})
        entries = {}
        for index, values in saved["state"].items():
            entries[int(index)] = dict(values)
        prefix = f"optimizer/{name}/"
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, entry = key[len(prefix):].split("/", 1)
                local = (
                    n_local is not None and name == "representation_optimizer"
                    and value.dim() >= 1 and len(value) == n_local
                )
                entries.setdefault(int(index), {})[entry] = _take_own_rows(value, None, n_local) if local else value
        optimizer.load_state_dict({"state": entries, "param_groups": groups})
    if net.scaler_ is not None and document["scaler"] is not None:
        net.scaler_.load_state_dict(document["scaler"])
    if net.generator is not None:
        net.generator.set_state(tensors["generator"])
    held_out = getattr(net.held_out, "latents", None)
    if held_out is not None:
        with torch.no_grad():
            held_out.copy_(_take_own_rows(tensors["held_out"], held_out.cpu(), n_local))
    for name, callback in _stopping(net).items():
        saved = dict(document["callbacks"][name])
        has_best = saved.pop("has_best_state")
        for key, value in saved.items():
            setattr(callback, key, value)
        prefix, rank = f"callback/{name}/@", distributed.rank() if distributed.is_active() else 0
        for key, value in tensors.items():
            if key.startswith(prefix) and key.endswith(f"/{rank}"):
                setattr(callback, key[len(prefix):].rsplit("/", 1)[0], value)
        if not has_best:
            setattr(callback, BEST_STATE, None)
            continue
        best = getattr(callback, BEST_STATE)
        if best is None:  # allocated at the first candidate: shaped like the module's state
            best = {key: value.detach().clone() for key, value in net.module_.state_dict().items()}
            setattr(callback, BEST_STATE, best)
        with torch.no_grad():
            for key, value in best.items():
                saved_value = tensors[f"callback/{name}/{key}"]
                if key in local_keys:
                    saved_value = _take_own_rows(saved_value, value.cpu(), n_local)
                value.copy_(saved_value)
    history = document["rank_histories"][distributed.rank()] if distributed.is_active() else document["history"]
    net.history_.clear()
    net.history_.extend(history)


# ---- the file ----------------------------------------------------------------------------


def _write(path, document, tensors):
    # Losses may be infinite in a callback's state (the best before any epoch): JSON's Infinity.
    text = json.dumps(document, separators=(",", ":"), allow_nan=True)

    def write(file):
        with zipfile.ZipFile(file, "w") as archive:
            archive.writestr(DOCUMENT_MEMBER, text, compress_type=zipfile.ZIP_DEFLATED)
            with archive.open(TENSORS_MEMBER, "w", force_zip64=True) as member:
                _write_tensors(member, tensors)

    write_atomically(path, write)


def _read(path, identity):
    """The checkpoint at ``path`` as (document, tensors), checked against this fit's identity."""
    name = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if sorted(archive.namelist()) != sorted([DOCUMENT_MEMBER, TENSORS_MEMBER]):
                raise ModelFileError(f"{name!r} is not a checkpoint file (members {archive.namelist()}).")
            try:
                document = json.loads(archive.read(DOCUMENT_MEMBER))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise ModelFileError(f"The checkpoint {name!r} is damaged: {exc}") from None
            if type(document) is not dict or document.get("format") != FORMAT:
                raise ModelFileError(f"{name!r} is not a sklearn_autodecoder checkpoint file.")
            if document.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(
                    f"The checkpoint {name!r} has format version {document.get('format_version')!r}; "
                    f"this sklearn_autodecoder reads version {FORMAT_VERSION}."
                )
            differences = _differences(document.get("identity") or {}, identity)
            if differences:
                raise ValueError(
                    f"The checkpoint {name!r} was written by another fit: {'; '.join(differences)}. "
                    "Fit with the same estimator, parameters and X to resume from it, or delete "
                    "the file (or pass Checkpoint another path) to start afresh."
                )
            tensors = _read_tensors(bytearray(archive.read(TENSORS_MEMBER)))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, KeyError) as exc:
        raise ModelFileError(f"The checkpoint {name!r} is not a checkpoint file, or a damaged one: {exc}") from None
    return document, tensors


def _check_same_on_every_rank(path, resume):
    """Under torchrun, every rank must find the same checkpoint (or none): else all raise alike."""
    if not distributed.is_active():
        return
    epoch = -1.0 if resume is None else float(len(resume[0]["history"]))
    (total,) = distributed.sum_tensors(torch.tensor(epoch, dtype=torch.float64, device="cpu"))
    if not math.isclose(float(total), epoch * distributed.world_size()):
        raise RuntimeError(
            f"The ranks do not all find the same checkpoint at {os.fspath(path)!r} (this rank: "
            f"{'none' if resume is None else f'epoch {int(epoch)}'}): put it where every rank reads it."
        )
