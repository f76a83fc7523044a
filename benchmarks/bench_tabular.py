"""Small real tabular data: linear auto-decoder vs PCA, and imputation.

(a) ``AutoDecoder(n_components=3, hidden_layer_sizes=())`` at its defaults
    on standardised data (70/30 train/test split): test MSE of
    ``inverse_transform(transform(X_test))`` relative to PCA's, with the
    epochs training ran (it starts at the PCA solution and stops when its
    loss has converged) and the fit time.
(b) ``AutoDecoderImputer()`` (defaults) vs ``KNNImputer``,
    ``IterativeImputer`` and ``SimpleImputer(mean)``: RMSE on the hidden
    entries (standardised units) of the whole table's ``fit_transform``,
    entries hidden completely at random, mean +- sd over seeds, with the
    fit + transform time.

Data: scikit-learn's diabetes (442 x 10), wine (178 x 13) and breast cancer
(569 x 30), standardised; with ``--heldout``, also data sets shipped with
statsmodels (if installed): macrodata, star98, and 400-row samples of
anes96, fair and modechoice.

(c) Choosing ``n_components`` without labels on digits (X / 16): 3-fold
    cross-validated mean per-sample score over a grid of sizes, for PCA's
    ``score`` (probabilistic PCA log-likelihood, what
    ``GridSearchCV(PCA(), ...)`` maximises), the auto-decoders' ``score``
    (minus the reconstruction MSE) and their ``score_samples`` mean (the
    Laplace log-likelihood; ``log_likelihood_scorer``), for the linear
    auto-decoder and the default MLP (``hidden_layer_sizes=(64,)``).

torch runs on 1 thread (``torch.set_num_threads(1)``; ``--threads``).

Run: python benchmarks/bench_tabular.py [--seeds 3] [--heldout] [--skip-linear] [--select]
"""

import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.decomposition import PCA
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import KFold, train_test_split
from sklearn.preprocessing import StandardScaler

from _common import parser, save, setup, table
from sklearn_autodecoder import AutoDecoder, AutoDecoderImputer


def dev_sets():
    return {
        "diabetes": load_diabetes().data,
        "wine": load_wine().data,
        "breast_cancer": load_breast_cancer().data,
    }


def heldout_sets():
    import statsmodels.api as sm

    rng = np.random.RandomState(0)

    def sample(frame, k=400):
        a = np.asarray(frame, dtype=float)
        return a[rng.choice(len(a), k, replace=False)] if len(a) > k else a

    ds = sm.datasets
    return {
        "macrodata": ds.macrodata.load_pandas().data.drop(columns=["year", "quarter"]).values,
        "star98": ds.star98.load_pandas().data.values,
        "anes96": sample(ds.anes96.load_pandas().data),
        "fair": sample(ds.fair.load_pandas().data),
        "modechoice": sample(ds.modechoice.load_pandas().data.drop(columns=["individual", "mode"])),
    }


# ---- (a) linear auto-decoder vs PCA ------------------------------------------


def linear_vs_pca(sets, seeds, m=3):
    rows = []
    for name, X in sets.items():
        ratios, epochs, times = [], [], []
        for seed in range(seeds):
            X_train, X_test = train_test_split(X, test_size=0.3, random_state=seed)
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
            pca = PCA(m).fit(X_train)
            reference = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ad = AutoDecoder(m, hidden_layer_sizes=(), random_state=seed).fit(X_train)
            times.append(time.perf_counter() - start)
            mse = np.mean((ad.inverse_transform(ad.transform(X_test)) - X_test) ** 2)
            ratios.append(mse / reference)
            epochs.append(ad.n_iter_)
        rows.append({
            "data": f"{name} {X.shape[0]}x{X.shape[1]}",
            "test MSE / PCA": f"{np.mean(ratios):.4f} +- {np.std(ratios):.4f}",
            "worst": float(np.max(ratios)), "epochs": f"{np.mean(epochs):.0f}",
            "fit (s)": float(np.mean(times)),
        })
        print(rows[-1], flush=True)
    return rows


# ---- (b) imputation -----------------------------------------------------------

IMPUTERS = {
    "AutoDecoderImputer()": AutoDecoderImputer,
    "KNNImputer()": KNNImputer,
    "IterativeImputer()": lambda: IterativeImputer(random_state=0),
    "SimpleImputer(mean)": SimpleImputer,
}


