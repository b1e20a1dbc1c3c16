"""Interleaved latency rounds, machine state and timing_quality flags (bench.measure.rounds / hardware)."""
import os
import time
import types

import pytest
import torch
from torch import nn

import bench.measure.rounds as rounds_mod
from bench.measure import latency
from bench.measure.hardware import MachineState, MachineWindow, gpu_state
from bench.measure.rounds import LatencyJob, measure_rounds, round_budget, worst_quality


def _state(other=0.0, psi=0.0, cpus=2, threads=2, gpu=None):
    return MachineState(wall_s=0.1, cpus=cpus, threads=threads, own_cpu_s=0.2, other_cores=other, steal_cores=0.0,
                        psi_cpu_some=psi, procs_running=2, loadavg_1m=0.1, cpu_mhz=2400.0, gpu=gpu or {})


# ------------------------------------------------------------------------------------- machine state
def test_contention_rule():
    assert _state().contention is None
    assert "waited for a CPU 50 %" in _state(psi=0.5).contention
    assert "other processes used 1.00 of 2 cores" in _state(other=1.0).contention
    # one thread on two cores: a neighbour on the free core is not contention, two are
    assert _state(other=1.0, threads=1).contention is None
    assert _state(other=1.9, threads=1).contention is not None
    assert _state(psi=None, other=None).contention is None  # unreadable: unknown, never guessed as contended
    assert "1 other process(es) on the GPU" in _state(gpu={"gpu_other_processes": 1}).contention


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="machine readings come from Linux /proc")
def test_machine_window_sees_our_own_work_as_ours():
    # spin until this process has burnt 0.1 s of CPU (not 0.2 s of wall: on a loaded box that may be 0.01 s of CPU)
    with MachineWindow("cpu") as w:
        t0, c0 = time.perf_counter(), time.process_time()
        while time.process_time() - c0 < 0.1 and time.perf_counter() - t0 < 30:
            pass
        burnt = time.process_time() - c0
    s = w.state
    assert burnt >= 0.1, "the machine gave this process no CPU for 30 s"
    assert s.wall_s >= burnt * 0.9 and s.own_cpu_s >= 0.05 and s.cpus >= 1 and s.threads == torch.get_num_threads()
    assert s.other_cores is not None and s.other_cores >= 0
    d = s.as_dict()
    assert {"machine_other_cores", "machine_psi_cpu_some", "machine_cpu_mhz", "cudnn_benchmark"} <= set(d)


