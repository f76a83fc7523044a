"""The data path: array -> row batch -> compute dtype -> device.

X stays what the user passed (an ndarray or ``np.memmap`` of integers or
floats): nothing here makes a full converted copy of it. Validation scans it
in chunks of rows (:func:`check_rows`), and every consumer reads it one batch
of rows at a time through :class:`RowData`, which slices the rows, converts
them to the compute dtype (scaling 8-bit pixels where the estimator says so),
turns NaN into a mask of observed entries and moves the batch to the device.
Outputs are written batch by batch into preallocated host arrays
(:func:`map_rows`).

Array-likes that are not numpy arrays (lists, DataFrames, ...) are converted
once by scikit-learn's ``validate_data``, as usual; they are small by nature.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._compat import validate_data

# Rows per validation chunk are chosen so that one chunk's float64 temporaries
# stay around this size.
CHECK_CHUNK_BYTES = 32 * 2**20


def is_streamable(X):
    """Whether X is used as it is (an ndarray of numbers) rather than converted."""
    return isinstance(X, np.ndarray) and X.dtype.kind in "iuf" and X.dtype != np.float16


def validate_rows(estimator, X, *, reset, image_shape=None):
    """scikit-learn's validation of X without converting a numeric ndarray.

    Numeric ndarrays and memmaps (uint8, integers, float32, float64) are
    checked for shape and width only, without a copy; their values are
    checked by :func:`check_rows`. Other array-likes are converted by
    ``validate_data`` to float64 or float32 (float16 to float32).

    Parameters
    ----------
    estimator : BaseEstimator
        Receives ``n_features_in_`` and ``feature_names_in_`` when ``reset``.
    X : array-like of shape (n_samples, n_features)
    reset : bool
        True in ``fit``.
    image_shape : tuple or None
        (C, H, W) of an image estimator: a 3-D or 4-D X gets a message that
        says how to flatten it.

    Returns
    -------
    X : ndarray
    """
    ndim = getattr(X, "ndim", None)
    if image_shape is not None and ndim in (3, 4):
        raise ValueError(
            f"X has {ndim} dimensions, shape {X.shape}; image estimators take a 2-D array "
            "of shape (n_samples, C*H*W) with each image flattened channel-first, e.g. "
            "X.reshape(len(X), -1) for (n_samples, C, H, W) images (use "
            "X.transpose(0, 3, 1, 2) first for channel-last images)."
        )
    kwargs = dict(reset=reset, ensure_min_samples=2 if reset else 1, ensure_all_finite=False)
    if is_streamable(X):
        return validate_data(estimator, X, dtype=None, **kwargs)
    dtype = np.float32 if getattr(X, "dtype", None) == np.float16 else [np.float64, np.float32]
    X = validate_data(estimator, X, dtype=dtype, **kwargs)
    if X.dtype == np.float16:  # sparse-free dtype lists keep float16 as float16
        X = X.astype(np.float32)
    return X


def output_dtype(X):
    """The numpy dtype results are returned in: float64 for float64 X, else float32."""
    return np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)


def _chunk_rows(X):
    return max(1, CHECK_CHUNK_BYTES // max(1, 8 * X.shape[1]))


def check_rows(X, *, scale=None, unit_interval=False):
    """Check X's values chunk by chunk; return whether it has missing entries.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    scale : float or None
        Factor applied to the values before use (8-bit pixels: 1/255).
    unit_interval : bool
        Require (scaled) values in [0, 1], as ``loss="bce"`` does.

    Returns
    -------
    has_nan : bool
        Whether any entry is NaN (missing).

    Raises
    ------
    ValueError
        Naming the first offending row: an infinite value, a row with no
        observed entry, or a value outside [0, 1] when ``unit_interval``.
    """
    is_float = X.dtype.kind == "f"
    has_nan = False
    low, high = np.inf, -np.inf
    step = _chunk_rows(X)
    for start in range(0, len(X), step):
        chunk = X[start : start + step]
        if is_float:
            nan = np.isnan(chunk)
            if nan.any():
                has_nan = True
                empty = np.flatnonzero(nan.all(axis=1))
                if len(empty):
                    rows = (start + empty[:5]).tolist()
                    raise ValueError(
                        f"Samples {rows} have no observed (non-NaN) entry; a latent "
                        "vector cannot be inferred for them."
                    )
            if np.isinf(chunk).any():
                row = start + int(np.flatnonzero(np.isinf(chunk).any(axis=1))[0])
                raise ValueError(
                    f"Input X contains infinity (inf) in row {row}; only NaN may mark a "
                    "missing entry."
                )
        if unit_interval and chunk.size:
            low = min(low, float(np.nanmin(chunk)))
            high = max(high, float(np.nanmax(chunk)))
    if unit_interval and len(X):
        factor = 1.0 if scale is None else scale
        low, high = low * factor, high * factor
        if low < 0 or high > 1:
            raise ValueError(
                f"loss='bce' needs X in [0, 1]; got values in [{low:.3g}, {high:.3g}]. "
                "Rescale X or use loss='mse'."
            )
    return has_nan


class RowData:
    """Batches of X's rows in the compute dtype, on the device.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Never written to or copied whole.
    dtype : torch.dtype
        Compute dtype of the batches.
    device : torch.device
        Where batches go (pinned host memory and non-blocking copies on CUDA).
    scale : float or None, default=None
        Multiplies the values (1/255 for 8-bit pixels).
    has_nan : bool, default=False
        Whether X has NaN entries; only then is a mask built, per batch.
    rows : ndarray of int or None, default=None
        Sorted rows of X this data stands for (a training or held-out part);
        None for all of them. Batch indices are positions in this subset.
    """

    def __init__(self, X, dtype, device, *, scale=None, has_nan=False, rows=None):
        self.X = X
        self.dtype = dtype
        self.device = torch.device(device)
        self.scale = scale
        self.has_nan = has_nan
        self.rows = rows

    def __len__(self):
        return len(self.X) if self.rows is None else len(self.rows)

    def take(self, rows):
        """The subset of rows ``rows`` (sorted indices into this data), sharing X."""
        rows = np.asarray(rows, dtype=np.int64)
        absolute = rows if self.rows is None else self.rows[rows]
        return RowData(
            self.X, self.dtype, self.device, scale=self.scale, has_nan=self.has_nan, rows=absolute
        )

    @property
    def n_features(self):
        return self.X.shape[1]

    def host_array(self, rows, dtype=None):
        """Rows ``rows`` (a slice or sorted indices) as a scaled NumPy copy, NaN kept.

        In ``dtype``, by default the NumPy twin of the computation dtype.
        """
        dtype = torch.empty((), dtype=self.dtype).numpy().dtype if dtype is None else np.dtype(dtype)
        if self.rows is not None:
            rows = self.rows[rows]
        x = np.array(self.X[rows], dtype=dtype)  # a batch-sized copy, writable
        if self.scale is not None:
            x *= dtype.type(self.scale)
        return x

    def host_batch(self, rows):
        """Rows ``rows`` (a slice or sorted indices) as CPU tensors ``(x, mask)``."""
        x = self.host_array(rows)
        mask = None
        if self.has_nan:
            observed = ~np.isnan(x)
            if not observed.all():
                x[~observed] = 0.0
                mask = torch.from_numpy(observed)
        return torch.from_numpy(x), mask

    def to_device(self, batch):
        """Move a host batch to the device (asynchronously from pinned memory on CUDA)."""
        x, mask = batch
        if self.device.type == "cuda":
            # Pinning under the estimator's GPU: no stray context on GPU 0 when it runs on another.
            with torch.cuda.device(self.device):
                x = x.pin_memory().to(self.device, non_blocking=True)
                mask = None if mask is None else mask.pin_memory().to(self.device, non_blocking=True)
            return x, mask
        return x.to(self.device), None if mask is None else mask.to(self.device)

    def batch(self, rows):
        """Rows ``rows`` as device tensors ``(x, mask)``; mask is None when all are observed."""
        return self.to_device(self.host_batch(rows))

    def batches(self, rows_list, prefetch=None):
        """Yield ``(rows, x, mask)`` for each entry of ``rows_list``.

        With ``prefetch`` (default: on for memmaps and CUDA), the next batch
        is read and converted in a background thread while the current one
        is used; numpy and the copies release the GIL.
        """
        if prefetch is None:
            prefetch = isinstance(self.X, np.memmap) or self.device.type == "cuda"
        if not prefetch:
            for rows in rows_list:
                yield (rows, *self.batch(rows))
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for rows in rows_list:
                future = pool.submit(self.host_batch, rows)
                if pending is not None:
                    yield (pending[0], *self.to_device(pending[1].result()))
                pending = (rows, future)
            if pending is not None:
                yield (pending[0], *self.to_device(pending[1].result()))


def slices(n_rows, batch_size):
    """Consecutive row slices of ``batch_size`` rows covering ``range(n_rows)``."""
    return [slice(start, min(start + batch_size, n_rows)) for start in range(0, n_rows, batch_size)]


def map_rows(data, function, *, width, out_dtype, batch_size):
    """``function(x, mask)`` on each batch of ``data``, written into one host array.

    Parameters
    ----------
    data : RowData
    function : callable
        Maps a device batch ``(x, mask)`` to a tensor of shape (len(x), width).
    width : int
    out_dtype : numpy dtype
    batch_size : int

    Returns
    -------
    out : ndarray of shape (len(data), width)
    """
    out = np.empty((len(data), width), dtype=out_dtype)
    for rows, x, mask in data.batches(slices(len(data), batch_size)):
        out[rows] = function(x, mask).detach().cpu().numpy()
    return out
