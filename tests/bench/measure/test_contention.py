"""Injected contention: busy processes on every core during part of the measurement.

What must hold (issue 15): each affected latency is either within 25 % of its quiet value or flagged. The
test does not depend on the machine being idle: a quiet reference that was itself flagged is no reference
(the box may be shared), and a contended run that is flagged passes by being flagged. What it does require
unconditionally is that the windows we made busy are *seen* as contended -- the detection is the claim.
"""
import os
import subprocess
import sys
import time

import pytest
import torch

from bench.measure import LatencySettings
from bench.measure.rounds import LatencyJob, measure_rounds
from fusion_models import build_model
from fusion_models.clip import ClipSpec

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="machine readings come from Linux /proc")

MODELS = ("single_frame", "pool_avg", "early_fusion")
CLIP = ClipSpec(frames=4, height=32, width=32)


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _jobs():
    torch.manual_seed(0)
    # One thread: an oversubscribed OpenMP team stalls for whole scheduler quanta (250 ms calls on a loaded
    # 2-core box), which would make this test slow, not more telling.
    settings = LatencySettings(warmup_s=0.05, min_samples=15, max_time_s=0.6, num_threads=1)
    return [LatencyJob(m, build_model(m, clip=CLIP, num_classes=8, backbone="small_cnn", width=16).eval(),
                       CLIP.dummy(1), settings) for m in MODELS]


class Busy:
    """Spinning subprocesses -- one per core plus one, so every core is busy even next to our own thread --
    started at the first round of the first pass and stopped before its third round."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.busy_rounds: set[tuple[str, int]] = set()  # (job, round) of the first pass timed while busy

    def __call__(self, event: str, info: dict) -> None:
        if event != "round_start" or info["pass"] != 0:
            return
        if info["round"] == 0 and info["job"] == MODELS[0]:
            self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(_cpus() + 1)]
            time.sleep(0.5)  # interpreters started and spinning before the window opens
        if info["round"] == 2 and info["job"] == MODELS[0]:
            self.stop()
        if self.procs:
            self.busy_rounds.add((info["job"], info["round"]))

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def test_injected_contention_is_flagged_or_harmless():
    quiet = {r.name: r for r in measure_rounds(_jobs(), rounds=3)}
    busy = Busy()
    try:
        loud = {r.name: r for r in measure_rounds(_jobs(), rounds=3, progress=busy)}
    finally:
        busy.stop()
    quiet_after = {r.name: r for r in measure_rounds(_jobs(), rounds=3)}
    assert busy.busy_rounds == {(m, r) for m in MODELS for r in (0, 1)}
    for m in MODELS:
        res = loud[m]
        first_pass = res.discarded or res.rounds  # a re-measure keeps the first pass as `discarded`
        for r in first_pass:
            if (m, r.index) in busy.busy_rounds:
                assert r.contention is not None, (m, r.index, r.machine)
        assert res.remeasured  # a contended round always earns a second pass
        # "ok" must mean the quiet machine's latency: within 25 % of the quiet passes before and after. Two
        # quiet passes, because this VM's speed itself moves (single_frame 0.40 vs 0.62 ms at 1 thread, both
        # passes "ok", seconds apart): the loud pass is compared with the range the quiet machine showed.
        refs = (quiet[m], quiet_after[m])
        lo = min(r.latency.latency_ms_p50 for r in refs)
        hi = max(r.latency.latency_ms_p50 for r in refs)
        close = 0.75 * lo <= res.latency.latency_ms_p50 <= 1.25 * hi
        assert res.timing_quality != "ok" or any(r.timing_quality != "ok" for r in refs) or close, (
            m, res.latency.latency_ms_p50, lo, hi, res.timing_reason)
