import os

import joblib
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits
from torch import nn

from sklearn_autodecoder import _threads
from sklearn_autodecoder._threads import forward_flops, resolve_n_threads, torch_threads


def _pools():
    """Thread counts of the BLAS/OpenMP libraries threadpoolctl finds."""
    return sorted((info["filepath"], info["num_threads"]) for info in threadpool_info())


@pytest.fixture
def start_at_one():
    # Every test starts from a known state and leaves it as it found it.
    before = torch.get_num_threads()
    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)


def test_count_inside_and_restored_after(start_at_one):
    pools = _pools()
    with torch_threads(3) as n:
        assert n == 3 == torch.get_num_threads()
        assert all(count == 3 for _, count in _pools())
    assert torch.get_num_threads() == 1
    assert _pools() == pools


def test_restored_after_an_exception(start_at_one):
    pools = _pools()
    with pytest.raises(KeyError), torch_threads(2):
        raise KeyError("boom")
    assert torch.get_num_threads() == 1
    assert _pools() == pools


def test_nested_blocks(start_at_one):
    with torch_threads(2):
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 2
        with torch_threads(None) as n:
            assert n == 2 == torch.get_num_threads()
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_torch_threads_validates(bad, start_at_one):
    with pytest.raises(ValueError, match="n_threads must be a positive integer"), torch_threads(bad):
        pass
    assert torch.get_num_threads() == 1


