"""Measurement engine: FLOPs, parameters, latency, memory and the device's matmul peak.

Each ``count_*``/``measure_*`` returns a frozen dataclass of plain values with ``as_dict()`` giving flat,
unit-named record fields. Nothing here prints; an out-of-memory raises ``MeasureOOM`` (status "oom").

    count_flops(model, inputs)              -> FlopsResult   gmacs (fvcore), gflops_torch (= 2 x MACs)
    count_params(model)                     -> ParamsResult  total, trainable, first_conv, by_module
    measure_latency(model, clip, ...)       -> LatencyResult latency_ms_p50/p90/p99/mean/iqr, ci95, samples
    measure_memory(model, clip, ...)        -> MemoryResult  peak_mem_mib, baseline_mib, reserved_mib
    measure_matmul_peak(device)             -> MatmulPeak    matmul_peak_gflops_s
"""
from ._common import DeviceUnavailable, MeasureOOM, is_oom, resolve_device
from .flops import FLOPS_POLICY, FlopsResult, count_flops
from .hardware import MatmulPeak, achieved_gflops_s, measure_matmul_peak
from .latency import LatencyResult, measure_latency
from .memory import LiveTensorBytes, MemoryResult, measure_memory
from .params import ParamsResult, count_params

__all__ = [
    "DeviceUnavailable", "resolve_device",
    "FLOPS_POLICY",
    "FlopsResult",
    "LatencyResult",
    "LiveTensorBytes",
    "MatmulPeak",
    "MeasureOOM",
    "is_oom",
    "MemoryResult",
    "ParamsResult",
    "achieved_gflops_s",
    "count_flops",
    "count_params",
    "measure_latency",
    "measure_matmul_peak",
    "measure_memory",
]
