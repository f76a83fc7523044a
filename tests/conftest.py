"""Test-session settings.

torch's intra-op pool defaults to one thread per core. The tests run many tiny
models, for which a second thread only costs synchronisation, and on a shared
2-core CI machine oversubscribed threads make the suite's time unpredictable.
The estimators scope their own threads (``n_jobs``); tests that call the torch
functions directly run under this session-wide count of one thread.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
