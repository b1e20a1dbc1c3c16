"""Latency harness: order statistics, result fields, and agreement with torch.utils.benchmark."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench.measure import LatencySettings, MeasureOOM, measure_latency
from bench.measure.stats import median_ci, percentile


def test_median_ci_matches_binomial_order_statistics():
    scipy_stats = pytest.importorskip("scipy.stats")
    for n in (6, 10, 20, 50, 101, 1000):
        xs = list(range(1, n + 1))
        lo, hi = median_ci(xs)
        l = int(lo)  # samples are their own ranks
        assert hi == n + 1 - l  # symmetric order statistics
        coverage = 1 - 2 * scipy_stats.binom.cdf(l - 1, n, 0.5)
        assert coverage >= 0.95
        # one step narrower would fall below 95 %: the interval is the tightest such pair
        assert 1 - 2 * scipy_stats.binom.cdf(l, n, 0.5) < 0.95
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)  # n < 6: the range
    assert all(math.isnan(v) for v in median_ci([]))


def test_percentiles():
    xs = [float(i) for i in range(101)]
    assert percentile(xs, 50) == 50 and percentile(xs, 90) == 90 and percentile(xs, 99) == 99


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def test_result_fields_and_batch_sweep():
    m = _small_net()
    clip = torch.randn(1, 3, 16, 16)
    lr = measure_latency(m, clip, LatencySettings(warmup_s=0.2, min_samples=20, min_time_s=0.05, max_time_s=1.0,
                                                  num_threads=1), batch_size=4)
    assert lr.batch_size == 4 and lr.threads == 1 and lr.device == "cpu" and lr.timer == "perf_counter"
    assert lr.n_samples == len(lr.samples_ms) >= 20
    assert lr.latency_ms_ci95[0] <= lr.latency_ms_p50 <= lr.latency_ms_ci95[1]
    assert lr.latency_ms_p50 <= lr.latency_ms_p90 <= lr.latency_ms_p99 <= max(lr.samples_ms)
    assert lr.throughput_clips_s == pytest.approx(4 / (lr.latency_ms_p50 / 1e3))
    assert lr.warmup_iters >= 2
    d = lr.as_dict()
    assert d["latency_ms_p50"] == lr.latency_ms_p50 and d["latency_samples_ms"] == lr.samples_ms
    assert {"latency_ms_ci95_low", "latency_ms_ci95_high", "latency_threads", "latency_spread_warning"} <= set(d)


def test_threads_restored():
    before = torch.get_num_threads()
    measure_latency(_small_net(), torch.randn(1, 3, 8, 8),
                    LatencySettings(warmup_s=0.05, min_samples=5, min_time_s=0.0, num_threads=1))
    assert torch.get_num_threads() == before


def test_sub_stage_is_just_a_module():
    class TwoStage(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flow = nn.Conv2d(3, 2, 3, padding=1)
            self.head = nn.Conv2d(2, 1, 1)

        def forward(self, x):
            return self.head(self.flow(x))

    m = TwoStage()
    stage = measure_latency(m.flow, torch.randn(1, 3, 8, 8), LatencySettings(warmup_s=0.05, min_samples=5, min_time_s=0.0))
    assert stage.n_samples >= 5 and stage.latency_ms_p50 > 0


def test_oom_becomes_measure_oom():
    class Hog(nn.Module):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(MeasureOOM):
        measure_latency(Hog(), torch.zeros(1, 2), batch_size=64)


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="cuda.is_available"):
        measure_latency(nn.Identity(), torch.zeros(1), device="cuda")


def test_bad_amp_is_rejected():
    with pytest.raises(ValueError, match="amp"):
        measure_latency(nn.Identity(), torch.zeros(1), LatencySettings(amp="fp8", warmup_s=0.0))


def test_bf16_autocast_and_channels_last_run():
    lr = measure_latency(_small_net(), torch.randn(1, 3, 16, 16), LatencySettings(
        amp="bf16", channels_last=True, warmup_s=0.05, min_samples=5, min_time_s=0.0))
    assert lr.amp == "bf16" and lr.channels_last and lr.n_samples >= 5


def _timer_median_ms(model, x, min_run_time: float) -> float:
    import torch.utils.benchmark as tb

    timer = tb.Timer("with torch.inference_mode():\n    model(x)", globals={"model": model, "x": x, "torch": torch}, num_threads=1)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def test_latency_agrees_with_torch_utils_benchmark():
    """Same model, same input, same thread count (1), both under inference mode.

    Timer's median is over blocks of many calls, ours over single calls; with the machine to itself the
    two agree within a few percent (per-call harness overhead is ~10 us on a ~2-5 ms call; measured ratios
    0.99-1.01). This 2-core box is shared with other jobs and the *same* measurement jumps between levels
    (1.8, 2.7, 4.3, 5.9, 12 ms seen within minutes) as neighbours come and go, on a timescale of seconds.
    So each Timer run is paired with a harness run right after it (same contention, mostly), and the
    median of five paired ratios -- robust to two pairs split by a load change -- must lie within
    [0.7, 1.4]; one retry. Under load, sets of five pairs gave medians 0.81-1.03, so the band is
    wide enough for this box yet still catches the harness errors that matter, which are factors:
    ms vs s, per batch vs per call (x4 here), timing the warm-up, or missing synchronisation.
    """
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).eval()
    x = torch.randn(4, 3, 64, 64)  # ~2-5 ms on one core of the dev box
    attempts = []
    for _ in range(2):
        ratios = []
        for _ in range(5):
            timer_ms = _timer_median_ms(model, x, 0.2)
            lr = measure_latency(model, x, LatencySettings(num_threads=1, warmup_s=0.2, min_samples=20, min_time_s=0.2,
                                                                 max_time_s=1.0))
            assert lr.threads == 1
            ratios.append(lr.latency_ms_p50 / timer_ms)
        median_ratio = sorted(ratios)[2]
        attempts.append((round(median_ratio, 3), [round(r, 3) for r in ratios]))
        if 0.7 <= median_ratio <= 1.4:
            return
    pytest.fail(f"harness p50 / Timer median, (median of 5 paired ratios, ratios): {attempts}")


def test_channels_last_does_not_leak_into_the_model():
    """The layout change is for the latency measurement only (the memory measurement that follows sees NCHW)."""
    net = _small_net()
    before = {k: v.stride() for k, v in net.state_dict().items()}
    measure_latency(net, torch.randn(1, 3, 16, 16), LatencySettings(channels_last=True, warmup_s=0.0, min_samples=5,
                                                                     min_time_s=0.0, max_time_s=0.5))
    assert {k: v.stride() for k, v in net.state_dict().items()} == before
