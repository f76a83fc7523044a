"""
=====================================
Imputation before a supervised model
=====================================

:class:`~sklearn_autodecoder.AutoDecoderImputer` is an ordinary scikit-learn
transformer: in a :class:`~sklearn.pipeline.Pipeline` it fills in missing
values before an estimator that cannot take them. It is fitted on the
incomplete training data itself: NaN entries are left out of the
auto-decoder's loss, so no complete rows are needed.

Is it worth its cost? That depends on the data. This example measures the
downstream score, the error on the missing entries and the time of
``fit`` + ``score`` for four imputers on two data sets:

* **digits**: scikit-learn's 8x8 digits with 50% of the pixels missing at
  random, before a logistic regression;
* **gene expression**: simulated data
  (:func:`~sklearn_autodecoder.datasets.make_regulatory_data`): 500 genes
  driven by 50 hidden regulators, 70% of the values missing at random
  (single-cell measurements miss as much), before a ridge regression that
  predicts one regulator's activity.

The baselines are :class:`~sklearn.impute.SimpleImputer` (column means),
:class:`~sklearn.impute.KNNImputer` and
:class:`~sklearn.impute.IterativeImputer` (a regression of each feature on
the others, in turns; on the genes, from the 50 most correlated ones, to
bound its time).
"""

# %%
# The comparison
# --------------
# The same pipeline with each imputer; all scores are on held-out rows with
# missing values of their own.
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits


def compare(imputers, model, X_train, y_train, X_test, y_test, X_test_complete):
    """Score each imputer before ``model``; return {name: (score, rmse, seconds)}."""
    missing = np.isnan(X_test)
    results = {}
    for name, imputer in imputers.items():
        start = time.perf_counter()
        # One BLAS thread for scikit-learn's estimators: matrices this small
        # gain nothing from more, and on a shared machine the threads wait on
        # each other (IterativeImputer ran 70 times slower next to one busy
        # core). The auto-decoders set their own thread count (n_jobs).
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            # IterativeImputer's rounds are capped (max_iter) to bound its
            # time; it warns that it has not converged.
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe = make_pipeline(imputer, clone(model)).fit(X_train, y_train)
            score = pipe.score(X_test, y_test)
            seconds = time.perf_counter() - start
            X_filled = pipe[0].transform(X_test)
        rmse = np.sqrt(np.mean((X_filled[missing] - X_test_complete[missing]) ** 2))
        results[name] = (score, rmse, seconds)
        print(
            f"{name:>20}: score {score:.3f}, RMSE on the missing entries {rmse:.3f}, "
            f"{seconds:5.1f} s"
        )
    return results


def hide(X, fraction, random_state):
    """X with a random ``fraction`` of its entries set to NaN."""
    rng = np.random.RandomState(random_state)
    return np.where(rng.rand(*X.shape) < fraction, np.nan, X)


# %%
# Digits
# ------
# The auto-decoder has an MLP decoder, binary cross-entropy for pixels in
# [0, 1], and starts inference from the training latent that best fits the
# observed pixels (``init="nearest"``).
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import train_test_split

from sklearn_autodecoder import AutoDecoder, AutoDecoderImputer

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.3, random_state=0
)
X_train_nan, X_test_nan = hide(X_train, 0.5, 0), hide(X_test, 0.5, 1)

classifier = LogisticRegression(max_iter=2000)
with threadpool_limits(limits=1, user_api="blas"):
    complete_digits = clone(classifier).fit(X_train, y_train).score(X_test, y_test)
print(f"accuracy with complete digits: {complete_digits:.3f}")
digits = compare(
    {
        "SimpleImputer": SimpleImputer(),
        "KNNImputer": KNNImputer(),
        "IterativeImputer": IterativeImputer(max_iter=5, random_state=0),
        "AutoDecoderImputer": AutoDecoderImputer(
            AutoDecoder(
                n_components=8,
                hidden_layer_sizes=(64, 128),
                loss="bce",
                max_iter=100,
                init="nearest",
                device="cpu",
                random_state=0,
            )
        ),
    },
    classifier,
    X_train_nan,
    y_train,
    X_test_nan,
    y_test,
    X_test,
)

