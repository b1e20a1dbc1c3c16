"""The device's measured dense fp32 matmul throughput: the ceiling achieved GFLOP/s is compared to.

    achieved_gflops_s = 2 * gmacs * 1e3 / latency_ms_p50        (gmacs per batch, p50 of that batch)
    fraction_of_peak  = achieved_gflops_s / matmul_peak_gflops_s
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ._common import resolve_device
from .stats import percentile


@dataclass(frozen=True)
class MatmulPeak:
    """Dense ``n x n @ n x n`` matmul rate in GFLOP/s (1 multiply-add = 2 FLOPs), measured once per run."""

    matmul_peak_gflops_s: float  # best sample: contention only ever slows a run down
    matmul_median_gflops_s: float
    n: int
    dtype: str
    device: str
    threads: int
    n_samples: int
    samples_gflops_s: list[float] = field(repr=False)

    def __float__(self) -> float:
        return self.matmul_peak_gflops_s

    def as_dict(self) -> dict[str, Any]:
        """Flat run-level fields."""
        return {
            "matmul_peak_gflops_s": self.matmul_peak_gflops_s,
            "matmul_median_gflops_s": self.matmul_median_gflops_s,
            "matmul_n": self.n,
            "matmul_dtype": self.dtype,
            "matmul_device": self.device,
            "matmul_threads": self.threads,
            "matmul_n_samples": self.n_samples,
        }


def measure_matmul_peak(
    device: str | torch.device = "cpu",
    *,
    n: int | None = None,
    budget_s: float = 1.0,
    dtype: torch.dtype = torch.float32,
    num_threads: int | None = None,
) -> MatmulPeak:
    """Time ``A @ B`` (``[n, n]`` fp32, ``n`` = 2048 on CPU, 8192 on CUDA) for about ``budget_s`` seconds.

    TF32 is whatever the process has set (``torch.backends.cuda.matmul.allow_tf32``): the peak is the
    one the models run under. One warm-up product first; at least 3 timed samples. ``num_threads``: CPU
    intra-op threads for this measurement only (use the latency measurements' count).
    """
    dev = resolve_device(device)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _measure(dev, n, budget_s, dtype)
    finally:
        if num_threads is not None:
            torch.set_num_threads(old_threads)


def _measure(dev: torch.device, n: int | None, budget_s: float, dtype: torch.dtype) -> MatmulPeak:
    n = n or (8192 if dev.type == "cuda" else 2048)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=dtype).to(dev)
    b = torch.randn(n, n, generator=gen, dtype=dtype).to(dev)
    out = torch.empty(n, n, dtype=dtype, device=dev)
    flop = 2.0 * n**3

    def once() -> float:
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b, out=out)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        return time.perf_counter() - t0

    with torch.inference_mode():
        once()
        samples: list[float] = []
        t_start = time.perf_counter()
        while len(samples) < 3 or time.perf_counter() - t_start < budget_s:
            samples.append(flop / once() / 1e9)
    return MatmulPeak(
        matmul_peak_gflops_s=max(samples),
        matmul_median_gflops_s=percentile(samples, 50),
        n=n,
        dtype=str(dtype).replace("torch.", ""),
        device=str(dev),
        threads=torch.get_num_threads(),
        n_samples=len(samples),
        samples_gflops_s=samples,
    )


def achieved_gflops_s(gmacs: float, latency_ms: float) -> float:
    """Achieved rate, GFLOP/s, of a call costing ``gmacs`` (per batch) that took ``latency_ms``."""
    return 2.0 * gmacs * 1e3 / latency_ms
