"""A Gaussian-mixture latent prior (DGD) on MNIST: clusters, reconstructions, samples.

Fits ``AutoDecoder(latent_prior="gmm")`` on the shared MNIST subset (first
8,000 images to train, last 2,000 to test) and reports, per seed:

* the adjusted Rand index (ARI) of ``predict(X_test)`` against the digit
  labels, and of the training latents' most likely components;
* the same for the baselines ``GaussianMixture(10)`` (full covariance,
  scikit-learn's default) and ``KMeans(10)`` on ``PCA(20)`` fitted on the
  training images;
* the test reconstruction error (BCE and MSE per pixel) of
  ``inverse_transform(transform(X_test))``, with the prior and without it
  (``latent_prior="none"``, otherwise the same settings).

and saves a grid of ``sample()`` images per component, each row a
component's decoded mean then draws from it, to
benchmarks/results/bench_prior_samples.png.

Estimator settings (``SETTINGS``; everything else at the estimator's
defaults, among them ``prior_covariance_type="full"``, the learning rates
and ``batch_size=64``)::

    AutoDecoder(n_components=20, latent_prior="gmm", n_prior_components=10,
                hidden_layer_sizes=(256, 512), loss="bce", max_iter=60,
                random_state=seed, n_jobs=threads)

The prior-free model (``latent_prior="none"``, same settings) is fitted for
the seeds of ``--prior-free-seeds`` (default 0).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_prior.py`` (``--threads``
torch threads through ``n_jobs``, default 1; about 6 minutes on a shared
2-core machine). ``--seeds 0`` for a single seed, ``--set key=value`` to
change a setting (e.g. ``--set prior_covariance_type=diag``).

Measured (1 torch thread, 2 shared CPU cores; the whole run took about 6
minutes):

| model (seeds 0-2)                        | test ARI            | train ARI           | test BCE/px | test MSE/px | fit s |
|------------------------------------------|---------------------|---------------------|-------------|-------------|-------|
| GaussianMixture(10) on PCA(20)           | 0.510 (0.477-0.535) |                     |             |             | 0.3   |
| KMeans(10) on PCA(20)                    | 0.357 (0.345-0.380) |                     |             |             | 0.1   |
| AutoDecoder(latent_prior="gmm")          | 0.646 (0.617-0.691) | 0.641 (0.610-0.692) | 0.0832      | 0.0071      | 52-99 |
| AutoDecoder(latent_prior="none"), seed 0 |                     |                     | 0.0818      | 0.0066      | 77    |
| latent_prior="gmm", "diag", seed 0       | 0.305               | 0.312               | 0.0831      | 0.0069      | 47    |

Per seed, the estimator's test ARI is 0.617, 0.691 and 0.629, each above
the best GaussianMixture seed (0.535); the prior costs 1.7% of test BCE
(0.0833 against 0.0818, seed 0). The clustering comes mostly from the
mixture's start, EM on the whitened PCA scores with a ridge
(``_priors.INIT_RIDGE``; that fit alone has a train ARI of 0.61 with 5
EM runs and 0.66 with 10, means over seeds 0-3), which joint training
keeps; inference with the decoder assigns the test digits as well as the
training ones. The samples grid
shows one digit, or a few similar ones (4 and 9; 3, 5 and 8), per
component.

History of this benchmark (same data): with the mixture's means drawn in
a ball of radius 2 (the DGD code's start) a hand-written training loop
reached 0.478 at best and the estimator about 0.4; starting from EM
(ridge 1e-3, 5 runs) gave 0.559 (0.551-0.571) with the latent-scale anchor
of ``_priors.prior_loss`` and 0.04 without it (the latents contracted and
the components merged); the ridge of 0.1 then gave the table above.

A second data set, scikit-learn's 8x8 digits (``--data digits``: 1,397
train / 400 test, ``train_test_split(test_size=400, random_state=0)``,
pixels / 16; ``hidden_layer_sizes=(64, 128)``, otherwise the settings
above, seeds 0-2; ``--set n_components=10`` for the first row; test ARI):

| latents | AutoDecoder(latent_prior="gmm") | GaussianMixture(10) on PCA | KMeans(10) on PCA | test BCE/px, prior / none | test MSE/px, prior / none |
|---------|---------------------------------|----------------------------|-------------------|---------------------------|---------------------------|
| 10      | 0.746 (0.708-0.767)             | 0.730 (0.729-0.733)        | 0.658             | 0.2640 / 0.2497 (+5.7%)   | 0.0134 / 0.0091 (+47%)    |
| 20      | 0.754 (0.748-0.765)             | 0.702 (0.687-0.726)        | 0.679             | 0.2511 / 0.2291 (+9.6%)   | 0.0091 / 0.0029 (x3.1)    |

(prior: mean over seeds 0-2; none: seed 0; about 20 s per run.)

On 64-pixel images the prior costs more reconstruction than on MNIST (where
MSE rises by 8%, 0.0071 against 0.0066): its nats weigh more against 64
pixels' than against 784's, so the latents the prior-free model spreads to
fit each digit (BCE within 10%, but MSE up to three times lower) are pulled
towards the component means.
"""

