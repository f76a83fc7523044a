"""Training time per epoch, auto-decoder vs autoencoder, for every preset.

Random data of each preset's image shape (the values do not change the
cost), the preset's batch size and training settings, ``--epochs`` epochs;
the table reports the median epoch time after the first (warm-up) epoch,
from skorch's history. The auto-decoder's step is a decoder forward and
backward plus a sparse update of the batch's latent rows; the autoencoder's
adds the encoder's forward and backward.

Paper (Schuster & Krogh, STL-10): decoder epochs take 0.55x the
autoencoder's.

Run: python benchmarks/bench_epoch_time.py [--n-samples 256] [--epochs 3]   (about 5 minutes)
"""

import warnings

import numpy as np

from _common import parser, save, setup, table
from sklearn_autodecoder import ConvAutoDecoder, ConvAutoEncoder, LowLoadWarning, n_free_parameters
from sklearn_autodecoder.presets import PRESETS

PAPER_RATIO = {"stl10": 0.55}


def epoch_time(cls, preset, X, epochs, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowLoadWarning)  # random data: only the cost matters
        est = cls(preset, max_iter=epochs, random_state=seed, device="cpu").fit(X)
    durations = [float(d) for d in est.history_[:, "dur"]]
    return float(np.median(durations[1:] if len(durations) > 1 else durations)), est


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--n-samples", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    setup(args)
    rng = np.random.RandomState(args.seed)
    rows = []
    for preset in args.presets:
        X = rng.rand(args.n_samples, PRESETS[preset].n_features).astype(np.float32)
        ad_s, ad = epoch_time(ConvAutoDecoder, preset, X, args.epochs, args.seed)
        ae_s, ae = epoch_time(ConvAutoEncoder, preset, X, args.epochs, args.seed)
        rows.append(dict(
            preset=preset,
            decoder_weights=n_free_parameters(ad.decoder_),
            encoder_weights=n_free_parameters(ae.encoder_),
            batch_size=ad._settings()["batch_size"],
            **{"AD epoch s": ad_s, "AE epoch s": ae_s, "AD/AE": ad_s / ae_s,
               "paper AD/AE": PAPER_RATIO.get(preset)},
        ))
        print(rows[-1], flush=True)
    print()
    print(f"{args.n_samples} random samples per preset, median of epochs 2..{args.epochs}, "
          f"{args.threads} CPU threads")
    print(table(rows, ["preset", "decoder_weights", "encoder_weights", "batch_size", "AD epoch s",
                       "AE epoch s", "AD/AE", "paper AD/AE"], floatfmt=".3f"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["AD epoch s"] for r in rows], 0.4, label="auto-decoder")
    ax.bar(x + 0.2, [r["AE epoch s"] for r in rows], 0.4, label="autoencoder")
    ax.set_xticks(x, [r["preset"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel(f"seconds per epoch ({args.n_samples} samples)")
    ax.legend()
    save(fig, "epoch_time", rows)


if __name__ == "__main__":
    main()
