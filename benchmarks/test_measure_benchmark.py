"""Harness overhead: how long measuring one model takes, end to end and per stage.

Run: ``make bench`` (``pytest benchmarks --benchmark-only``). The model is the registered ``single_frame``
at the default clip (``[1, 8, 3, 32, 32]``), so the numbers are the harness's cost, not a big model's.
Latency sampling runs for a fixed budget by design; its *overhead* is wall time minus the time inside the
timed calls, reported per sample in ``extra_info``.
"""
from __future__ import annotations

import time

import pytest
import torch

from bench.measure import LatencySettings, count_flops, count_params, measure_latency, measure_memory

LATENCY = LatencySettings(warmup_s=0.3, min_samples=30, min_time_s=0.3, max_time_s=2.0)


@pytest.fixture(scope="module")
def model_and_clip():
    """One intra-op thread: on a shared 2-core box two OpenMP threads stall for whole scheduler
    quanta (~4-124 ms per call observed) whenever another process holds a core."""
    from fusion_models import ClipSpec, build_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    clip = ClipSpec()
    yield build_model("single_frame", clip=clip, num_classes=10), clip.dummy(1)
    torch.set_num_threads(before)


def _measure_all(model, x) -> dict:
    rec = {}
    rec.update(count_flops(model, x).as_dict())
    rec.update(count_params(model).as_dict())
    rec.update(measure_latency(model, x, LATENCY).as_dict())
    rec.update(measure_memory(model, x).as_dict())
    rec.update(measure_memory(model, x, train_step=True).as_dict())
    return rec


def test_measure_one_model_end_to_end(benchmark, model_and_clip):
    model, x = model_and_clip
    rec = benchmark.pedantic(_measure_all, args=(model, x), rounds=3, iterations=1, warmup_rounds=1)
    assert rec["gmacs"] > 0 and rec["latency_n_samples"] >= 30


def test_count_flops(benchmark, model_and_clip):
    model, x = model_and_clip
    benchmark.pedantic(count_flops, args=(model, x), rounds=5, iterations=1, warmup_rounds=1)


def test_count_params(benchmark, model_and_clip):
    model, _ = model_and_clip
    benchmark(count_params, model)


@pytest.mark.parametrize("train_step", [False, True], ids=["infer", "train"])
def test_measure_memory(benchmark, model_and_clip, train_step):
    model, x = model_and_clip
    benchmark.pedantic(measure_memory, args=(model, x), kwargs={"train_step": train_step}, rounds=5, iterations=1, warmup_rounds=1)


def test_latency_overhead_per_sample(benchmark, model_and_clip):
    model, x = model_and_clip

    def run():
        t0 = time.perf_counter()
        lr = measure_latency(model, x, LATENCY)
        return time.perf_counter() - t0, lr

    wall, lr = benchmark.pedantic(run, rounds=3, iterations=1)
    # Everything that is not the timed calls themselves (warm-up calls included, they are part of the cost).
    benchmark.extra_info["latency_ms_p50"] = lr.latency_ms_p50
    benchmark.extra_info["samples"] = lr.n_samples
    benchmark.extra_info["warmup_iters"] = lr.warmup_iters
    # Warm-up calls are approximated by p50 each; what remains is the harness's own work per call.
    untimed_ms = wall * 1e3 - sum(lr.samples_ms) - lr.warmup_iters * lr.latency_ms_p50
    benchmark.extra_info["overhead_ms_per_call"] = untimed_ms / (lr.n_samples + lr.warmup_iters)
    assert torch.get_num_threads() >= 1