import argparse
import time
import warnings

import numpy as np
import torch
from _common import REPO, RESULTS, table
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split

import sklearn_autodecoder
from _images import IMAGE_SETS, load_images
from sklearn_autodecoder import AutoDecoder, ConvAutoDecoder
from sklearn_autodecoder.datasets import load_mnist

DATA = REPO.parent / "shared" / "data" / "mnist10k"  # ../shared beside the repository
N_TRAIN = 8000
SETTINGS = dict(
    n_components=20,
    latent_prior="gmm",
    n_prior_components=10,
    hidden_layer_sizes=(256, 512),
    loss="bce",
    max_iter=60,
)
# The decoder for the 64-pixel digits of --data digits.
DIGITS_SETTINGS = dict(hidden_layer_sizes=(64, 128))
# --model conv: the published MNIST decoder (its preset's settings otherwise).
CONV_SETTINGS = dict(latent_prior="gmm", n_prior_components=10, max_iter=30)


def load(name="mnist"):
    """(X_train, y_train, X_test, y_test): the MNIST subset, or scikit-learn's 8x8 digits."""
    if name in IMAGE_SETS[1:]:  # 28x28 image sets of benchmarks/_images.py
        return load_images(name)
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=400, random_state=0)
        return X_train, y_train, X_test, y_test
    X, y = load_mnist(f"{DATA}/mnist10k-images-idx3-ubyte.gz", f"{DATA}/mnist10k-labels-idx1-ubyte.gz")
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def baselines(X_train, X_test, y_test, seeds, n_components=20):
    """Test ARI of GaussianMixture(10) and KMeans(10) on PCA(n_components) of the training images."""
    pca = PCA(n_components, random_state=0).fit(X_train)
    P_train, P_test = pca.transform(X_train), pca.transform(X_test)
    rows = []
    for name, make in (
        (f"GaussianMixture(10) on PCA({n_components})", lambda s: GaussianMixture(10, random_state=s)),
        (f"KMeans(10) on PCA({n_components})", lambda s: KMeans(10, n_init=10, random_state=s)),
    ):
        for seed in seeds:
            t0 = time.perf_counter()
            labels = make(seed).fit(P_train).predict(P_test)
            rows.append({"model": name, "seed": seed, "test ARI": adjusted_rand_score(y_test, labels),
                         "fit s": time.perf_counter() - t0})
    return rows


def reconstruction_errors(model, X):
    """BCE and MSE per pixel of X's reconstructions after inference."""
    R = model.inverse_transform(model.transform(X)).astype(np.float64)
    P = np.clip(R, 1e-7, 1 - 1e-7)
    bce = float(-(X * np.log(P) + (1 - X) * np.log1p(-P)).mean())
    return bce, float(((R - X) ** 2).mean())


