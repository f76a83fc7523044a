"""One-shot check of every GPU path: each runs isolated, one table of path / pass-fail / seconds / error.

On one CUDA GPU, in a few minutes (each check is small): an MLP auto-decoder
with the mixture prior and a small conv auto-decoder (MNIST preset), each
``fit`` / ``transform`` / ``inverse_transform`` / ``score`` (and ``predict``
for the mixture) at float32, bfloat16, float16 and with ``compile=True``; a
memmap streamed from pinned memory; a fit resumed from its ``Checkpoint``
(float16: the gradient scaler's state); pickle and ``save`` on the GPU, loaded
in a subprocess with ``CUDA_VISIBLE_DEVICES=""``; a 2-rank ``torchrun``
with gloo on ``cuda:0`` (the mixture prior, and a decoder with batch norm),
and a 1-rank NCCL run. A failure is reported and
the next check runs.

Without a CUDA GPU it says so and exits 0. ``--device cpu`` runs the
float32 paths (and the gloo ranks) on the CPU.

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--threads 2]
"""

import argparse
import contextlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, installed or not
# Each subprocess check has this long (the whole script stays under 5 minutes).
SUBPROCESS_TIMEOUT = 90


def mlp_paths(device, precision, compile=False, rows=512):
    from sklearn_autodecoder import AutoDecoder

    X = np.random.RandomState(0).randn(rows, 32).astype(np.float32)
    model = AutoDecoder(n_components=4, hidden_layer_sizes=(64,), max_iter=2, batch_size=64, latent_prior="gmm",
                        n_prior_components=3, inference_max_iter=5, precision=precision, compile=compile,
                        device=device, random_state=0).fit(X)
    Z = model.transform(X[:64])
    X_hat = model.inverse_transform(Z)
    assert np.isfinite(Z).all() and np.isfinite(X_hat).all() and X_hat.shape == (64, 32)
    assert np.isfinite(model.score(X[:64]))
    assert model.predict(X[:64]).shape == (64,)
    return model


def conv_paths(device, precision, compile=False):
    from sklearn_autodecoder import ConvAutoDecoder

    X = np.random.RandomState(0).randint(0, 256, size=(128, 28 * 28)).astype(np.uint8)
    model = ConvAutoDecoder("mnist", max_iter=1, batch_size=32, inference_max_iter=3, precision=precision,
                            compile=compile, device=device, random_state=0).fit(X)
    Z = model.transform(X[:32])
    X_hat = model.inverse_transform(Z)
    assert np.isfinite(Z).all() and np.isfinite(X_hat).all()
    assert np.isfinite(model.score(X[:32]))
    return model


def memmap_paths(device):
    from sklearn_autodecoder import AutoDecoder

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.npy"
        np.save(path, np.random.RandomState(0).randn(1024, 32).astype(np.float32))
        X = np.load(path, mmap_mode="r")  # read batch by batch, pinned, copied asynchronously
        model = AutoDecoder(n_components=4, hidden_layer_sizes=(32,), max_iter=2, batch_size=128,
                            inference_max_iter=5, device=device, random_state=0).fit(X)
        assert np.isfinite(model.transform(X[:64])).all()


LOAD_ELSEWHERE = """
import pickle, sys, numpy as np, torch
from sklearn_autodecoder import load
assert not torch.cuda.is_available()
X = np.random.RandomState(0).randn(8, 32).astype(np.float32)
with open(sys.argv[1], "rb") as f:
    a = pickle.load(f)
b = load(sys.argv[2])
for m in (a, b):
    assert np.isfinite(m.transform(X)).all() and m.predict(X).shape == (8,)
print("ok", a.device_, b.device_)
"""


def persistence_paths(device):
    model = mlp_paths(device, "float32", rows=256)
    with tempfile.TemporaryDirectory() as tmp:
        pickled, saved = Path(tmp) / "model.pkl", Path(tmp) / "model_saved"
        with open(pickled, "wb") as f:
            pickle.dump(model, f)
        model.save(saved)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
        run([sys.executable, "-c", LOAD_ELSEWHERE, str(pickled), str(saved)], env)


def checkpoint_paths(device, precision):
    """A fit stopped after 2 of 4 epochs and resumed from its Checkpoint ends as an uninterrupted one."""
    from sklearn_autodecoder import AutoDecoder, Checkpoint

    X = np.random.RandomState(0).randn(256, 16).astype(np.float32)
    params = dict(n_components=3, hidden_layer_sizes=(32,), batch_size=64, early_stopping=True,
                  inference_max_iter=5, precision=precision, device=device, random_state=0)
    whole = AutoDecoder(max_iter=4, **params).fit(X)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.ckpt"
        AutoDecoder(max_iter=2, callbacks=[Checkpoint(path, every=1)], **params).fit(X)
        log = io.StringIO()
        with contextlib.redirect_stdout(log):  # verbose=1 says where it resumes
            resumed = AutoDecoder(max_iter=4, callbacks=[Checkpoint(path, every=1)], verbose=1, **params).fit(X)
    assert "Resuming" in log.getvalue(), "the checkpoint was not resumed"
    assert resumed.n_iter_ == whole.n_iter_ == 4
    # Bit-identical on the CPU; on a GPU, atomics in the latent table's backward may round differently.
    exact = device == "cpu"
    np.testing.assert_allclose(resumed.embedding_, whole.embedding_, rtol=0 if exact else 1e-3,
                               atol=0 if exact else 1e-4)


