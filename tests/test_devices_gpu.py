"""GPU and multi-GPU paths checked on the CPU: stand-in process groups, the ``meta`` device, static scans.

Each test fails on the code before issue 18's fixes; what needs a real GPU
is run by ``benchmarks/gpu_check.py``.
"""

import ast
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import distributed as dist

from sklearn_autodecoder import AutoDecoder
from sklearn_autodecoder import _data, _devices
from sklearn_autodecoder import _distributed as distributed

PACKAGE = Path(distributed.__file__).parent
ROOT = PACKAGE.parent


@pytest.fixture
def two_rank_group(monkeypatch):
    """A stand-in 2-rank group: this process is rank 1; collectives are recorded, not sent."""
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a: 2)
    monkeypatch.setattr(dist, "get_rank", lambda *a: 1)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "gloo")

    def record(name):
        def collective(tensor, *args, **kwargs):
            calls.append((name, tensor if not isinstance(tensor, list) else tensor[0], kwargs))
        return collective

    for name in ("all_reduce", "broadcast", "all_gather"):
        monkeypatch.setattr(dist, name, record(name))
    return calls


def test_global_mean_builds_its_pair_on_the_losses_device(two_rank_group, monkeypatch):
    # defect 1: a device loss sum was stacked with a CPU count (meta stands in for CUDA).
    monkeypatch.setattr(dist, "get_backend", lambda *a: "nccl")
    total = torch.ones((), device="meta")
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):  # float() after the collective
        distributed.global_mean(total, 3)
    name, tensor, _ = two_rank_group[0]
    assert name == "all_reduce" and tensor.device.type == "meta"


@pytest.mark.parametrize(
    "backend, device, expected",
    [
        ("nccl", "cuda:1", "cuda:1"),
        ("nccl", "cpu", "cuda:1"),  # NCCL never gets a CPU tensor (held-out latents from numpy)
        ("gloo", "cuda:1", "cpu"),
        ("cpu:gloo,cuda:nccl", "cuda:1", "cuda:1"),  # backend-less init: NCCL for CUDA tensors
        ("cpu:gloo,cuda:nccl", "cpu", "cpu"),
    ],
)
def test_collectives_run_on_the_backends_device(backend, device, expected):
    # defect 5: with the backend-less init every collective went through gloo on host copies.
    assert distributed._collective_device_for(backend, device, "cuda:1") == torch.device(expected)


def test_auto_and_cuda_mean_the_local_ranks_gpu(monkeypatch):
    # defect 2: under torchrun "auto" put every rank on GPU 0.
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda *a: 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert _devices.resolve_device("auto") == torch.device("cuda", 2)
    assert _devices.resolve_device("cuda") == torch.device("cuda", 2)
    assert _devices.resolve_device("cuda:1") == torch.device("cuda", 1)


def test_ddp_gets_the_weights_gpu(two_rank_group, monkeypatch):
    seen = {}

    class FakeDDP:
        def __init__(self, module, device_ids=None):
            seen["device_ids"] = device_ids

        def register_comm_hook(self, state, hook):
            pass

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", FakeDDP)
    distributed.wrap(torch.nn.Linear(2, 2), "cuda:3")
    assert seen["device_ids"] == [3]


def test_found_inf_is_all_reduced(two_rank_group):
    # defect 6: a rank-local inf (latents, prior) must skip the step on every rank.
    class Scaler:
        _per_optimizer_states = {}

    optimizers = [object(), object()]
    flags = [torch.zeros(1), torch.ones(1)]
    for optimizer, flag in zip(optimizers, flags):
        Scaler._per_optimizer_states[id(optimizer)] = {"found_inf_per_device": {"cpu": flag}}
    distributed.sync_found_inf(Scaler(), optimizers)
    (name, tensor, kwargs), = two_rank_group
    assert name == "all_reduce" and kwargs["op"] == dist.ReduceOp.MAX
    assert all(float(f) == 1.0 for f in flags)  # one flag for all optimisers


def test_training_calls_the_found_inf_sync():
    source = (PACKAGE / "_training.py").read_text()
    assert "distributed.sync_found_inf(self.scaler_" in source


