"""Fixtures for the fusion_models tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread, then restore the setting.

    The tensors here are tiny, so a second thread buys nothing, and on a loaded 2-core machine two spinning
    threads per process made the same forward pass 20-40x slower (measured: two_stream at T=8, 32x32, batch 2:
    25 ms with 1 thread, 770 ms with 2 while other processes ran).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
