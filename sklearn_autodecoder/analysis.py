"""Representation analysis: RDMs, RSA, representational consistency, CKA.

Tools to compare the representations that networks learn, after Durbha,
Goerttler et al. (2022) [4]_, who compare the layers of differently initialised
encoder-decoder networks:

- :func:`rdm` summarises a layer's representation of n stimuli as the n x n
  matrix of their pairwise dissimilarities (Kriegeskorte et al., 2008) [1]_;
- :func:`rsa` correlates two RDMs, i.e. two representations of the same
  stimuli, whatever their widths;
- :func:`representational_consistency` is the mean RSA correlation of one
  layer across model instances (Mehrer et al., 2020) [2]_;
- :func:`linear_cka` is a second similarity measure (Kornblith et al., 2019) [3]_;
- :func:`layer_activations` reads every layer of a fitted estimator;
- :func:`plot_rdm` and :func:`plot_mds` draw an RDM and the MDS map of many
  RDMs (matplotlib is an optional dependency, imported only there).

References
----------
.. [1] N. Kriegeskorte, M. Mur and P. Bandettini, "Representational
   similarity analysis - connecting the branches of systems neuroscience",
   Frontiers in Systems Neuroscience 2, 2008.
.. [2] J. Mehrer, C. J. Spoerer, N. Kriegeskorte and T. C. Kietzmann,
   "Individual differences among deep neural network models", Nature
   Communications 11, 2020.
.. [3] S. Kornblith, M. Norouzi, H. Lee and G. Hinton, "Similarity of neural
   network representations revisited", ICML 2019.
.. [4] S. Durbha, T. Goerttler et al., "Intrinsic analysis of learned
   representations in encoder-decoder architectures", 2022.
"""

from collections import OrderedDict

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import pairwise_distances
from sklearn.utils import check_array

from ._compat import HasMethods, IntegerInterval, StrOptions, check_is_fitted, validate_params

__all__ = [
    "layer_activations",
    "linear_cka",
    "plot_mds",
    "plot_rdm",
    "rdm",
    "representational_consistency",
    "rsa",
]

# Leaf modules that only reshape or pass values through (in eval mode): their
# output repeats the previous entry's values, so they get no entry.
_PASS_THROUGH = (
    torch.nn.Identity,
    torch.nn.Flatten,
    torch.nn.Unflatten,
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
)
# Modules with weights that mix units: each starts a new layer block.
_WEIGHT_LAYERS = (
    torch.nn.Linear,
    torch.nn.Conv1d,
    torch.nn.Conv2d,
    torch.nn.Conv3d,
    torch.nn.ConvTranspose1d,
    torch.nn.ConvTranspose2d,
    torch.nn.ConvTranspose3d,
)


# ---- RDMs and their comparison ---------------------------------------------------


def _correlation_distances(X):
    """1 - Pearson correlation between the rows of X (float64)."""
    centred = X - X.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    constant = np.flatnonzero(norms == 0)
    if constant.size:
        raise ValueError(
            f"Rows {constant[:5].tolist()} of X are constant ({constant.size} in all): their "
            "correlation with other rows is undefined. Drop them, or use another metric "
            "(e.g. metric='euclidean')."
        )
    unit = centred / norms[:, None]
    return 1.0 - unit @ unit.T


@validate_params(
    {"X": ["array-like"], "metric": [str, callable]},
    prefer_skip_nested_validation=True,
)
def rdm(X, metric="correlation"):
    """Representational dissimilarity matrix of n stimuli.

    Entry (i, j) is the dissimilarity of the representations of stimuli i
    and j (rows of X). The default, one minus the Pearson correlation of the
    two rows across units, is the usual choice in representational
    similarity analysis [1]_.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units)
        One row per stimulus: a layer's activations (flattened).
    metric : str or callable, default="correlation"
        "correlation" gives 1 - Pearson correlation, in [0, 2]; a row that
        is constant across units has no correlation with any other row and
        raises a ValueError. Any other metric is passed to
        :func:`sklearn.metrics.pairwise_distances` (scikit-learn's and
        scipy's metrics, e.g. "euclidean", "cosine", or a callable).

    Returns
    -------
    rdm : ndarray of shape (n_stimuli, n_stimuli)
        Symmetric, with a zero diagonal (float64).

    See Also
    --------
    rsa : Correlate two RDMs.

    References
    ----------
    .. [1] N. Kriegeskorte, M. Mur and P. Bandettini, "Representational
       similarity analysis - connecting the branches of systems
       neuroscience", Frontiers in Systems Neuroscience 2, 2008.

    Examples
    --------
    >>> from sklearn_autodecoder.analysis import rdm
    >>> rdm([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0]]).round(6)
    array([[0., 0., 2.],
           [0., 0., 2.],
           [2., 2., 0.]])
    """
    X = check_array(X, dtype=np.float64, input_name="X", ensure_min_samples=2)
    if isinstance(metric, str) and metric == "correlation":
        D = _correlation_distances(X)
    else:
        D = pairwise_distances(X, metric=metric)
    # Rounding leaves the diagonal and the symmetry a few ulps off: make them exact.
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0.0)
    return np.maximum(D, 0.0)