def test_sum_gradients_joins_with_an_empty_share(two_rank_group):
    # A rank whose share of a batch is empty has no prior gradient: it sends zeros.
    module = torch.nn.Linear(2, 1)
    distributed.sum_gradients(module)
    assert two_rank_group and all(p.grad is not None for p in module.parameters())


@pytest.fixture(scope="module")
def gmm_model():
    X = np.random.RandomState(0).randn(60, 5)
    return AutoDecoder(n_components=2, hidden_layer_sizes=(8,), max_iter=3, latent_prior="gmm",
                       n_prior_components=2, inference_max_iter=5, random_state=0).fit(X), X


def test_pickling_moves_every_torch_module_to_the_cpu(gmm_model, monkeypatch):
    # defect 7: prior_ (not in _torch_attributes) stayed on the GPU in the pickle.
    model, _ = gmm_model
    moved = []
    original = torch.nn.Module.cpu

    def spy(self):
        moved.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(torch.nn.Module, "cpu", spy)
    pickle.dumps(model)
    assert type(model.prior_).__name__ in moved


def test_predict_proba_builds_its_input_on_the_priors_device(gmm_model, monkeypatch):
    # defect 7: a GPU-fitted prior got CPU latents (meta stands in for the GPU).
    model, X = gmm_model
    seen = {}

    class PriorOnMeta(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Parameter(torch.zeros(2, 2, device="meta"))

        def responsibilities(self, z):
            seen["device"] = z.device
            return torch.zeros(len(z), 2)

    monkeypatch.setattr(model, "transform", lambda X: np.zeros((len(X), 2)))
    monkeypatch.setattr(model, "_prior_for", lambda dtype: PriorOnMeta())
    model.predict_proba(X[:3])
    assert seen["device"].type == "meta"


def test_compile_fallback_does_not_swallow_out_of_memory():
    # defect 11: an OOM in the compiled call was caught, compile turned off for good.
    module = _devices.CompiledModule(torch.nn.Linear(2, 2))

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    object.__setattr__(module, "_compiled", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        module(torch.ones(1, 2))
    assert module._compiled is out_of_memory


def test_compile_fallback_raises_the_networks_own_error_without_warning():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("shape mismatch in the user's network")

    module = _devices.CompiledModule(Broken())

    def failing(*args):
        raise RuntimeError("compiled")

    object.__setattr__(module, "_compiled", failing)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="shape mismatch"):
            module(torch.ones(1, 2))


def test_torch_floor_has_the_amp_grad_scaler():
    # torch.amp.GradScaler (float16 training) exists from torch 2.3.
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=2.3' in text


def test_pinning_happens_under_the_estimators_gpu(monkeypatch):
    # defect 11: pin_memory() on cuda:1's batches created a context on GPU 0.
    entered, pinned_under = [], []

    class FakeDeviceContext:
        def __init__(self, device):
            self.device = device

        def __enter__(self):
            entered.append(self.device)

        def __exit__(self, *exc):
            entered.pop()

    monkeypatch.setattr(torch.cuda, "device", FakeDeviceContext)

    def pin_memory(self):
        pinned_under.append(entered[-1] if entered else None)
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: self)
    data = _data.RowData.__new__(_data.RowData)
    data.device = torch.device("cuda", 1)
    data.to_device((torch.ones(2, 2), None))
    assert pinned_under == [torch.device("cuda", 1)]


# Calls that build a tensor and take device=; a call without it makes a CPU tensor.
FACTORIES = {"tensor", "zeros", "ones", "empty", "arange", "full", "randn", "rand", "eye", "linspace"}
# (file, function) allowed to build CPU tensors, with why: each is drawn from a CPU
# generator or lives on the host, and is moved to the device where it meets device tensors.
ALLOWED = {
    ("_amortized.py", "fit_encoder"): "masks drawn from the CPU generator, then .to(device)",
    ("_data.py", "host_array"): "a host array's dtype probe",
    ("_inference.py", "_adam_chunk"): "a CPU table of bias corrections, then .to(**row)",
    ("_persistence.py", "_read_tensors"): "reading a file into CPU tensors",
    ("_priors.py", "_uniform_in_ball"): "drawn from the CPU generator at construction",
    ("_priors.py", "__init__"): "parameters built on the CPU, moved with the module",
    ("_priors.py", "sample"): "drawn from the CPU generator, then moved to the prior's device",
    ("_starts.py", "_training_start"): "the table's CPU start, moved with the module",
    ("_starts.py", "_nearest_rows"): "row positions into a host array",
}


