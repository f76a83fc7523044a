"""Imputation in a Pipeline: AutoDecoderImputer before a classifier.

Digits with 40% of their pixels missing at random are classified by
``make_pipeline(imputer, LogisticRegression())``, with the auto-decoder
imputer or with scikit-learn's SimpleImputer and KNNImputer. The
auto-decoder is fitted on the incomplete training digits themselves (NaN
entries are left out of its loss): no complete data is needed.

Run ``python examples/plot_imputation_pipeline.py`` (1-2 minutes on 2 CPU
cores); it saves ``examples/imputation_pipeline.png``.
"""

import time

import numpy as np
from _mnist import load_digits_split
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_autodecoder import AutoDecoderImputer, ConvAutoDecoder

X_train, y_train, X_test, y_test = load_digits_split(n_train=2000, n_test=500)
rng = np.random.RandomState(0)
X_train = np.where(rng.rand(*X_train.shape) < 0.4, np.nan, X_train)
X_test_missing = rng.rand(*X_test.shape) < 0.4
X_test_nan = np.where(X_test_missing, np.nan, X_test)

imputers = {
    "SimpleImputer": SimpleImputer(),
    "KNNImputer": KNNImputer(),
    "AutoDecoderImputer": AutoDecoderImputer(
        ConvAutoDecoder("mnist", max_iter=8, init="encoder", encoder_max_iter=15,
                        inference_max_iter=50, device="cpu", random_state=0)
    ),
}
results = {}
for name, imputer in imputers.items():
    start = time.perf_counter()
    pipe = make_pipeline(imputer, LogisticRegression(max_iter=300)).fit(X_train, y_train)
    accuracy = pipe.score(X_test_nan, y_test)
    X_filled = pipe[0].transform(X_test_nan)
    rmse = np.sqrt(np.mean((X_filled[X_test_missing] - X_test[X_test_missing]) ** 2))
    results[name] = X_filled
    print(f"{name:>18}: accuracy {accuracy:.3f}, RMSE on missing pixels {rmse:.3f} "
          f"({time.perf_counter() - start:.0f} s)")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

shown = [("original", X_test), ("40% missing", np.where(X_test_missing, 0.35, X_test)), *results.items()]
fig, axes = plt.subplots(len(shown), 8, figsize=(8, len(shown)))
for r, (label, images) in enumerate(shown):
    for c in range(8):
        axes[r, c].imshow(images[c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right")
fig.suptitle("Missing pixels filled in before classification")
fig.savefig(__file__.replace(".py", ".png").replace("plot_", ""), dpi=100, bbox_inches="tight")
