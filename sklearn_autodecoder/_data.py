"""The data path: array -> row batch -> compute dtype -> device.

X stays what the user passed (an ndarray or ``np.memmap`` of integers or
floats, or a scipy sparse CSR matrix or array): nothing here makes a full
converted or dense copy of it. Validation scans it
in chunks of rows (:func:`check_rows`), and every consumer reads it one batch
of rows at a time through :class:`RowData`, which slices the rows, converts
them to the compute dtype (scaling 8-bit pixels where the estimator says so),
turns NaN into a mask of observed entries and moves the batch to the device.
Outputs are written batch by batch into preallocated host arrays
(:func:`map_rows`).

Array-likes that are not numpy arrays (lists, DataFrames, ...) are converted
once by scikit-learn's ``validate_data``, as usual; they are small by nature.

Sparse X (``scipy.sparse`` matrices and arrays, e.g. AnnData's ``adata.X``)
stays sparse: CSR is used as it is; other formats (CSC, COO, ...) are
converted to CSR once, a copy of the stored values, since slicing rows of a
column-compressed matrix costs a pass over all its values per batch. Each
batch of rows is sliced from the CSR matrix and densified alone. Implicit
entries are zeros (observed); an explicitly stored NaN marks a missing entry,
as NaN does in a dense array.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch

from ._compat import validate_data

# Rows per validation chunk are chosen so that one chunk's float64 temporaries
# stay around this size.
CHECK_CHUNK_BYTES = 32 * 2**20


def is_float64(dtype):
    """Whether a numpy ``dtype`` is float64, in either byte order (``>f8`` too)."""
    return getattr(dtype, "kind", None) == "f" and getattr(dtype, "itemsize", None) == 8


def _is_float16(dtype):
    return getattr(dtype, "kind", None) == "f" and getattr(dtype, "itemsize", None) == 2


def is_streamable(X):
    """Whether X is used as it is (an ndarray of numbers) rather than converted."""
    return isinstance(X, np.ndarray) and X.dtype.kind in "iuf" and not _is_float16(X.dtype)


def validate_rows(estimator, X, *, reset, image_shape=None):
    """scikit-learn's validation of X without converting a numeric ndarray.

    Numeric ndarrays and memmaps (uint8, integers, float32, float64) are
    checked for shape and width only, without a copy; their values are
    checked by :func:`check_rows`. Sparse X keeps its numeric dtype and is
    converted to CSR when it is in another format (one copy of its stored
    values). Other array-likes are converted by ``validate_data`` to
    float64 or float32 (float16 to float32).

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
    X : ndarray or scipy.sparse CSR matrix or array
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
    dtype = np.float32 if _is_float16(getattr(X, "dtype", None)) else [np.float64, np.float32]
    if sp.issparse(X):
        # Integer and float data stay as they are (converted batch by batch).
        if X.dtype.kind in "iuf" and not _is_float16(X.dtype):
            dtype = None
        kwargs["accept_sparse"] = "csr"
    X = validate_data(estimator, X, dtype=dtype, **kwargs)
    if _is_float16(X.dtype):  # sparse-free dtype lists keep float16 as float16
        X = X.astype(np.float32)
    return X


def output_dtype(X):
    """The numpy dtype results are returned in: float64 for float64 X (either byte order), else float32."""
    return np.dtype(np.float64) if is_float64(X.dtype) else np.dtype(np.float32)