class _FakeNVML:
    """pynvml's API surface that gpu_state uses, with fixed readings (no GPU here)."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, pids):
        self.pids = pids
        self.inited = False

    def nvmlInit(self):
        self.inited = True

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("h", i)

    def nvmlDeviceGetClockInfo(self, h, which):
        return {1: 1980, 2: 2619}[which]

    def nvmlDeviceGetTemperature(self, h, which):
        return 41

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=97, memory=30)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [types.SimpleNamespace(pid=p) for p in self.pids]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        return []


def test_gpu_state_reads_nvml_and_counts_other_processes():
    nvml = _FakeNVML([os.getpid(), 4242])
    g = gpu_state(torch.device("cpu"), nvml=nvml)
    assert nvml.inited
    assert (g["gpu_sm_clock_mhz"], g["gpu_mem_clock_mhz"], g["gpu_temp_c"], g["gpu_util_pct"]) == (1980, 2619, 41, 97)
    assert g["gpu_other_processes"] == 1  # our own context is not "another process"
    assert g["cudnn_benchmark"] == torch.backends.cudnn.benchmark


def test_gpu_state_without_nvml_leaves_fields_unknown():
    g = gpu_state(torch.device("cpu"))
    assert g["gpu_sm_clock_mhz"] is None and g["gpu_other_processes"] is None


def test_cuda_sampling_synchronises_each_call(monkeypatch):
    """The CUDA protocol without a GPU: events around each call and a synchronise before the next call."""
    log = []

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing
            self.t = None

        def record(self):
            log.append("record")
            self.t = len(log)

        def synchronize(self):
            log.append("sync")

        def elapsed_time(self, other):
            return float(other.t - self.t)

    monkeypatch.setattr(torch.cuda, "Event", Event)
    samples = latency._sample_cuda(lambda: log.append("call"), (), 0.01,
                                   latency.LatencySettings(min_samples=3, min_time_s=0.0, max_time_s=0.05))
    assert samples == [2.0] * 3  # start -> call -> end, each timed on its own
    assert log == ["record", "call", "record", "sync"] * 3


# ------------------------------------------------------------------------------------ rounds, scripted
class _Tagged(nn.Identity):
    def __init__(self, tag):
        super().__init__()
        self.tag = tag


@pytest.fixture
def scripted(monkeypatch):
    """measure_latency returns scripted medians per (model, call); every window quiet unless listed."""
    template = latency.measure_latency(nn.Identity(), torch.zeros(1),
                                       latency.LatencySettings(warmup_s=0.0, min_samples=5, max_time_s=0.01))
    script: dict[str, list[float]] = {}
    contended_calls: set[int] = set()
    order: list[str] = []

    def fake_measure(model, clip, settings, **kw):
        order.append(model.tag)
        if script[model.tag] == "boom":
            raise RuntimeError("broken on purpose")
        med = script[model.tag].pop(0)
        return latency.summarize([med] * 5, like=template)

    class Window:
        def __init__(self, device="cpu", nvml=None):
            self.state = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.state = _state(other=1.5 if len(order) - 1 in contended_calls else 0.0)

    monkeypatch.setattr(rounds_mod, "measure_latency", fake_measure)
    monkeypatch.setattr(rounds_mod, "MachineWindow", Window)
    return script, contended_calls, order


def _jobs(*tags):
    return [LatencyJob(t, _Tagged(t), torch.zeros(1)) for t in tags]


def test_rounds_interleave_and_agreeing_rounds_are_ok(scripted):
    script, _, order = scripted
    script.update(a=[1.0, 1.02, 0.99], b=[2.0, 2.0, 2.05], c=[3.0, 3.0, 3.0])
    res = measure_rounds(_jobs("a", "b", "c"), rounds=3)
    assert order == ["a", "b", "c"] * 3
    assert [r.timing_quality for r in res] == ["ok"] * 3 and not any(r.remeasured for r in res)
    assert res[0].as_dict()["latency_round_medians_ms"] == [1.0, 1.02, 0.99]
    assert res[0].latency.latency_ms_p50 == 1.0 and res[0].latency.n_samples == 15


def test_disagreeing_rounds_are_remeasured_then_ok_or_noisy(scripted):
    script, _, order = scripted
    script.update(a=[1.0, 1.5, 1.0, 1.0, 1.01, 1.0], b=[2.0, 2.0, 2.0], c=[1.0, 2.0, 1.0, 1.0, 2.0, 1.0])
    res = {r.name: r for r in measure_rounds(_jobs("a", "b", "c"), rounds=3)}
    assert order[9:] == ["a", "c"] * 3  # only the disagreeing ones, again interleaved
    a, b, c = res["a"], res["b"], res["c"]
    assert a.timing_quality == "ok" and a.remeasured and [r.median_ms for r in a.discarded] == [1.0, 1.5, 1.0]
    assert a.latency.latency_ms_p50 == 1.0
    assert b.timing_quality == "ok" and not b.remeasured
    assert c.timing_quality == "noisy" and "disagree by 100 % (bound 10 %) after a re-measure" in c.timing_reason


def test_contended_round_is_remeasured_and_flagged_if_still_contended(scripted):
    script, contended, _ = scripted
    script.update(a=[1.0] * 6, b=[1.0] * 6)
    contended.update({0, 6, 8})  # calls 0-5: a b a b a b; 6-8: a's re-measure (b was clean)
    res = {r.name: r for r in measure_rounds(_jobs("a", "b"), rounds=3)}
    assert res["a"].timing_quality == "contended" and res["a"].remeasured
    assert res["a"].timing_reason.startswith("round 1 of 3 after a re-measure: other processes used 1.50 of 2 cores")
    assert res["b"].timing_quality == "ok"
    assert res["a"].as_dict()["latency_round_contended"] == [True, False, True]


def test_a_failing_job_does_not_stop_the_others(scripted):
    script, _, order = scripted
    script.update(a="boom", b=[1.0, 1.0, 1.0])
    res = {r.name: r for r in measure_rounds(_jobs("a", "b"), rounds=3)}
    assert isinstance(res["a"].error, RuntimeError) and res["a"].latency is None
    assert res["b"].timing_quality == "ok" and order.count("a") == 1


def test_round_budget_and_worst_quality():
    kw = round_budget(latency.LatencySettings(min_samples=20, max_time_s=1.5, warmup_s=0.3), 3, 1)
    assert kw.min_samples == 7 and kw.max_time_s == pytest.approx(0.5) and kw.warmup_s == pytest.approx(0.1)
    assert round_budget(latency.LatencySettings(min_samples=5, warmup_s=0.3), 3, 0).min_samples == 5  # never < 5 a round
    assert round_budget(latency.LatencySettings(warmup_s=0.3), 3, 0).warmup_s == 0.3  # first round: the full warm-up
    assert worst_quality(("ok", None), ("noisy", "x", "flow stage")) == ("noisy", "flow stage: x")
    assert worst_quality(("contended", "y"), ("noisy", "x")) == ("contended", "y; x")
    with pytest.raises(ValueError):
        measure_rounds([], rounds=0)


def test_a_level_shift_between_passes_is_noisy_not_ok():
    """Second pass self-consistent (0.0 % spread) but 60 % above the first pass's uncontended round: noisy."""
    from types import SimpleNamespace as R

    from bench.measure.rounds import _quality

    first = [R(index=0, median_ms=2.0, contention="others on our cores"), R(index=1, median_ms=1.0, contention=None)]
    shifted = [R(index=i, median_ms=1.6, contention=None) for i in range(3)]
    q, why = _quality(shifted, 0.10, remeasured=True, first=first)
    assert q == "noisy" and "uncontended" in why and "60 %" in why
    same = [R(index=i, median_ms=1.05, contention=None) for i in range(3)]
    assert _quality(same, 0.10, remeasured=True, first=first)[0] == "ok"
    assert _quality(shifted, 0.10, remeasured=True, first=first[:1])[0] == "ok"  # no clean round: no cross-check
