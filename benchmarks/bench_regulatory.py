"""Recovering simulated regulator activities: correlation vs load.

Data from :func:`sklearn_autodecoder.datasets.make_regulatory_data` (1,000
genes, 100 regulators, 10% connectivity, as in Schuster & Krogh 2021,
sec. 3.3), training sets of growing size N (so growing load) and a fixed
test set of 500 further samples of the same model. Three ways to get the
representation of the test samples, each scored by the median (and the
minimum) over regulators of the absolute Pearson correlation between true
and recovered activities (``representation_correlation(match="identity")``:
the connectivity mask fixes the latent axes):

* auto-decoder: ``AutoDecoder(hidden_layer_sizes=(), connectivity=C)``, a
  sparse linear decoder on the true graph; test latents by inference.
* encoder on the fixed true decoder: a linear encoder trained to reconstruct
  through the true (frozen) generating weights, x = z W (the generator's
  ReLU only clips noise, and would kill the gradient of samples whose
  initial codes are negative): the best an encoder can do, limited by its
  load N*m / W_enc. Trained like the others (Adam, same steps), and also
  solved in closed form ("enc@fixed lstsq": the minimum-norm linear
  encoder with intercept that maps each training sample to its least-squares
  latents x W^+), which separates what the load allows from what the
  optimiser reaches on these uncentred, badly conditioned inputs.
* autoencoder: ``AutoEncoder`` with the same sparse decoder and a dense
  linear encoder, trained jointly.

Every fit gets the same number of gradient steps (``--steps``, batch 128,
at least 100 epochs), Adam at ``--lr`` for the weights.

Paper: the decoder's correlation approaches 1 once its load is high enough;
the autoencoder's does not.

Run: python benchmarks/bench_regulatory.py [--sizes 10 25 50 100 250 1000] [--steps 800]
"""

import math
import warnings

import numpy as np
import torch

from _common import parser, save, setup, table
from sklearn_autodecoder import (
    AutoDecoder,
    AutoEncoder,
    LowLoadWarning,
    decoder_load,
    encoder_load,
    n_free_parameters,
    representation_correlation,
)
from sklearn_autodecoder.datasets import make_regulatory_data
from sklearn_autodecoder.nn import MLPEncoder

N_TEST = 500
BATCH = 128


def fixed_decoder_encoder(X, W, epochs, lr, seed):
    """A linear encoder trained through the frozen true weights (x = z W)."""
    X = torch.as_tensor(X, dtype=torch.float32)
    W = torch.as_tensor(W, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = MLPEncoder(X.shape[1], W.shape[0], ())
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr, weight_decay=1e-5)
    for _ in range(epochs):
        for rows in torch.randperm(len(X), generator=generator).split(BATCH):
            x = X[rows]
            loss = ((encoder(x) @ W - x) ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return encoder


def least_squares_encoder(X, W):
    """Minimum-norm affine map from X to the least-squares latents X W^+."""
    X1 = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(X1, X @ np.linalg.pinv(W), rcond=None)
    return lambda X_new: np.hstack([X_new, np.ones((len(X_new), 1))]) @ coef


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50, 100, 250, 1000])
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--min-epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--n-features", type=int, default=1000)
    p.add_argument("--n-components", type=int, default=100)
    args = p.parse_args()
    setup(args)
    m = args.n_components
    X_all, Z_all, C, W = make_regulatory_data(
        max(args.sizes) + N_TEST, n_features=args.n_features, n_components=m,
        return_weights=True, random_state=args.seed,
    )
    X_test, Z_test = X_all[-N_TEST:], Z_all[-N_TEST:]
    score = lambda Z: representation_correlation(Z_test, Z, match="identity")  # noqa: E731
    rows = []
    for n in args.sizes:
        X, Z = X_all[:n], Z_all[:n]
        epochs = max(args.min_epochs, math.ceil(args.steps / math.ceil(n / BATCH)))
        common = dict(n_components=m, hidden_layer_sizes=(), connectivity=C, learning_rate=args.lr,
                      max_iter=epochs, batch_size=BATCH, random_state=args.seed, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LowLoadWarning)  # low loads are the point here
            ad = AutoDecoder(latent_learning_rate=0.1, init="mean", inference_max_iter=500,
                             **common).fit(X)
        ae = AutoEncoder(**common).fit(X)
        encoder = fixed_decoder_encoder(X, W, epochs, args.lr, args.seed)
        with torch.no_grad():
            Z_fixed = encoder(torch.as_tensor(X_test, dtype=torch.float32)).numpy()
        results = {"AD": score(ad.transform(X_test)), "enc@fixed": score(Z_fixed),
                   "enc@fixed lstsq": score(least_squares_encoder(X, W)(X_test)),
                   "AE": score(ae.transform(X_test))}
        row = dict(
            n_train=n, epochs=epochs,
            decoder_load=decoder_load(n, args.n_features, m, ad.decoder_),
            encoder_load=encoder_load(n, m, n_free_parameters(encoder)),
            **{f"{k} median r": float(np.median(v)) for k, v in results.items()},
            **{f"{k} min r": float(v.min()) for k, v in results.items()},
            **{"AD train r": float(np.median(representation_correlation(Z, ad.embedding_, match="identity")))},
        )
        rows.append(row)
        print(row, flush=True)
    print()
    print(f"test correlation (median over {m} regulators; min in the CSV), {N_TEST} test samples")
    print(table(rows, ["n_train", "epochs", "decoder_load", "encoder_load", "AD median r",
                       "enc@fixed median r", "enc@fixed lstsq median r", "AE median r", "AD min r",
                       "AD train r"], floatfmt=".3f"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    loads = [r["decoder_load"] for r in rows]
    for key, label in [("AD", "auto-decoder"), ("enc@fixed", "encoder on the true decoder"),
                       ("enc@fixed lstsq", "same, least-squares optimum"), ("AE", "autoencoder")]:
        ax.plot(loads, [r[f"{key} median r"] for r in rows], "o-", label=label)
    ax.set_xlabel("decoder load N*n / (W + N*m)")
    ax.set_ylabel("test correlation with the true regulators")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax2 = ax.secondary_xaxis("top", functions=(lambda x: x, lambda x: x))
    ax2.set_xticks(loads, [str(r["n_train"]) for r in rows], fontsize=7)
    ax2.set_xlabel("training samples N")
    save(fig, "regulatory", rows)


if __name__ == "__main__":
    main()