def _check_rdm(D, name):
    D = check_array(D, dtype=np.float64, input_name=name)
    if D.shape[0] != D.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {D.shape}.")
    if D.shape[0] < 3:
        raise ValueError(
            f"{name} compares {D.shape[0]} stimuli; a correlation of RDMs needs at least 3."
        )
    if not np.allclose(D, D.T, rtol=1e-7, atol=1e-10):
        raise ValueError(f"{name} must be symmetric (an RDM); it is not.")
    return D


def _upper(D):
    return D[np.triu_indices(len(D), k=1)]


def _pearson_rows(V):
    """Pearson correlation matrix of the rows of V, rejecting constant rows."""
    centred = V - V.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    if (norms == 0).any():
        raise ValueError(
            "An RDM has all its off-diagonal entries equal: its correlation with "
            "another RDM is undefined (the representation does not separate the stimuli)."
        )
    unit = centred / norms[:, None]
    return np.clip(unit @ unit.T, -1.0, 1.0)


@validate_params(
    {
        "rdm_a": ["array-like"],
        "rdm_b": ["array-like"],
        "method": [StrOptions({"spearman", "pearson"})],
    },
    prefer_skip_nested_validation=True,
)
def rsa(rdm_a, rdm_b, *, method="spearman"):
    """Representational similarity: the correlation of two RDMs.

    Only the upper triangles (without the diagonal) are compared, as the
    matrices are symmetric with a zero diagonal.

    Parameters
    ----------
    rdm_a, rdm_b : array-like of shape (n_stimuli, n_stimuli)
        Symmetric dissimilarity matrices of the same stimuli, e.g. from
        :func:`rdm`; at least 3 stimuli.
    method : {"spearman", "pearson"}, default="spearman"
        Rank correlation (only the order of the dissimilarities matters, the
        common choice when the two representations' scales are unrelated)
        or linear correlation.

    Returns
    -------
    similarity : float
        Correlation in [-1, 1].

    See Also
    --------
    rdm : Compute an RDM.
    representational_consistency : Mean Pearson RSA of many instances.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder.analysis import rdm, rsa
    >>> X = np.random.RandomState(0).rand(10, 5)
    >>> round(rsa(rdm(X), rdm(3 * X + 1)), 6)
    1.0
    """
    a = _check_rdm(rdm_a, "rdm_a")
    b = _check_rdm(rdm_b, "rdm_b")
    if a.shape != b.shape:
        raise ValueError(
            f"rdm_a and rdm_b must compare the same stimuli, got shapes {a.shape} and {b.shape}."
        )
    u, v = _upper(a), _upper(b)
    if method == "spearman":
        _pearson_rows(np.stack([u, v]))  # same check of constant RDMs as for Pearson
        return float(spearmanr(u, v)[0])  # [0]: also on scipy < 1.9
    return float(_pearson_rows(np.stack([u, v]))[0, 1])


