"""Inference latency: warm up until stable, then many timed samples; medians, not means.

    model, clip [B, T, C, H, W] --(batch_size? repeat clip[0])--> x
    warm-up: run until the median of the last k runs moves < rel_tol vs the k before (or warmup_s)
    sample:  CPU  perf_counter_ns around each call (thread count recorded)
             CUDA one event pair around each call, synchronised on the end event before the next call,
                  so a sample is one call's device time from an idle queue (batch-1 latency as served)
    report:  p50 / p90 / p99 / mean / IQR in ms, order-statistic 95 % CI of the median, raw samples

The timing settings are one frozen ``LatencySettings`` (warm-up, sampling budget, amp, channels_last, compile,
threads). Works on any module, so a stage can be timed alone: for two-stream models ``measure_latency(model.flow,
clip)`` times the Horn--Schunck flow (``[B, T, C, H, W] -> [B, T-1, 2, H, W]``); the flow share is
``flow.latency_ms_p50 / end_to_end.latency_ms_p50``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

from ._common import as_tuple, channels_last_for, oom_guard, resolve_device
from .stats import median_ci, percentile

SPREAD_WARN_IQR_OVER_MEDIAN = 0.1  # torch.utils.benchmark.Measurement warns at the same ratio
_MIN_SAMPLES_FLOOR = 5  # fewer than this and no percentile means anything
_MAX_CUDA_SAMPLES = 10_000  # events are allocated up front; a 10 us kernel would otherwise ask for 100k


@dataclass(frozen=True)
class LatencyResult:
    """Per-call latency of ``model(x)`` for one batch (milliseconds)."""

    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_mean: float
    latency_ms_iqr: float
    latency_ms_ci95: tuple[float, float]  # distribution-free 95 % CI of the median (low, high)
    n_samples: int
    samples_ms: list[float] = field(repr=False)  # raw, in run order, for significance tests
    threads: int  # torch.get_num_threads() while timing (intra-op)
    batch_size: int
    throughput_clips_s: float  # batch_size / p50
    device: str
    warmup_iters: int
    warmup_stable: bool  # False: the warm-up budget ran out before the median settled
    spread_warning: bool  # IQR / median > 0.1: noisy machine or bimodal timings; treat with care
    timer: str  # "perf_counter" | "cuda_event"
    amp: str | None = None
    channels_last: bool = False
    compiled: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Flat record fields; ``latency_samples_ms`` stays a list (raw samples)."""
        return {
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p90": self.latency_ms_p90,
            "latency_ms_p99": self.latency_ms_p99,
            "latency_ms_mean": self.latency_ms_mean,
            "latency_ms_iqr": self.latency_ms_iqr,
            "latency_ms_ci95_low": self.latency_ms_ci95[0],
            "latency_ms_ci95_high": self.latency_ms_ci95[1],
            "latency_n_samples": self.n_samples,
            "latency_samples_ms": list(self.samples_ms),
            "latency_threads": self.threads,
            "batch_size": self.batch_size,
            "throughput_clips_s": self.throughput_clips_s,
            "latency_device": self.device,
            "latency_warmup_iters": self.warmup_iters,
            "latency_warmup_stable": self.warmup_stable,
            "latency_spread_warning": self.spread_warning,
            "latency_timer": self.timer,
            "latency_amp": self.amp,
            "latency_channels_last": self.channels_last,
            "latency_compiled": self.compiled,
        }


@dataclass(frozen=True)
class LatencySettings:
    """How ``measure_latency`` times a call: the stopping rule of its warm-up and sampling, and the execution
    knobs. Grouped as ``torch.utils.benchmark`` keeps them apart from the statement (``Timer(num_threads)``,
    ``adaptive_autorange(threshold, min_run_time, max_run_time)``) and timm's ``benchmark.py`` keeps its
    runner's (warm-up / bench iterations, precision, channels_last, compile) apart from the model: what is
    timed and where (model, clip, ``batch_size``, ``device``) stay ``measure_latency``'s own arguments.

    warm-up   one call outside any budget (compilation, lazy init), then until the median of the last
              ``warmup_window`` calls is within ``warmup_rel_tol`` of the window before -- at least
              ``2 * warmup_window`` calls -- or ``warmup_s`` is spent
    sampling  until ``min_samples`` samples *and* ``min_time_s`` are reached, or ``max_time_s`` runs out
              (never fewer than 5 samples)
    knobs     ``amp`` (None | "fp16" | "bf16" autocast), ``channels_last`` (4-D weights and inputs NHWC, for
              the measurement only), ``compile`` (``torch.compile``), ``num_threads`` (torch's intra-op
              threads for the measurement only; 1 on a shared CPU: oversubscribed OpenMP threads stall for
              whole scheduler quanta)
    """

    warmup_s: float = 2.0
    warmup_window: int = 5
    warmup_rel_tol: float = 0.05
    min_samples: int = 30
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    num_threads: int | None = None


