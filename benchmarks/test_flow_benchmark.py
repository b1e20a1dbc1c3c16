"""Flow throughput, Horn–Schunck (ours) vs OpenCV Farneback, on CPU (and CUDA when present).

    pytest benchmarks/test_flow_benchmark.py --benchmark-only -q

Each case is one call on a clip ``[batch, 8, 3, S, S]`` = ``batch * 7`` flow fields; ``extra_info`` records the
field count so fields/s = fields / mean. ``bench.flowbench.flow_throughput`` produces the same numbers as a
table (median and IQR) for the report.
"""
from __future__ import annotations

import pytest
import torch

from fusion_models.flow import HornSchunck, farneback_flow

FRAMES = 8
SIZES = (32, 64, 112)
BATCHES = (1, 32)
# (device, backend): the fused kernel (CPU default) and the torch ops it replaced; torch ops on CUDA
CASES = [("cpu", "fused"), ("cpu", "torch")] + ([("cuda", "torch")] if torch.cuda.is_available() else [])


def _clip(batch: int, size: int) -> torch.Tensor:
    return torch.rand(batch, FRAMES, 3, size, size, generator=torch.Generator().manual_seed(size * 100 + batch))


def _rounds(batch: int, size: int) -> int:
    # the largest case takes ~1 s a call on 2 cores: fewer rounds keep the whole file near a minute
    return 3 if batch * size * size >= 32 * 64 * 64 else 10


@pytest.mark.parametrize("device, backend", CASES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("size", SIZES)
def test_horn_schunck_throughput(benchmark, size, batch, device, backend):
    hs = HornSchunck(backend=backend).to(device)
    clip = _clip(batch, size).to(device)

    def run() -> torch.Tensor:
        with torch.no_grad():
            out = hs(clip)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.group = f"flow {size}x{size} batch {batch}"
    benchmark.extra_info.update(method=f"horn_schunck[{backend}]", device=device, fields=batch * (FRAMES - 1),
                                threads=torch.get_num_threads())
    flow = benchmark.pedantic(run, rounds=_rounds(batch, size), warmup_rounds=1)
    assert flow.shape == (batch, FRAMES - 1, 2, size, size)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("size", SIZES)
def test_farneback_throughput(benchmark, size, batch):
    clip = _clip(batch, size)
    benchmark.group = f"flow {size}x{size} batch {batch}"
    benchmark.extra_info.update(method="farneback", device="cpu", fields=batch * (FRAMES - 1))
    flow = benchmark.pedantic(farneback_flow, args=(clip,), rounds=_rounds(batch, size), warmup_rounds=1)
    assert flow.shape == (batch, FRAMES - 1, 2, size, size)
