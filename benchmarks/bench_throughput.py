"""Throughput of fit and transform per preset, precision and device.

For each preset (synthetic uint8 images of its shape: speed does not depend
on the pixels), precision and device: images/s of a training epoch of
``ConvAutoDecoder.fit`` (the best epoch after the first, from the history),
of the same decoder, latent table and optimisers in a bare torch loop on the
same device and batches (the ratio is the estimator's overhead), and of
``transform`` (per inference step), with the peak device memory on CUDA.
On a GPU it also projects the papers' STL-10 workload (100,000 images x 400
epochs) and the model FLOP utilisation against the GPU's peak.

Usage::

    python benchmarks/bench_throughput.py [--device cpu] [--presets mnist,stl10]
        [--precisions float32,bfloat16] [--batch-sizes 64] [--images 512] [--threads 2]
        [--peak-tflops 989]   # dense bf16 peak of the GPU, for MFU (H100 SXM: 989)
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parser, setup, table  # noqa: E402

from sklearn_autodecoder import ConvAutoDecoder  # noqa: E402
from sklearn_autodecoder._devices import autocast, prefer_channels_last  # noqa: E402
from sklearn_autodecoder._losses import sample_losses  # noqa: E402
from sklearn_autodecoder._sparse_optim import make_latent_optimizer  # noqa: E402
from sklearn_autodecoder.nn import LatentTable  # noqa: E402
from sklearn_autodecoder.presets import PRESETS, make_decoder  # noqa: E402


def images(preset, n, seed=0):
    c, h, w = PRESETS[preset].image_shape
    return np.random.RandomState(seed).randint(0, 256, size=(n, c * h * w)).astype(np.uint8)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def estimator_fit(preset, X, precision, device, batch_size, epochs):
    model = ConvAutoDecoder(preset, max_iter=epochs, batch_size=batch_size, precision=precision,
                            device=str(device), random_state=0).fit(X)
    return min(row["dur"] for row in model.history_[1:]), model


def bare_fit(preset, X, precision, device, batch_size, epochs):
    """Seconds per epoch of the same training written as a plain torch loop."""
    spec = PRESETS[preset]
    settings = spec.defaults
    gen = torch.Generator().manual_seed(0)
    decoder = prefer_channels_last(torch.nn.Sequential(make_decoder(preset), torch.nn.Flatten()).to(device), device)
    table_ = LatentTable(len(X), spec.n_components,
                         init=0.01 * torch.randn(len(X), spec.n_components, generator=gen)).to(device)
    weights = torch.optim.Adam(decoder.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"])
    latents = make_latent_optimizer(table_.parameters(), settings["latent_optimizer"],
                                    settings["latent_learning_rate"], settings["latent_momentum"])
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(len(X), generator=gen).numpy()
        for i in range(0, len(X), batch_size):
            rows = np.sort(order[i : i + batch_size])
            x = torch.from_numpy(X[rows].astype(np.float32) / np.float32(255))
            x = x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x
            index = torch.from_numpy(rows).to(device)
            weights.zero_grad()
            latents.zero_grad()
            with autocast(precision, device):
                x_hat = decoder(table_(index))
            sample_losses(x_hat.float(), x, settings["loss"]).sum().backward()
            weights.step()
            latents.step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def transform_rate(model, X, steps):
    model.set_params(inference_max_iter=steps, inference_tol=0.0)
    start = time.perf_counter()
    model.transform(X)
    return len(X) * steps / (time.perf_counter() - start)


def flops_per_image(preset):
    """Forward + backward FLOPs of the decoder for one image (3x the forward's)."""
    from torch.utils.flop_counter import FlopCounterMode

    decoder = make_decoder(preset)
    z = torch.zeros(2, PRESETS[preset].n_components)
    with FlopCounterMode(display=False) as counter:
        decoder(z)
    return 3 * counter.get_total_flops() / 2


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", default="mnist,cifar10,cifar10_4x4,stl10")
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--batch-sizes", default="64")
    p.add_argument("--images", type=int, default=256, help="images per epoch")
    p.add_argument("--epochs", type=int, default=3, help="epochs per timing (the first is warm-up)")
    p.add_argument("--steps", type=int, default=5, help="inference steps timed in transform")
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args()
    setup(args)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} torch threads"
    print(f"device: {name}; torch {torch.__version__}")
    rows = []
    for preset in args.presets.split(","):
        X = images(preset, args.images)
        flops = flops_per_image(preset)
        for precision in args.precisions.split(","):
            for batch_size in map(int, args.batch_sizes.split(",")):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                est, model = estimator_fit(preset, X, precision, device, batch_size, args.epochs)
                memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
                bare = bare_fit(preset, X, precision, device, batch_size, args.epochs)
                fit_rate = len(X) / est
                row = {
                    "device": name, "preset": preset, "precision": precision, "batch": batch_size,
                    "fit img/s": fit_rate, "bare img/s": len(X) / bare, "estimator / bare": est / bare,
                    "transform img*step/s": transform_rate(model, X[: min(len(X), 256)], args.steps),
                    "GFLOP/img (fwd+bwd)": flops / 1e9,
                    "device MiB": memory,
                    "100k x 400 epochs, h": 100_000 * 400 / fit_rate / 3600,
                }
                if args.peak_tflops:
                    row["MFU"] = fit_rate * flops / (args.peak_tflops * 1e12)
                rows.append(row)
                print(table([row], list(row), floatfmt=".3g").splitlines()[-1], flush=True)
    print()
    print(table(rows, list(rows[0]), floatfmt=".3g"))


if __name__ == "__main__":
    main()