def run(cmd, env):
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    if result.returncode != 0:
        # The ranks' own error lines (torchrun ends with a banner of its own).
        lines = [line for line in result.stderr.splitlines() if "Error" in line and "ChildFailedError" not in line]
        raise RuntimeError(lines[-1].strip() if lines else "failed")
    return result.stdout


def torchrun(nproc, backend, device):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
         __file__, "--worker", backend, "--device", device], env)


def worker(backend, device):
    """A torchrun rank: data-parallel fits; every rank must end with rank 0's decoder."""
    import torch.distributed as dist

    from sklearn_autodecoder import AutoDecoder

    warnings.simplefilter("ignore")
    dist.init_process_group(backend)
    X = np.random.RandomState(0).randn(301, 16).astype(np.float32)  # uneven shards
    model = AutoDecoder(n_components=3, hidden_layer_sizes=(16,), max_iter=3, batch_size=64, latent_prior="gmm",
                        n_prior_components=2, early_stopping=True, inference_max_iter=5, device=device,
                        random_state=0).fit(X)
    _same_on_every_rank(model.decoder_, device)
    assert np.isfinite(model.transform(X[:8])).all()
    # A decoder with batch norm: normalised over the global batch (collectives inside forward
    # and backward), so weights and running statistics agree on every rank.
    decoder = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 16))
    model = AutoDecoder(decoder=decoder, n_components=3, max_iter=2, batch_size=64, inference_max_iter=5, device=device,
                        random_state=0).fit(X)
    _same_on_every_rank(model.decoder_, device)
    dist.destroy_process_group()


def _same_on_every_rank(module, device):
    import torch.distributed as dist

    state = torch.cat([v.detach().double().reshape(-1) for v in module.state_dict().values()]).to(device)
    reference = state.clone()
    dist.broadcast(reference, src=0)  # nccl takes the CUDA tensor, gloo a CUDA one through its CUDA support
    assert torch.equal(state, reference), "ranks ended with different decoders"


def checks(device):
    gpu = device.startswith("cuda")
    precisions = ["float32", "bfloat16", "float16"] if gpu else ["float32"]
    items = []
    for precision in precisions:
        items.append((f"mlp+gmm {precision}", lambda p=precision: mlp_paths(device, p)))
        items.append((f"conv {precision}", lambda p=precision: conv_paths(device, p)))
    if gpu:
        items.append(("mlp+gmm compile=True", lambda: mlp_paths(device, "float32", compile=True)))
        items.append(("conv bfloat16 compile=True", lambda: conv_paths(device, "bfloat16", compile=True)))
    items.append((f"checkpoint + resume {precisions[-1]}", lambda: checkpoint_paths(device, precisions[-1])))
    items.append(("memmap streamed" + (" (pinned)" if gpu else ""), lambda: memmap_paths(device)))
    items.append(("pickle + save, load without CUDA", lambda: persistence_paths(device)))
    items.append((f"torchrun 2 ranks gloo on {'cuda:0' if gpu else 'cpu'}",
                  lambda: torchrun(2, "gloo", "cuda:0" if gpu else "cpu")))
    if gpu:
        items.append(("torchrun 1 rank nccl", lambda: torchrun(1, "nccl", "auto")))
    return items


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        torch.set_num_threads(1)
        return worker(args.worker, args.device)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; nothing checked (--device cpu runs the float32 paths on the CPU).")
        return 0
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"gpu_check on {name} ({args.device}); torch {torch.__version__}; threads: {args.threads}")
    rows, failed = [], 0
    for label, check in checks(args.device):
        start = time.perf_counter()
        try:
            check()
            status, error = "pass", ""
        except Exception as exc:  # noqa: BLE001 - every failure reported, the next check runs
            status, error = "FAIL", f"{type(exc).__name__}: {str(exc)[:150]}".replace("|", "/").replace("\n", " ")
            failed += 1
            if os.environ.get("GPU_CHECK_TRACEBACK"):
                traceback.print_exc()
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        rows.append((label, status, time.perf_counter() - start, error))
    print("| path | result | seconds | error |")
    print("|---|---|---|---|")
    for label, status, seconds, error in rows:
        print(f"| {label} | {status} | {seconds:.1f} | {error} |")
    print(f"{len(rows) - failed}/{len(rows)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
