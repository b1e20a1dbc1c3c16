"""Measurement engine: FLOPs, parameters, latency, memory and the device's matmul peak.

Each ``count_*``/``measure_*`` returns a frozen dataclass of plain values with ``as_dict()`` giving flat,
unit-named record fields. Nothing here prints; an out-of-memory raises ``MeasureOOM`` (status "oom").

    count_flops(model, inputs)              -> FlopsResult   gmacs (fvcore), gflops_torch (= 2 x MACs)
    count_params(model)                     -> ParamsResult  total, trainable, first_conv, by_module
    measure_latency(model, clip, settings)  -> LatencyResult latency_ms_p50/p90/p99/mean/iqr, ci95, samples
                                               (settings: LatencySettings, warm-up / budget / amp / ...)
    measure_memory(model, clip, ...)        -> MemoryResult  peak_mem_mib, baseline_mib, reserved_mib
    measure_matmul_peak(device)             -> MatmulPeak    matmul_peak_gflops_s
    count_train_step_gmacs(model, clip, y)  -> float         forward + backward GMACs of one training step
"""
from ._common import DeviceUnavailable, MeasureOOM, is_oom, resolve_device
from .accuracy import (
    McNemar, ceiling_verdict, clopper_pearson, holm, holm_adjusted, mcnemar_exact, pack_correct, sample_efficiency,
    unpack_correct, wilson_half_width, wilson_interval,
)
from .flops import FLOPS_POLICY, FlopsResult, count_flops, count_train_step_gmacs
from .hardware import MatmulPeak, achieved_gflops_s, measure_matmul_peak
from .latency import LatencyResult, LatencySettings, measure_latency
from .memory import LiveTensorBytes, MemoryResult, measure_memory
from .params import ParamsResult, count_params

__all__ = [
    "DeviceUnavailable", "resolve_device",
    "FLOPS_POLICY",
    "FlopsResult",
    "LatencyResult",
    "LatencySettings",
    "LiveTensorBytes",
    "MatmulPeak",
    "MeasureOOM",
    "is_oom",
    "MemoryResult",
    "ParamsResult",
    "achieved_gflops_s",
    "count_flops",
    "count_train_step_gmacs",
    "McNemar",
    "ceiling_verdict",
    "clopper_pearson",
    "holm_adjusted",
    "wilson_half_width",
    "holm",
    "mcnemar_exact",
    "pack_correct",
    "sample_efficiency",
    "unpack_correct",
    "wilson_interval",
    "count_params",
    "measure_latency",
    "measure_matmul_peak",
    "measure_memory",
]