DEFAULT_SETTINGS = LatencySettings()


def batch_of(clip: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """``clip [B, ...]`` -> ``[batch_size, ...]`` by repeating ``clip[0]`` (contiguous, own memory)."""
    if batch_size is None or batch_size == clip.shape[0]:
        return clip
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return clip[:1].expand(batch_size, *clip.shape[1:]).contiguous()


def _amp_context(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}
    if amp not in dtypes:
        raise ValueError(f"amp must be None, 'fp16' or 'bf16', got {amp!r}")
    return torch.autocast(device_type=device.type, dtype=dtypes[amp])


def prepare(
    model: nn.Module,
    inputs: torch.Tensor | tuple,
    *,
    device: torch.device,
    batch_size: int | None,
    channels_last: bool,
    compile: bool,
) -> tuple[Callable[..., Any], tuple, int]:
    """Move model and inputs, apply the knobs; returns ``(callable, args, batch)``.

    ``channels_last`` converts 4-D inputs (NHWC; ``measure_latency`` converts the model's 4-D weights for the
    measurement only, see ``channels_last_for``); a 5-D clip ``[B, T, C, H, W]``
    keeps its layout (it is not NCDHW) -- the convs then produce channels-last maps from their weights.
    """
    args = as_tuple(inputs)
    first = batch_of(args[0], batch_size)
    args = (first, *args[1:])
    model = model.to(device).eval()
    args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
    if channels_last:  # the model itself: measure_latency converts it (and restores it after)
        args = tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, torch.Tensor) and a.dim() == 4 else a for a in args)
    fn: Callable[..., Any] = torch.compile(model) if compile else model
    return fn, args, int(first.shape[0])


def measure_latency(
    model: nn.Module,
    clip: torch.Tensor | tuple,
    settings: LatencySettings = DEFAULT_SETTINGS,
    *,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
) -> LatencyResult:
    """Time ``model(clip)`` under ``torch.inference_mode()``, as ``settings`` say (``LatencySettings``: warm-up,
    sampling budget, amp, channels_last, compile, threads).

    ``clip``: ``[B, T, C, H, W]`` (or any input / tuple of inputs); ``batch_size`` replaces B by repeating
    ``clip[0]`` (1 for latency, larger for throughput). The model is moved to ``device`` and put in eval mode
    (in place). Raises ``MeasureOOM`` when the batch does not fit.
    """
    dev = torch.device(resolve_device(device))
    old_threads = torch.get_num_threads()
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    try:
        with oom_guard(f"latency at batch_size={batch_size}"), channels_last_for(model, settings.channels_last):
            fn, args, batch = prepare(model, clip, device=dev, batch_size=batch_size, channels_last=settings.channels_last,
                                      compile=settings.compile)
            with torch.inference_mode(), _amp_context(dev, settings.amp):
                warm_iters, stable, per_call_s = _warm_up(fn, args, dev, settings)
                if dev.type == "cuda":
                    samples = _sample_cuda(fn, args, per_call_s, settings)
                else:
                    samples = _sample_cpu(fn, args, settings)
        threads = torch.get_num_threads()
    finally:
        if settings.num_threads is not None:
            torch.set_num_threads(old_threads)

    return LatencyResult(
        **_sample_stats(samples, batch),
        threads=threads,
        batch_size=batch,
        device=str(dev),
        warmup_iters=warm_iters,
        warmup_stable=stable,
        timer="cuda_event" if dev.type == "cuda" else "perf_counter",
        amp=settings.amp,
        channels_last=settings.channels_last,
        compiled=settings.compile,
    )


