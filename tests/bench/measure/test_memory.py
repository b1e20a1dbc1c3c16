"""Peak memory: a known allocation pattern, a linear layer's forward and training step, OOM handling."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.measure import MeasureOOM, measure_memory
from bench.measure._common import MIB


class _Pattern(nn.Module):
    """Allocates 4 MB, then 8 MB (12 live), frees the 4 MB, allocates 2 MB (10 live): peak 12 MB extra."""

    def forward(self, x):
        a = torch.ones(1_000_000, device=x.device)
        b = torch.ones(2_000_000, device=x.device)
        del a
        c = torch.ones(500_000, device=x.device)
        return x + b.sum() + c.sum()


def _extra_bytes(mr) -> float:
    return (mr.peak_mem_mib - mr.baseline_mib) * MIB


def test_known_allocation_pattern_peak_is_exact():
    x = torch.zeros(10)
    mr = measure_memory(_Pattern(), x)
    assert mr.baseline_mib * MIB == 40  # the input
    # 12,000,000 from the pattern; the scalar sums and the [10] output are freed or smaller by then.
    assert _extra_bytes(mr) == pytest.approx(12_000_000, abs=64)
    assert mr.method == "cpu_dispatch_live_tensors" and mr.reserved_mib is None


def test_views_and_inplace_share_one_storage():
    class Views(nn.Module):
        def forward(self, x):
            y = torch.empty(1_000_000)  # 4 MB
            y.fill_(1.0)  # in place: same storage
            z = y.view(1000, 1000).t()  # view: same storage
            return z.sum() + x

    mr = measure_memory(Views(), torch.zeros(1))
    assert _extra_bytes(mr) == pytest.approx(4_000_000, abs=64)


def test_linear_forward_and_train_step():
    torch.manual_seed(0)
    lin = nn.Linear(1000, 1000)
    x = torch.randn(64, 1000)
    before = lin.weight.detach().clone()
    params = (1000 * 1000 + 1000) * 4
    fwd = measure_memory(lin, x)
    assert fwd.baseline_mib * MIB == params + x.numel() * 4
    assert _extra_bytes(fwd) == 64 * 1000 * 4  # just the output
    step = measure_memory(lin, x, train_step=True)
    # Peak is at the SGD step: grads + fresh momentum buffers (+ the 4-byte loss); the activations are gone.
    assert _extra_bytes(step) == pytest.approx(2 * params, abs=64)
    assert step.train_step and step.as_dict()["peak_mem_mib"] == step.peak_mem_mib and step.as_dict()["mem_train_step"]
    # The measurement leaves the model as it found it.
    assert torch.equal(lin.weight, before) and lin.weight.grad is None


def test_batch_size_repeats_the_clip():
    mr = measure_memory(nn.Identity(), torch.zeros(1, 2, 3, 4, 4), batch_size=5)
    assert mr.batch_size == 5 and mr.baseline_mib * MIB == 5 * 2 * 3 * 16 * 4


def test_oom_raises_measure_oom():
    class Hog(nn.Module):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB")

    with pytest.raises(MeasureOOM, match="batch_size=8"):
        measure_memory(Hog(), torch.zeros(1, 3), batch_size=8)


def test_other_errors_propagate_unchanged():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        measure_memory(Broken(), torch.zeros(1))


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="cuda.is_available"):
        measure_memory(nn.Identity(), torch.zeros(1), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_peak_counts_known_allocation():
    mr = measure_memory(_Pattern().cuda(), torch.zeros(10, device="cuda"), device="cuda")
    assert mr.method == "cuda_max_memory_allocated"
    assert _extra_bytes(mr) >= 12_000_000 and mr.reserved_mib >= mr.peak_mem_mib


def test_allocator_method_agrees_on_known_patterns():
    """torch.profiler's allocator events see the same bytes when every allocation is a tensor."""
    x = torch.zeros(10)
    a = measure_memory(_Pattern(), x, cpu_method="allocator")
    assert a.method == "cpu_allocator_profiler" and _extra_bytes(a) == pytest.approx(12_000_000, abs=64)
    lin, xl = nn.Linear(1000, 1000), torch.randn(64, 1000)
    t = measure_memory(lin, xl, train_step=True)
    a = measure_memory(lin, xl, train_step=True, cpu_method="allocator")
    assert _extra_bytes(a) == pytest.approx(_extra_bytes(t), abs=64)


def test_allocator_method_includes_kernel_scratch():
    # Convolutions allocate oneDNN/im2col scratch that never becomes a tensor: allocator peak >= tensors.
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    x = torch.randn(2, 3, 32, 32)
    t = measure_memory(net, x)
    a = measure_memory(net, x, cpu_method="allocator")
    assert _extra_bytes(t) >= 2 * 16 * 32 * 32 * 4  # at least one activation is live
    assert _extra_bytes(a) >= _extra_bytes(t)


def test_parameter_free_module_train_step():
    mr = measure_memory(_Pattern(), torch.zeros(10), train_step=True)
    assert _extra_bytes(mr) == pytest.approx(12_000_000, abs=64)


def test_repeated_measurements_leave_no_finalizers_behind():
    import weakref

    lin, x = nn.Linear(10, 10), torch.randn(2, 10)
    measure_memory(lin, x)
    alive = len(weakref.finalize._registry)  # type: ignore[attr-defined]
    for _ in range(5):
        measure_memory(lin, x)
    assert len(weakref.finalize._registry) <= alive  # type: ignore[attr-defined]