@validate_params(
    {
        "representations": [list, tuple],
        "metric": [str, callable],
        "return_matrix": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def representational_consistency(representations, *, metric="correlation", return_matrix=False):
    """Mean pairwise RSA correlation of one layer across model instances.

    Each instance's representation of the same stimuli gives an RDM
    (:func:`rdm`); the consistency is the mean Pearson correlation of the
    RDMs' upper triangles over all pairs of instances [1]_ (eq. 3 of [2]_).
    It is 1 when every instance represents the stimuli alike (up to what
    the RDM ignores: for ``metric="correlation"``, a positive rescaling or
    shift of each stimulus' activations), and near 0 when the instances
    have nothing in common.

    Parameters
    ----------
    representations : list of array-like of shape (n_stimuli, n_units_k)
        One array per model instance, the rows the same stimuli in the same
        order; the widths may differ. At least two.
    metric : str or callable, default="correlation"
        Dissimilarity of the RDMs; see :func:`rdm`.
    return_matrix : bool, default=False
        Whether to return the matrix of pairwise correlations too.

    Returns
    -------
    consistency : float
        Mean of the off-diagonal entries of ``matrix``.
    matrix : ndarray of shape (n_instances, n_instances)
        Pearson correlation between the RDMs of each pair of instances
        (1 on the diagonal). Only with ``return_matrix=True``.

    See Also
    --------
    rsa : The correlation of two RDMs, Pearson or Spearman.
    linear_cka : Another similarity of two representations.

    References
    ----------
    .. [1] J. Mehrer, C. J. Spoerer, N. Kriegeskorte and T. C. Kietzmann,
       "Individual differences among deep neural network models", Nature
       Communications 11, 2020.
    .. [2] S. Durbha, T. Goerttler et al., "Intrinsic analysis of learned
       representations in encoder-decoder architectures", 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder.analysis import representational_consistency
    >>> X = np.random.RandomState(0).rand(20, 8)
    >>> # The same units rescaled, or in another order: the same RDM.
    >>> round(representational_consistency([X, 2 * X, X[:, ::-1]]), 6)
    1.0
    """
    if len(representations) < 2:
        raise ValueError(
            f"representations must hold at least 2 instances, got {len(representations)}."
        )
    rdms = [rdm(X, metric) for X in representations]
    shapes = {D.shape[0] for D in rdms}
    if len(shapes) > 1:
        raise ValueError(
            "Every representation must hold the same stimuli (rows); got row counts "
            f"{[D.shape[0] for D in rdms]}."
        )
    if rdms[0].shape[0] < 3:
        raise ValueError("Representational consistency needs at least 3 stimuli.")
    matrix = _pearson_rows(np.stack([_upper(D) for D in rdms]))
    k = len(rdms)
    consistency = float((matrix.sum() - k) / (k * (k - 1)))
    return (consistency, matrix) if return_matrix else consistency


@validate_params(
    {"X": ["array-like"], "Y": ["array-like"]},
    prefer_skip_nested_validation=True,
)
def linear_cka(X, Y):
    """Linear centred kernel alignment of two representations.

    CKA compares the Gram matrices of the two representations of the same
    samples [1]_: with the columns of X and Y centred,

        CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).

    It is 1 for representations that differ by an orthogonal transform and
    an isotropic scaling, invariant to a shift of either, and near 0 for
    unrelated ones when there are many more samples than units. It is
    computed in feature space (cost linear in the number of samples) or,
    when that is cheaper, through the samples' Gram matrices.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_units_x)
        First representation.
    Y : array-like of shape (n_samples, n_units_y)
        Second representation of the same samples; its width may differ.

    Returns
    -------
    cka : float
        Similarity in [0, 1].

    See Also
    --------
    representational_consistency : An RDM-based similarity.

    References
    ----------
    .. [1] S. Kornblith, M. Norouzi, H. Lee and G. Hinton, "Similarity of
       neural network representations revisited", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_autodecoder.analysis import linear_cka
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(100, 5)
    >>> Q, _ = np.linalg.qr(rng.randn(5, 5))
    >>> round(linear_cka(X, 3 * X @ Q + 2), 6)
    1.0
    """
    X = check_array(X, dtype=np.float64, input_name="X", ensure_min_samples=2)
    Y = check_array(Y, dtype=np.float64, input_name="Y", ensure_min_samples=2)
    if len(X) != len(Y):
        raise ValueError(
            f"X and Y must hold the same samples, got {len(X)} and {len(Y)} rows."
        )
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    n, p, q = len(X), X.shape[1], Y.shape[1]
    if n * n < p * q + p * p + q * q:
        # Fewer samples than units: ||Y^T X||_F^2 = <XX^T, YY^T>, and so on.
        K, L = X @ X.T, Y @ Y.T
        cross, norm_x, norm_y = (K * L).sum(), np.linalg.norm(K), np.linalg.norm(L)
    else:
        cross = np.linalg.norm(Y.T @ X) ** 2
        norm_x, norm_y = np.linalg.norm(X.T @ X), np.linalg.norm(Y.T @ Y)
    if norm_x == 0 or norm_y == 0:
        name = "X" if norm_x == 0 else "Y"
        raise ValueError(f"{name} is constant across samples: its CKA with anything is undefined.")
    return float(np.clip(cross / (norm_x * norm_y), 0.0, 1.0))


# ---- activations of a fitted estimator ------------------------------------------


def _entry_name(prefix, path, module):
    return ".".join(part for part in (prefix, path, type(module).__name__) if part)


def _record(module, inputs, prefix, batch_size, device, dtype):
    """The module's output on ``inputs`` and the entries of its value-computing leaves.

    Returns ``(output, entries)``, ``entries`` a list of ``(name, is_weight_layer,
    array)`` in the order the leaves ran. Runs in eval mode under no_grad,
    chunk by chunk on ``device``; every module's mode is restored and every
    hook removed, also on error.
    """
    leaves = [
        (path, leaf)
        for path, leaf in module.named_modules()
        if not any(leaf.children()) and not isinstance(leaf, _PASS_THROUGH)
    ]
    chunk = {}  # name -> output of the chunk being run, in firing order

    def hook_for(name):
        def hook(leaf, args, output):
            if name in chunk:
                raise ValueError(
                    f"Module {name} runs more than once per forward pass; "
                    "layer_activations cannot tell its calls apart."
                )
            chunk[name] = output.detach().reshape(len(output), -1).cpu().numpy()

        return hook

    kinds = {
        _entry_name(prefix, path, leaf): isinstance(leaf, _WEIGHT_LAYERS) for path, leaf in leaves
    }
    modes = {m: m.training for m in module.modules()}
    handles = []
    outputs, parts = [], OrderedDict()
    try:
        for path, leaf in leaves:
            handles.append(leaf.register_forward_hook(hook_for(_entry_name(prefix, path, leaf))))
        module.eval()
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                chunk.clear()
                batch = inputs[start : start + batch_size].to(device=device, dtype=dtype)
                outputs.append(module(batch).reshape(len(batch), -1).cpu().numpy())
                for name, value in chunk.items():
                    parts.setdefault(name, []).append(value)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.train(training)
    entries = [(name, kinds[name], np.concatenate(values)) for name, values in parts.items()]
    return np.concatenate(outputs), entries


def _blocks(entries):
    """One entry per layer block: the last one before the next weight layer."""
    return [
        entry
        for i, entry in enumerate(entries)
        if i == len(entries) - 1 or entries[i + 1][1]
    ]


@validate_params(
    {
        "estimator": [HasMethods(["transform", "inverse_transform"])],
        "X": ["array-like"],
        "layers": [StrOptions({"blocks", "all"})],
        "batch_size": [IntegerInterval(1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def layer_activations(estimator, X, *, layers="blocks", batch_size=256):
    """Activations of every layer of a fitted estimator's network.

    For an auto-decoder (:class:`~sklearn_autodecoder.AutoDecoder`,
    :class:`~sklearn_autodecoder.ConvAutoDecoder`) the first entry is
    ``"latent"``, the latents that ``estimator.transform(X)`` infers, then
    come the decoder's layers run on them (an encoder trained for
    ``init="encoder"`` is only an inference aid and is not reported). For
    an autoencoder (:class:`~sklearn_autodecoder.AutoEncoder`,
    :class:`~sklearn_autodecoder.ConvAutoEncoder`) the entries are
    ``"input"``, the encoder's layers, ``"latent"`` (the encoder's last
    layer, ``transform(X)``), then the decoder's layers.

    A layer is named by its path in the network and its class, e.g.
    ``"decoder.1.ReLU"`` (the output of module ``decoder_[1]``), or
    ``"decoder.0.3.ConvTranspose2d"`` for a nested module. The decoder's
    last entry is the reconstruction, ``inverse_transform(transform(X))``.
    Modules that only reshape or pass their input through (``Flatten``,
    ``Unflatten``, ``Identity``, ``Dropout`` in eval mode) get no entry:
    they would repeat the previous one.

    The network runs in eval mode under ``torch.no_grad``, in chunks of
    ``batch_size`` samples on ``estimator.device_``, in the dtype
    ``transform`` uses for X's dtype; the modules' modes are restored and
    the forward hooks removed afterwards.

    Parameters
    ----------
    estimator : fitted AutoDecoder, ConvAutoDecoder, AutoEncoder or ConvAutoEncoder
        The model to read.
    X : array-like of shape (n_samples, n_features)
        The stimuli. Auto-decoders infer latents from their observed
        entries (NaN marks a missing one); autoencoders see NaN as 0, as in
        ``transform``, and so does the ``"input"`` entry.
    layers : {"blocks", "all"}, default="blocks"
        "blocks" gives one entry per layer block: a weight layer (linear,
        convolution or transposed convolution) with what follows it up to
        the next weight layer (batch norm, activation), reported at the
        block's output, e.g. after its activation. These are the layers one
        compares across networks. "all" gives the output of every leaf
        module that computes something, the pre-activations and batch
        norms included.
    batch_size : int, default=256
        Samples run through the network together.

    Returns
    -------
    activations : OrderedDict of str to ndarray of shape (n_samples, n_units)
        Each layer's output for each sample, in the order the network
        computes them, flattened (a feature map of shape (C, H, W) becomes
        C*H*W units in channel-first order), in X's dtype.

    See Also
    --------
    representational_consistency : Compare a layer across model instances.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_autodecoder import AutoDecoder
    >>> from sklearn_autodecoder.analysis import layer_activations
    >>> X = load_digits().data[:100] / 16
    >>> ad = AutoDecoder(n_components=3, hidden_layer_sizes=(16,), max_iter=3,
    ...                  random_state=0).fit(X)
    >>> {name: a.shape for name, a in layer_activations(ad, X[:5]).items()}
    {'latent': (5, 3), 'decoder.1.ReLU': (5, 16), 'decoder.2.Linear': (5, 64)}
    """
    check_is_fitted(estimator)
    if not hasattr(estimator, "decoder_"):
        raise TypeError(
            "layer_activations needs a fitted AutoDecoder, ConvAutoDecoder, AutoEncoder "
            f"or ConvAutoEncoder; {type(estimator).__name__} has no decoder_."
        )
    # An auto-decoder fitted with init="encoder" has an encoder_ too: the
    # latent table (embedding_) is what tells the two kinds apart.
    is_autodecoder = hasattr(estimator, "embedding_")
    if not is_autodecoder and not hasattr(estimator, "encoder_"):
        raise TypeError(
            f"{type(estimator).__name__} has neither a latent table (embedding_) nor an "
            "encoder (encoder_); layer_activations reads auto-decoders and autoencoders."
        )
    # Validated and converted as transform does (8-bit pixels scaled, NaN as 0).
    data = estimator._rows(X, reset=False)
    X_t, _ = data.host_batch(slice(None))
    X = X_t.numpy()
    device = estimator.device_
    select = _blocks if layers == "blocks" else (lambda entries: entries)
    activations = OrderedDict()
    if is_autodecoder:
        Z = estimator.transform(X)
    else:
        X_in = X
        encoder = estimator._module_for(estimator.encoder_, data.dtype)
        dtype = next(encoder.parameters()).dtype
        Z, entries = _record(encoder, torch.as_tensor(X_in), "encoder", batch_size, device, dtype)
        activations["input"] = X_in
        # The encoder's last layer computes the latents: report it once, as "latent".
        for name, _, values in select(entries)[:-1]:
            activations[name] = values
    activations["latent"] = Z
    decoder = estimator._decoder_for(data.dtype)
    dtype = next(decoder.parameters()).dtype
    _, entries = _record(decoder, torch.as_tensor(Z), "decoder", batch_size, device, dtype)
    for name, _, values in select(entries):
        activations[name] = values
    for name, values in activations.items():
        activations[name] = values.astype(X.dtype, copy=False)
    return activations


# ---- plots --------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The plotting helpers of sklearn_autodecoder.analysis need matplotlib: "
            "pip install matplotlib (or the package's 'examples' extra)."
        ) from error
    return plt


@validate_params(
    {
        "rdm": ["array-like"],
        "ax": "no_validation",
        "cmap": "no_validation",
        "colorbar": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def plot_rdm(rdm, *, ax=None, cmap="viridis", colorbar=True):
    """Draw an RDM as a heat map.

    Parameters
    ----------
    rdm : array-like of shape (n_stimuli, n_stimuli)
        Dissimilarity matrix, e.g. from :func:`rdm`. Sorting the stimuli by
        class first shows class structure as blocks.
    ax : matplotlib Axes, default=None
        Where to draw; None opens a new figure.
    cmap : str or Colormap, default="viridis"
        Colour map.
    colorbar : bool, default=True
        Whether to add a colour bar.

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot()
    D = check_array(rdm, dtype=np.float64, input_name="rdm")
    if D.shape[0] != D.shape[1]:
        raise ValueError(f"rdm must be a square matrix, got shape {D.shape}.")
    if ax is None:  # a figure of its own, as scikit-learn's displays do
        _, ax = plt.subplots()
    image = ax.imshow(D, cmap=cmap, interpolation="nearest")
    ax.set_xlabel("stimulus")
    ax.set_ylabel("stimulus")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="dissimilarity")
    return ax


def _mds(random_state):
    """Metric MDS on precomputed dissimilarities, across scikit-learn versions."""
    from sklearn.manifold import MDS

    if "metric_mds" in MDS().get_params():  # scikit-learn >= 1.8 renamed the parameters
        return MDS(
            n_components=2, metric="precomputed", init="classical_mds", random_state=random_state
        )
    return MDS(n_components=2, dissimilarity="precomputed", random_state=random_state)


@validate_params(
    {
        "rdms": [list, tuple],
        "labels": [list, tuple, None],
        "ax": "no_validation",
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def plot_mds(rdms, labels=None, *, ax=None, random_state=None):
    """Map many RDMs in 2-D by multidimensional scaling (an RDM of RDMs).

    The dissimilarity of two RDMs is 1 - the Pearson correlation of their
    upper triangles; metric MDS places one point per RDM so that distances
    approximate these dissimilarities. With the RDMs of several layers in
    several model instances, points of a consistent layer cluster, those of
    an inconsistent one spread out (the layers x instances plot of Mehrer
    et al. 2020 and Durbha, Goerttler et al. 2022).

    Parameters
    ----------
    rdms : list of array-like of shape (n_stimuli, n_stimuli)
        The RDMs, all of the same stimuli; at least 3.
    labels : list of str, default=None
        One label per RDM, e.g. its layer's name: RDMs with the same label
        share a colour and a legend entry.
    ax : matplotlib Axes, default=None
        Where to draw; None opens a new figure.
    random_state : int, RandomState instance or None, default=None
        Seeds the MDS.

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot()
    if len(rdms) < 3:
        raise ValueError(f"plot_mds needs at least 3 RDMs, got {len(rdms)}.")
    checked = [_check_rdm(D, f"rdms[{i}]") for i, D in enumerate(rdms)]
    if len({D.shape for D in checked}) > 1:
        shapes = [D.shape for D in checked]
        raise ValueError(f"The RDMs must compare the same stimuli; got shapes {shapes}.")
    if labels is not None and len(labels) != len(rdms):
        raise ValueError(f"labels has {len(labels)} entries for {len(rdms)} RDMs.")
    second_order = 1.0 - _pearson_rows(np.stack([_upper(D) for D in checked]))
    second_order = (second_order + second_order.T) / 2
    np.fill_diagonal(second_order, 0.0)
    points = _mds(random_state).fit_transform(second_order)
    if ax is None:  # a figure of its own, as scikit-learn's displays do
        _, ax = plt.subplots()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1])
    else:
        for label in dict.fromkeys(labels):  # first-seen order
            rows = [i for i, other in enumerate(labels) if other == label]
            ax.scatter(points[rows, 0], points[rows, 1], label=str(label))
        ax.legend(fontsize="small")
    ax.set_xlabel("MDS 1")
    ax.set_ylabel("MDS 2")
    return ax