def fit_and_score(settings, seed, threads, data):
    X_train, y_train, X_test, y_test = data
    settings = dict(settings)
    if settings.pop("model", "mlp") == "conv":
        model = ConvAutoDecoder("mnist", **settings, random_state=seed, n_jobs=threads)
    else:
        model = AutoDecoder(**settings, random_state=seed, n_jobs=threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the budget here
        model.fit(X_train)
        fit_s = time.perf_counter() - t0
        bce, mse = reconstruction_errors(model, X_test)
    row = {"seed": seed, "test BCE/px": bce, "test MSE/px": mse, "fit s": fit_s, "epochs": model.n_iter_}
    if settings["latent_prior"] == "gmm":
        row["model"] = f"{type(model).__name__}(latent_prior='gmm')"
        row["test ARI"] = adjusted_rand_score(y_test, model.predict(X_test))
        with torch.no_grad():
            proba = model.prior_.responsibilities(torch.as_tensor(model.embedding_, dtype=torch.float32))
        row["train ARI"] = adjusted_rand_score(y_train, proba.argmax(1).numpy())
        row["weights min/max"] = f"{model.prior_weights_.min():.3f}/{model.prior_weights_.max():.3f}"
    else:
        row["model"] = f"{type(model).__name__}(latent_prior='none')"
    return row, model


def save_samples(model, path, per_component=8, seed=0):
    """A K x (1 + per_component) grid: each row a component's decoded mean, then its samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = len(model.prior_weights_)
    X, y = model.sample(200 * K, random_state=seed)
    means = model.inverse_transform(model.prior_means_.astype(np.float32))
    fig, axes = plt.subplots(K, per_component + 1, figsize=((per_component + 1) * 0.8, K * 0.8))
    for k in range(K):
        drawn = X[y == k][:per_component]
        images = [means[k]] + list(drawn)
        for j, ax in enumerate(axes[k]):
            if j < len(images):
                side = int(round(np.sqrt(np.size(images[j]))))
                ax.imshow(np.asarray(images[j]).reshape(side, side), cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
        axes[k, 0].text(-4, 14, f"{k}: w={model.prior_weights_[k]:.2f}", fontsize=6, ha="right", va="center")
    fig.suptitle("Decoded component mean (left), then sample() draws; one row per component", fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.startswith("("):
        return tuple(int(v) for v in text.strip("()").split(",") if v.strip())
    return text


def summary(rows):
    """Mean (min-max) of each model's numbers over the seeds."""
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        row = {"model": name, "seeds": ",".join(str(r["seed"]) for r in group)}
        for key in ("test ARI", "train ARI", "test BCE/px", "test MSE/px", "fit s"):
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                row[key] = f"{np.mean(values):.4f}" + (
                    f" ({np.min(values):.3f}-{np.max(values):.3f})" if len(values) > 1 else ""
                )
        out.append(row)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--prior-free-seeds", type=int, nargs="*", default=[0],
                   help="seeds of the prior-free models (default 0; none to skip)")
    p.add_argument("--data", choices=["mnist", "digits", *IMAGE_SETS[1:]], default="mnist",
                   help="the MNIST subset, scikit-learn's 8x8 digits (hidden_layer_sizes=(64, 128)), or a "
                        "28x28 image set of benchmarks/_images.py")
    p.add_argument("--model", choices=["mlp", "conv"], default="mlp",
                   help="AutoDecoder with SETTINGS, or ConvAutoDecoder('mnist') with CONV_SETTINGS")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a setting")
    args = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.model == "conv":
        settings = dict(CONV_SETTINGS, model="conv")
    else:
        settings = dict(SETTINGS, **(DIGITS_SETTINGS if args.data == "digits" else {}))
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = parse_value(value)
    data = load(args.data)
    print(f"sklearn_autodecoder from {sklearn_autodecoder.__file__}")
    rows = baselines(data[0], data[2], data[3], args.seeds, settings.get("n_components", 20))
    model = None
    for seed in args.seeds:
        row, fitted = fit_and_score(settings, seed, args.threads, data)
        print(row, flush=True)
        rows.append(row)
        model = model or fitted
        if seed in args.prior_free_seeds:
            row, _ = fit_and_score(dict(settings, latent_prior="none"), seed, args.threads, data)
            print(row, flush=True)
            rows.append(row)
    print(f"torch threads: {args.threads}; settings: {settings}")
    print(table(rows, ["model", "seed", "test ARI", "train ARI", "test BCE/px", "test MSE/px", "weights min/max",
                       "epochs", "fit s"]))
    print()
    print(table(summary(rows), ["model", "seeds", "test ARI", "train ARI", "test BCE/px", "test MSE/px", "fit s"]))
    suffix = "" if args.data == "mnist" else f"_{args.data}"
    path = RESULTS / f"bench_prior_samples{suffix}{'_conv' if args.model == 'conv' else ''}.png"
    save_samples(model, path, seed=0)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