def _chunk_rows(X):
    return max(1, CHECK_CHUNK_BYTES // max(1, 8 * X.shape[1]))


def _sparse_chunks(X):
    """``(start, values, row_of_value, column_of_value, n_rows)`` per chunk of CSR rows.

    Values are the chunk's stored entries with duplicates summed (as
    densifying sums them); ``row_of_value`` counts from ``start``.
    """
    step = max(1, CHECK_CHUNK_BYTES // 16 // max(1, int(X.nnz) // max(1, X.shape[0])))
    for start in range(0, X.shape[0], step):
        chunk = sp.csr_matrix(X[start : start + step])  # a copy of the chunk's entries
        chunk.sum_duplicates()
        rows = np.repeat(np.arange(chunk.shape[0]), np.diff(chunk.indptr))
        yield start, chunk.data, rows, chunk.indices, chunk.shape[0]


def _check_sparse_rows(X, unit_interval):
    """:func:`check_rows` of a CSR matrix: only its stored values are read.

    Returns ``(has_nan, low, high)``, the extremes over all entries
    (implicit zeros included) when ``unit_interval``.
    """
    has_nan = False
    low, high = np.inf, -np.inf
    n_features = X.shape[1]
    for start, values, rows, _, n_rows in _sparse_chunks(X):
        if X.dtype.kind == "f" and len(values):
            nan = np.isnan(values)
            if nan.any():
                has_nan = True
                empty = np.flatnonzero(np.bincount(rows[nan], minlength=n_rows) == n_features)
                if len(empty):
                    raise ValueError(
                        f"Samples {(start + empty[:5]).tolist()} have no observed (non-NaN) "
                        "entry; a latent vector cannot be inferred for them."
                    )
            inf = np.isinf(values)
            if inf.any():
                raise ValueError(
                    f"Input X contains infinity (inf) in row {start + int(rows[inf][0])}; only "
                    "NaN may mark a missing entry."
                )
        if unit_interval and n_rows:
            if len(values) < n_rows * n_features:  # implicit zeros
                low, high = min(low, 0.0), max(high, 0.0)
            if len(values) and not np.isnan(values).all():
                low = min(low, float(np.nanmin(values)))
                high = max(high, float(np.nanmax(values)))
    return has_nan, low, high


def check_rows(X, *, scale=None, unit_interval=False):
    """Check X's values chunk by chunk; return whether it has missing entries.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n_samples, n_features)
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
    if sp.issparse(X):
        has_nan, low, high = _check_sparse_rows(X, unit_interval)
        _check_unit_interval(low, high, scale, unit_interval and X.shape[0] > 0)
        return has_nan
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
    _check_unit_interval(low, high, scale, unit_interval and len(X) > 0)
    return has_nan


def _check_unit_interval(low, high, scale, check):
    if check:
        factor = 1.0 if scale is None else scale
        low, high = low * factor, high * factor
        if low < 0 or high > 1:
            raise ValueError(
                f"loss='bce' needs X in [0, 1]; got values in [{low:.3g}, {high:.3g}]. "
                "Rescale X or use loss='mse'."
            )


def check_counts(X, *, loss):
    """Check that X holds counts, chunk by chunk (Poisson and negative binomial).

    Every observed entry (NaN marks a missing one) must be a non-negative
    integer, and every row must have a positive total (its library size):
    a row of zeros carries no information on its latent, whose count model
    would be flat.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n_samples, n_features)
    loss : str
        The loss's name, for the messages.

    Raises
    ------
    ValueError
        Naming the row and column of the first negative or non-integer
        value, or the first rows whose counts are all zero.
    """

    def fail(kind, row, column, value):
        raise ValueError(
            f"loss={loss!r} needs non-negative integer counts; X[{row}, {column}] = {value!r} "
            f"is {kind}. Pass raw counts (not normalised or log-transformed values), or use "
            "loss='mse' on transformed values."
        )

    def check(start, values, locate, totals):
        # locate(i): (row in the chunk, column) of the i-th value, found only on failure.
        if X.dtype.kind != "u":
            negative = np.flatnonzero(values < 0)
            if len(negative):
                fail("negative", *_located(start, locate, negative[0]), values[negative[0]].item())
        if X.dtype.kind == "f":
            fractional = np.flatnonzero(np.isfinite(values) & (values != np.round(values)))
            if len(fractional):
                i = fractional[0]
                fail("not an integer", *_located(start, locate, i), values[i].item())
        empty = np.flatnonzero(totals == 0)
        if len(empty):
            raise ValueError(
                f"Samples {(start + empty[:5]).tolist()} have no counts (all observed entries "
                f"are 0): their library size is 0, and loss={loss!r} cannot infer a latent "
                "from them. Remove such rows first (e.g. scanpy's "
                "sc.pp.filter_cells(adata, min_counts=1))."
            )

    if sp.issparse(X):
        for start, values, rows, columns, n_rows in _sparse_chunks(X):
            totals = np.bincount(rows, weights=np.nan_to_num(values.astype(np.float64)), minlength=n_rows)
            check(start, values, lambda i: (rows[i], columns[i]), totals)
        return
    step = _chunk_rows(X)
    for start in range(0, X.shape[0], step):
        chunk = np.asarray(X[start : start + step])
        width = chunk.shape[1]
        totals = np.nansum(chunk, axis=1, dtype=np.float64)
        check(start, chunk.reshape(-1), lambda i: divmod(i, width), totals)


def _located(start, locate, i):
    row, column = locate(i)
    return start + int(row), int(column)


class RowData:
    """Batches of X's rows in the compute dtype, on the device.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n_samples, n_features)
        Never written to or copied whole; sparse rows are densified one
        batch at a time.
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
        return self.X.shape[0] if self.rows is None else len(self.rows)

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
        if sp.issparse(self.X):
            # Slicing CSR rows copies only their stored entries; toarray sums duplicates.
            x = self.X[rows].astype(dtype).toarray()
        else:
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