# %%
# Gene expression
# ---------------
# Each gene is a noisy positive combination of a few regulators, so the
# expression matrix has a low-dimensional linear structure. The auto-decoder
# is linear (``hidden_layer_sizes=()``) with one latent per regulator. The
# target is the activity of regulator 0, which no gene shows alone.
from sklearn_autodecoder.datasets import make_regulatory_data

X, Z, _ = make_regulatory_data(800, n_features=500, n_components=50, random_state=0)
y = Z[:, 0]
X_train, X_test, y_train, y_test = X[:500], X[500:], y[:500], y[500:]
X_train_nan, X_test_nan = hide(X_train, 0.7, 0), hide(X_test, 0.7, 1)

regressor = RidgeCV()
with threadpool_limits(limits=1, user_api="blas"):
    complete_genes = clone(regressor).fit(X_train, y_train).score(X_test, y_test)
print(f"R^2 with complete data: {complete_genes:.3f}")
genes = compare(
    {
        "SimpleImputer": SimpleImputer(),
        "KNNImputer": KNNImputer(),
        "IterativeImputer": IterativeImputer(
            max_iter=5, n_nearest_features=50, random_state=0
        ),
        "AutoDecoderImputer": AutoDecoderImputer(
            AutoDecoder(
                n_components=50,
                hidden_layer_sizes=(),
                max_iter=200,
                learning_rate=1e-2,
                latent_optimizer="adam",
                latent_learning_rate=0.1,
                init="mean",
                device="cpu",
                random_state=0,
            )
        ),
    },
    regressor,
    X_train_nan,
    y_train,
    X_test_nan,
    y_test,
    X_test,
)

# %%
# Scores and times
# ----------------
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 3, figsize=(11, 5.5))
colors = ["0.6", "tab:orange", "tab:green", "tab:blue"]
for row, (title, results, complete, score_name) in enumerate(
    (
        ("digits, 50% missing", digits, complete_digits, "accuracy"),
        ("gene expression, 70% missing", genes, complete_genes, "$R^2$"),
    )
):
    names = list(results)
    score, rmse, seconds = (np.array(v) for v in zip(*results.values()))
    for ax, values, label in zip(
        axes[row],
        (score, rmse, seconds),
        (score_name, "RMSE on missing entries", "seconds (fit + score)"),
    ):
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        for k, v in enumerate(values):
            ax.annotate(
                f"{v:.3g}",
                (v, k),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.margins(x=0.2)
    axes[row, 0].axvline(complete, color="black", ls="--", lw=1)
    axes[row, 0].set_title(
        f"{title} (dashed: complete data, {complete:.3f})", loc="left", fontsize=10
    )
    for ax in axes[row, 1:]:
        ax.set_yticklabels([])
fig.tight_layout()
plt.show()

# %%
# Reading the result
# ------------------
# * **Digits.** The imputers that learn from the data fill in about equally
#   well, and the classifier's accuracy differs by a few points at most, with
#   :class:`~sklearn.impute.IterativeImputer` ahead; the auto-decoder costs
#   the most time. With 8x8 digits from a small set of writers, similar
#   training digits exist for every test digit, and 64 pixels are few enough
#   for a regression per pixel.
# * **Gene expression.** Every row is a mixture of 50 regulators; its
#   nearest neighbours among 500 rows are not close in all 50, and with 70%
#   of the values missing they are found on few shared genes, so
#   :class:`~sklearn.impute.KNNImputer` does worse than the column means.
#   :class:`~sklearn.impute.IterativeImputer` exploits the linear structure
#   but regresses each gene on other genes that are themselves mostly
#   imputed. The auto-decoder learns the mixing directly from the observed
#   entries of the incomplete rows and infers each row's regulators from its
#   observed genes: its error on the missing entries is the lowest, the
#   regression's score comes closest to the complete-data one, and it is not
#   the slowest.
# * The auto-decoder is worth its cost when the data have a low-dimensional
#   structure, shared by many features, that a decoder can learn from
#   incomplete rows; where close neighbours exist for every row, a
#   :class:`~sklearn.impute.KNNImputer` or an
#   :class:`~sklearn.impute.IterativeImputer` is as good and faster.