def imputation(sets, seeds, fractions=(0.1, 0.3, 0.5)):
    rows, records = [], []
    for name, X0 in sets.items():
        X0 = np.asarray(X0, dtype=float)
        X0 = X0[:, X0.std(axis=0) > 0]
        X = StandardScaler().fit_transform(X0)
        for fraction in fractions:
            scores = {label: [] for label in IMPUTERS}
            times = {label: [] for label in IMPUTERS}
            for seed in range(seeds):
                hidden = np.random.RandomState(seed).rand(*X.shape) < fraction
                hidden[hidden.all(axis=1), 0] = False  # keep one entry per row
                X_nan = np.where(hidden, np.nan, X)
                for label, make in IMPUTERS.items():
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # IterativeImputer's convergence
                        filled = make().fit_transform(X_nan)
                    times[label].append(time.perf_counter() - start)
                    scores[label].append(np.sqrt(np.mean((filled[hidden] - X[hidden]) ** 2)))
            best = np.minimum(scores["KNNImputer()"], scores["IterativeImputer()"])
            ratio = np.array(scores["AutoDecoderImputer()"]) / best
            row = {"data": f"{name} {X.shape[0]}x{X.shape[1]}", "missing": f"{fraction:.0%}"}
            for label in IMPUTERS:
                row[label] = f"{np.mean(scores[label]):.4f} +- {np.std(scores[label]):.4f}"
                row[label + " s"] = f"{np.mean(times[label]):.2f}"
            row["AD / best(KNN, Iter.)"] = f"{ratio.mean():.3f} (max {ratio.max():.3f})"
            rows.append(row)
            records.append({"data": name, "missing": fraction, "ratio": ratio.mean()})
            print(row, flush=True)
    return rows, records


# ---- (c) choosing n_components ---------------------------------------------------

SIZES = (2, 4, 8, 16, 24, 32, 40, 44, 48, 52, 56, 60, 64)


def select_components(sizes=SIZES):
    X = load_digits().data / 16.0
    folds = list(KFold(3).split(X))  # GridSearchCV's cv=3
    models = {"linear AD": (), "MLP AD (64,)": (64,)}
    rows = []
    for m in sizes:
        scores = {"PCA.score": []}
        start = time.perf_counter()
        for train, test in folds:
            try:
                scores["PCA.score"].append(PCA(m).fit(X[train]).score(X[test]))
            except np.linalg.LinAlgError:  # singular covariance: GridSearchCV scores NaN
                scores["PCA.score"].append(np.nan)
            for label, hidden in models.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ad = AutoDecoder(m, hidden_layer_sizes=hidden, random_state=0).fit(X[train])
                    scores.setdefault(f"{label} score (-MSE)", []).append(ad.score(X[test]))
                    scores.setdefault(f"{label} log-lik", []).append(ad.score_samples(X[test]).mean())
        rows.append({"n_components": m, **{k: float(np.mean(v)) for k, v in scores.items()},
                     "s": time.perf_counter() - start})
        print(rows[-1], flush=True)
    picks = {k: max((r for r in rows if np.isfinite(r[k])), key=lambda r: r[k])["n_components"]
             for k in rows[0] if k not in ("n_components", "s")}
    return rows, picks


def main():
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(threads=1)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--heldout", action="store_true", help="also the statsmodels data sets, in (a) and (b)")
    p.add_argument("--skip-linear", action="store_true", help="skip (a)")
    p.add_argument("--skip-impute", action="store_true", help="skip (b)")
    p.add_argument("--select", action="store_true", help="also (c), n_components on digits")
    args = p.parse_args()
    setup(args)
    print(f"torch threads: {torch.get_num_threads()}")
    sets = dev_sets()
    if args.heldout:
        sets.update(heldout_sets())
    if not args.skip_linear:
        rows = linear_vs_pca(sets, args.seeds)
        print("\n(a) Linear AutoDecoder(n_components=3, hidden_layer_sizes=()) vs PCA, test MSE ratio\n")
        print(table(rows, ["data", "test MSE / PCA", "worst", "epochs", "fit (s)"]))
    if args.select:
        rows, picks = select_components()
        print("\n(c) digits / 16, 3-fold mean score per n_components (higher is better)\n")
        print(table(rows, list(rows[0]), floatfmt=".3f"))
        print("picked:", picks)
    if args.skip_impute:
        return
    rows, records = imputation(sets, args.seeds)
    columns = ["data", "missing"] + [c for label in IMPUTERS for c in (label, label + " s")]
    print("\n(b) Imputation RMSE on the hidden entries (standardised units), fit + transform seconds\n")
    print(table(rows, columns + ["AD / best(KNN, Iter.)"]))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(dict.fromkeys(r["data"] for r in records))
    for i, fraction in enumerate((0.1, 0.3, 0.5)):
        values = [next(r["ratio"] for r in records if r["data"] == n and r["missing"] == fraction) for n in names]
        ax.bar(np.arange(len(names)) + (i - 1) * 0.27, values, width=0.27, label=f"{fraction:.0%} missing")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, fontsize=8)
    ax.set_ylabel("RMSE / best(KNN, Iterative)")
    ax.legend(fontsize=8)
    save(fig, "tabular_imputation", records)


if __name__ == "__main__":
    main()