def _factory_calls_without_device(path):
    tree = ast.parse(path.read_text())
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                    and node.func.attr in FACTORIES
                    and not any(k.arg in ("device", None) for k in node.keywords)):  # None: **kwargs
                found.append((func.name, node.lineno))
    return found


def test_package_builds_tensors_on_a_device():
    # Static scan: a torch factory call without device= makes a CPU tensor, which fails
    # (or syncs) where it meets CUDA tensors; the exceptions are listed with their reason.
    offenders = [
        (path.name, function, line)
        for path in sorted(PACKAGE.glob("*.py"))
        for function, line in _factory_calls_without_device(path)
        if (path.name, function) not in ALLOWED
    ]
    assert not offenders, f"torch factory calls without device=: {offenders}"


def test_gpu_check_without_a_gpu_says_so_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: gpu_check.py runs for real")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no CUDA GPU" in result.stdout


def test_bench_throughput_quick_runs_on_the_cpu():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_throughput.py"), "--quick",
                             "--device", "cpu", "--threads", "1"], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))  # this checkout's package, installed or not
    assert result.returncode == 0, result.stderr[-2000:]
    assert "transform decoder rows/s" in result.stdout


def test_batch_indices_are_copied_asynchronously_from_pinned_memory(monkeypatch):
    # defect 8: the index of every training batch was a pageable, blocking copy.
    from sklearn_autodecoder._training import RowBatches

    copies = []

    class FakeDeviceContext:
        def __init__(self, device):
            pass

        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    class Data:
        device = torch.device("cuda", 0)

        def __len__(self):
            return 4

        def batches(self, positions):
            for p in positions:
                yield p, None, None

    monkeypatch.setattr(torch.cuda, "device", FakeDeviceContext)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: copies.append("pinned") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: copies.append(k.get("non_blocking")) or self)
    list(RowBatches(Data(), 2))
    assert copies == ["pinned", True, "pinned", True]


def test_transform_uploads_no_whole_latent_table_for_zeros(monkeypatch):
    # defect 10: transform sent all of embedding_ to the device at every call.
    X = np.random.RandomState(0).randn(80, 6)
    model = AutoDecoder(n_components=2, hidden_layer_sizes=(8,), max_iter=2, init="zeros",
                        inference_max_iter=3, random_state=0).fit(X)
    uploaded = []
    original = torch.as_tensor

    def spy(data, *args, **kwargs):
        if isinstance(data, np.ndarray) and "device" in kwargs:
            uploaded.append(data.shape)
        return original(data, *args, **kwargs)

    monkeypatch.setattr(torch, "as_tensor", spy)
    model.transform(X[:5])
    assert model.embedding_.shape not in uploaded


@pytest.mark.parametrize("rank, expected", [(0, 1), (1, 0)])
def test_fit_warnings_are_shown_by_rank_zero_only(monkeypatch, rank, expected):
    # Under torchrun every rank fits alike: a warning of fit is shown once, by rank 0.
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    X = np.random.RandomState(0).randn(40, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AutoDecoder(n_components=2, hidden_layer_sizes=(4,), max_iter=1, tol=0.0, random_state=0).fit(X)
    from sklearn.exceptions import ConvergenceWarning

    assert sum(issubclass(w.category, ConvergenceWarning) for w in caught) == expected


def test_levenberg_marquardt_normal_equations_stay_float32_under_autocast():
    # Defect 9: J^T W J overflows float16 and loses small curvatures in bfloat16.
    from sklearn_autodecoder._inference import _ChunkProblem

    decoder = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6))
    x = torch.rand(4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        problem = _ChunkProblem(decoder, x, None, "mse", None)
        data, size, grad, gn = problem.linearise(torch.zeros(4, 3), torch.arange(4))
    assert grad.dtype == gn.dtype == data.dtype == torch.float32