def _sample_stats(samples: list[float], batch: int) -> dict[str, Any]:
    p50 = percentile(samples, 50)
    iqr = percentile(samples, 75) - percentile(samples, 25)
    return dict(
        latency_ms_p50=p50,
        latency_ms_p90=percentile(samples, 90),
        latency_ms_p99=percentile(samples, 99),
        latency_ms_mean=sum(samples) / len(samples),
        latency_ms_iqr=iqr,
        latency_ms_ci95=median_ci(samples, 0.95),
        n_samples=len(samples),
        samples_ms=list(samples),
        throughput_clips_s=batch / (p50 / 1e3) if p50 > 0 else float("inf"),
        spread_warning=p50 > 0 and iqr / p50 > SPREAD_WARN_IQR_OVER_MEDIAN,
    )


def summarize(samples: list[float], *, like: LatencyResult) -> LatencyResult:
    """``like`` with its statistics recomputed from ``samples`` (e.g. several rounds' samples pooled)."""
    return replace(like, **_sample_stats(samples, like.batch_size))


def _call_synced(fn, args, dev: torch.device) -> float:
    """One call, seconds, host clock; synchronises CUDA so the time is the device's too."""
    t0 = time.perf_counter()
    fn(*args)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


def _warm_up(fn, args, dev, settings: LatencySettings) -> tuple[int, bool, float]:
    """Run until ``median(last k) / median(previous k) - 1`` is within ``rel_tol`` or ``warmup_s`` passes
    (``k = settings.warmup_window``, ``rel_tol = settings.warmup_rel_tol``).

    Returns (iterations including the first, stable?, median seconds per call of the last window).
    """
    warmup_s, k, rel_tol = settings.warmup_s, settings.warmup_window, settings.warmup_rel_tol
    # The first call (torch.compile, lazy modules, backend autotuning) runs outside the budget: a 15 s
    # compile must not eat the warm-up that follows it. It is not part of the stability windows either.
    _call_synced(fn, args, dev)
    times: list[float] = []
    start = time.perf_counter()
    stable = False
    while True:
        times.append(_call_synced(fn, args, dev))
        if len(times) >= 2 * k:
            last = sorted(times[-k:])[k // 2]
            prev = sorted(times[-2 * k : -k])[k // 2]
            if abs(last / prev - 1.0) <= rel_tol:
                stable = True
                break
        # On CUDA the budget never ends the warm-up before 2k calls: cuDNN autotuning (cudnn.benchmark) and
        # the caching allocator settle over the first calls of a shape, not within a time slice.
        if time.perf_counter() - start >= warmup_s and len(times) >= (2 * k if dev.type == "cuda" else 2):
            break
    window = sorted(times[-k:])
    return len(times) + 1, stable, window[len(window) // 2]


def _sample_cpu(fn, args, settings: LatencySettings) -> list[float]:
    min_samples, min_time_s, max_time_s = settings.min_samples, settings.min_time_s, settings.max_time_s
    samples: list[float] = []
    clock = time.perf_counter_ns
    start = clock()
    while True:
        t0 = clock()
        fn(*args)
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        elapsed = (t1 - start) / 1e9
        if len(samples) >= min_samples and elapsed >= min_time_s:
            break
        if elapsed >= max_time_s and len(samples) >= _MIN_SAMPLES_FLOOR:
            break
    return samples


def _sample_cuda(fn, args, per_call_s: float, settings: LatencySettings) -> list[float]:
    """An event pair around each call and a synchronise on its end event: each sample is one call from an
    idle queue (launch overhead included, no overlap with the previous call). The sample count is planned
    from the warm-up's per-call time."""
    min_samples, min_time_s, max_time_s = settings.min_samples, settings.min_time_s, settings.max_time_s
    planned = max(min_samples, int(min_time_s / max(per_call_s, 1e-6)) + 1)
    planned = min(planned, max(_MIN_SAMPLES_FLOOR, int(max_time_s / max(per_call_s, 1e-6))), _MAX_CUDA_SAMPLES)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples: list[float] = []
    for _ in range(planned):
        start.record()
        fn(*args)
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return samples
