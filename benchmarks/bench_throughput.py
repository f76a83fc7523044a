"""Throughput of fit and transform per preset, precision and device.

For each preset (synthetic uint8 images of its shape: speed does not depend
on the pixels), precision and device: images/s of a training epoch of
``ConvAutoDecoder.fit`` (the best epoch after the first, from the history),
of the same decoder, latent table and optimisers in a bare torch loop on the
same device and batches (the ratio is the estimator's overhead), and of
``transform`` (per inference step; latent inference runs in float32 whatever
the precision), with the peak device memory on CUDA.
On a GPU it also projects the seed workload (the STL-10 preset, 100,000
images x 400 epochs) and the model FLOP utilisation (MFU) against the peak of
the precision's math (``PEAK_TFLOPS``, dense, labelled in the table).

Timing: epochs after the first (warm-up); on CUDA the bare loop is timed
with CUDA events and the GPU default is 20,000 images per epoch. ``transform``
counts the decoder's row passes (a hook on its first layer) instead of assuming a step
count, so its rate is decoder rows per second, whatever inference did.

Usage::

    python benchmarks/bench_throughput.py [--device cpu] [--presets mnist,stl10]
        [--precisions float32,bfloat16] [--batch-sizes 64] [--images N] [--threads 2]
        [--peak-tflops X]   # override the per-precision peak (default: H200 dense)
    python benchmarks/bench_throughput.py --quick   # a tiny CPU smoke run
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


# Dense peak TFLOP/s of an H200 (SXM) per math mode: bf16/fp16 tensor cores, TF32, plain fp32.
PEAK_TFLOPS = {"bfloat16": 989.0, "float16": 989.0, "tf32": 494.0, "float32": 67.0}
SEED_WORKLOAD = ("stl10", 100_000, 400)  # preset, images, epochs


def math_mode(precision):
    """The math a precision's convolutions and matmuls run in on CUDA (float32 may be TF32)."""
    if precision != "float32":
        return precision
    tf32 = torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else "float32"


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
    cuda = device.type == "cuda"
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
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
        if cuda:
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1000)
        else:
            times.append(time.perf_counter() - start)
    return min(times[1:])


def transform_rate(model, X, steps):
    """Decoder row passes per second of ``transform`` (counted by a forward hook), after a warm-up."""
    model.set_params(inference_max_iter=steps, inference_tol=0.0)
    model.transform(X[: min(len(X), 8)])  # warm-up
    rows = [0]
    # The decoder's first weighted layer: every decoder pass goes through it, by forward or logits.
    first = next(m for m in model.decoder_.modules() if any(True for _ in m.parameters(recurse=False)))
    hook = first.register_forward_hook(lambda module, args, out: rows.__setitem__(0, rows[0] + len(args[0])))
    try:
        _sync(model.device_)
        start = time.perf_counter()
        model.transform(X)
        _sync(model.device_)
        seconds = time.perf_counter() - start
    finally:
        hook.remove()
    return rows[0] / seconds


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
    p.add_argument("--images", type=int, default=None,
                   help="images per epoch (default: 20,000 on CUDA, 256 on the CPU)")
    p.add_argument("--quick", action="store_true", help="a tiny run (mnist, 64 images, 2 epochs)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per timing (the first is warm-up)")
    p.add_argument("--steps", type=int, default=5, help="inference steps timed in transform")
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args()
    setup(args)
    device = torch.device(args.device)
    if args.quick:
        args.presets, args.precisions, args.images, args.epochs, args.steps = "mnist", "float32", 64, 2, 2
    if args.images is None:
        args.images = 20_000 if device.type == "cuda" else 256
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
                    "transform decoder rows/s (float32)": transform_rate(model, X[: min(len(X), 2048)], args.steps),
                    "GFLOP/img (fwd+bwd)": flops / 1e9,
                    "device MiB": memory,
                    "100k x 400 epochs, h": 100_000 * 400 / fit_rate / 3600,
                }
                if device.type == "cuda" or args.peak_tflops:
                    mode = math_mode(precision)
                    peak = args.peak_tflops or PEAK_TFLOPS[mode]
                    row["peak TFLOP/s"] = f"{peak:g} ({'given' if args.peak_tflops else 'H200 dense ' + mode})"
                    row["MFU"] = fit_rate * flops / (peak * 1e12)
                rows.append(row)
                print(table([row], list(row), floatfmt=".3g").splitlines()[-1], flush=True)
    print()
    columns = list(dict.fromkeys(c for row in rows for c in row))
    print(table(rows, columns, floatfmt=".3g"))
    preset, n_images, epochs = SEED_WORKLOAD
    for row in rows:
        if row["preset"] == preset:
            mfu = f", MFU {row['MFU']:.1%} of {row['peak TFLOP/s']}" if "MFU" in row else ""
            print(f"seed workload ({preset}, {n_images:,} images x {epochs} epochs) at {row['precision']}, "
                  f"batch {row['batch']}: {n_images * epochs / row['fit img/s'] / 3600:.1f} h{mfu}")


if __name__ == "__main__":
    main()
