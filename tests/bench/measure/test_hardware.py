"""Dense matmul peak and the achieved-rate formula."""
from __future__ import annotations

import pytest
import torch

from bench.measure import achieved_gflops_s, measure_matmul_peak


def test_matmul_peak_is_measured_and_plausible():
    peak = measure_matmul_peak("cpu", n=512, budget_s=0.2)
    assert peak.n_samples >= 3 and peak.n == 512 and peak.dtype == "float32"
    assert 0.1 < peak.matmul_peak_gflops_s < 1e5  # GFLOP/s: anything from a tiny VM to a big server
    assert peak.matmul_peak_gflops_s >= peak.matmul_median_gflops_s
    assert float(peak) == peak.matmul_peak_gflops_s
    assert peak.threads == torch.get_num_threads()
    assert set(peak.as_dict()) >= {"matmul_peak_gflops_s", "matmul_n", "matmul_threads"}


def test_achieved_gflops_formula():
    # 1 GMAC in 10 ms = 2 GFLOP / 0.01 s = 200 GFLOP/s
    assert achieved_gflops_s(1.0, 10.0) == pytest.approx(200.0)


def test_matmul_peak_thread_knob_is_scoped():
    before = torch.get_num_threads()
    peak = measure_matmul_peak("cpu", n=256, budget_s=0.05, num_threads=1)
    assert peak.threads == 1 and torch.get_num_threads() == before