@pytest.fixture
def machine(monkeypatch):
    """A 4-core machine with no thread variables set and nothing else running."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_threads.joblib, "cpu_count", lambda only_physical_cores=False: 4)
    monkeypatch.setattr(_threads, "_busy_threads", lambda: 0)
    return monkeypatch


def test_explicit_counts(machine):
    assert resolve_n_threads(3) == 3
    assert resolve_n_threads(16) == 16  # an explicit count is taken as given
    assert resolve_n_threads(-1) == 4
    assert resolve_n_threads(-2) == 3
    assert resolve_n_threads(-10) == 1


@pytest.mark.parametrize("bad", [0, 1.5, True, "all"])
def test_resolve_validates(bad):
    with pytest.raises(ValueError, match="n_jobs"):
        resolve_n_threads(bad)


def test_default_follows_the_work(machine):
    per_thread = _threads.FLOPS_PER_THREAD
    assert resolve_n_threads(None, flops=600_000) == 1  # the demo's MLP batch
    assert resolve_n_threads(None, flops=2 * per_thread) == 2
    assert resolve_n_threads(None, flops=100 * per_thread) == 4  # capped by the cores
    assert resolve_n_threads(None) == 4  # unknown work: every core


def test_default_leaves_busy_cores_alone(machine):
    machine.setattr(_threads, "_busy_threads", lambda: 3)
    assert resolve_n_threads(None, flops=10**12) == 1
    machine.setattr(_threads, "_busy_threads", lambda: 1)
    assert resolve_n_threads(None, flops=10**12) == 3
    machine.setattr(_threads, "_busy_threads", lambda: None)  # not Linux: not counted
    assert resolve_n_threads(None, flops=10**12) == 4
    assert resolve_n_threads(-1) == 4  # an explicit request ignores the load


def test_default_follows_the_environment(machine):
    machine.setenv("OMP_NUM_THREADS", "2")
    assert resolve_n_threads(None, flops=10**12) == 2
    assert resolve_n_threads(-1) == 2
    machine.setenv("OMP_NUM_THREADS", "3,1")  # nested levels: the outer one counts
    assert resolve_n_threads(None) == 3
    machine.delenv("OMP_NUM_THREADS")
    machine.setenv("MKL_NUM_THREADS", "1")
    assert resolve_n_threads(None) == 1


def test_busy_threads_reads_the_run_queue():
    busy = _threads._busy_threads()
    if busy is None:
        pytest.skip("no /proc/loadavg here")
    assert isinstance(busy, int) and busy >= 0


def test_one_thread_inside_joblib_thread_workers(machine):
    # Threads of a joblib pool already share the cores.
    counts = joblib.Parallel(n_jobs=2, backend="threading")(
        joblib.delayed(resolve_n_threads)(None, flops=10**12) for _ in range(2)
    )
    assert counts == [1, 1]
    assert resolve_n_threads(None, flops=10**12) == 4  # back outside


def _in_worker():
    # Runs in a loky worker process.
    from sklearn_autodecoder._threads import resolve_n_threads, torch_threads

    before = torch.get_num_threads()
    with torch_threads(resolve_n_threads(None, flops=10**12)) as n:
        inside = torch.get_num_threads()
    return {
        "given": int(os.environ["OMP_NUM_THREADS"]),
        "all": resolve_n_threads(-1),
        "default": n,
        "inside": inside,
        "restored": torch.get_num_threads() == before,
    }


def test_loky_workers_follow_what_they_were_given():
    # loky gives each worker OMP_NUM_THREADS (cpu_count // n_jobs, or
    # inner_max_num_threads): more than the cores here, so it must be the
    # environment, not the machine, that sets the count.
    given = joblib.cpu_count() + 1
    with joblib.parallel_config(backend="loky", inner_max_num_threads=given):
        results = joblib.Parallel(n_jobs=2)(joblib.delayed(_in_worker)() for _ in range(2))
    for result in results:
        assert result["given"] == result["all"] == given
        assert 1 <= result["default"] <= given  # fewer only where other processes are running
        assert result["inside"] == result["default"]
        assert result["restored"]


def test_forward_flops_counts_multiply_adds():
    assert forward_flops(nn.Linear(8, 4), torch.zeros(3, 8)) == 3 * 8 * 4
    # Conv2d: every output value needs in_channels * k * k multiply-adds.
    conv = nn.Conv2d(2, 5, 3, padding=1)
    assert forward_flops(conv, torch.zeros(1, 2, 6, 6)) == 5 * 6 * 6 * 2 * 3 * 3
    # ConvTranspose2d: every input value meets out_channels * k * k weights.
    convt = nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1)
    assert forward_flops(convt, torch.zeros(2, 4, 5, 5)) == 2 * 4 * 5 * 5 * 3 * 4 * 4


def test_forward_flops_leaves_the_module_as_it_was():
    module = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    module.train()
    module[1].eval()
    state = {k: v.clone() for k, v in module.state_dict().items()}
    assert forward_flops(module, torch.randn(5, 4)) == 5 * (4 * 6 + 6 * 2)
    assert [m.training for m in module] == [True, False, True, True]
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key  # running statistics untouched


def test_fit_limits_threads_in_the_pca_start_and_the_imputer(start_at_one, monkeypatch):
    # Every torch and BLAS section of an estimator runs under its thread
    # count, the representation's start (PCA's SVD) and the imputer's
    # averaged completions included, not only the training loop.
    import numpy as np

    import sklearn_autodecoder._starts as starts
    from sklearn_autodecoder import AutoDecoder, AutoDecoderImputer

    seen = {}
    pca_start = starts.pca_start

    def spy(X, n_components):
        seen["pca_start"] = torch.get_num_threads()
        return pca_start(X, n_components)

    monkeypatch.setattr(starts, "pca_start", spy)
    X = np.random.RandomState(0).rand(60, 6)
    X[::4, 1] = np.nan
    model = AutoDecoder(n_components=2, max_iter=2, n_jobs=2, device="cpu", random_state=0)
    imputer = AutoDecoderImputer(model, n_candidates=3).fit(X)
    infer = imputer.estimator_._infer_tensor

    def spy_infer(*args, **kwargs):
        seen["completions"] = torch.get_num_threads()
        return infer(*args, **kwargs)

    monkeypatch.setattr(imputer.estimator_, "_infer_tensor", spy_infer)
    imputer.transform(X)
    assert seen == {"pca_start": 2, "completions": 2}
    assert torch.get_num_threads() == 1
