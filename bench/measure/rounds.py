"""Interleaved latency rounds: a slow window of the machine hits every model, not one.

    jobs A B C, rounds R:   A B C | A B C | A B C          each cell: measure_latency (own warm-up) inside
                                                            a MachineWindow; keep its samples and median
    per job:  spread = max(round medians) / min(round medians) - 1
              contended round = its MachineWindow says others wanted our cores (hardware.MachineState)
    re-measure (once, again interleaved, only the jobs that need it): spread > ROUND_SPREAD_BOUND or a
              contended round; the new rounds replace the old ones
    flag:     timing_quality = "contended" (a kept round was contended) | "noisy" (spread still > bound)
              | "noisy" (re-measured rounds disagree with the first pass's uncontended rounds by > bound)
              | "ok", with timing_reason saying which round and why

The kept rounds' samples are pooled into one ``LatencyResult`` (p50, p90, CI, raw samples for the tests of
``bench compare``), so existing record columns keep their meaning.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from torch import nn

from .hardware import MachineState, MachineWindow
from .latency import (
    DEFAULT_SETTINGS,
    LatencyResult,
    LatencySettings,
    measure_latency,
    summarize,
)

ROUND_SPREAD_BOUND = 0.10  # round medians may differ by 10 % (the IQR / median bound of torch's Measurement)
DEFAULT_ROUNDS = 3         # the median of 3 rounds survives one slow window
QUALITIES = ("ok", "noisy", "contended")


@dataclass
class LatencyJob:
    """One latency measurement to interleave: ``model(clip)`` on ``device``, timed as ``settings`` say (the
    whole measurement's budget; each round gets its share, ``round_budget``)."""

    name: str
    model: nn.Module | Callable[[], nn.Module]  # a callable is built on first use (the runner's lazy build)
    clip: Any
    settings: LatencySettings = DEFAULT_SETTINGS
    device: str = "cpu"


@dataclass(frozen=True)
class Round:
    """One round of one job: its samples' median and the machine during it."""

    index: int
    pass_: int  # 0 = first pass, 1 = the re-measure
    median_ms: float
    latency: LatencyResult = field(repr=False)
    machine: MachineState

    @property
    def contention(self) -> str | None:
        return self.machine.contention


@dataclass
class RoundsResult:
    """A job's pooled latency over its kept rounds, their medians, the machine, and the quality flag."""

    name: str
    latency: LatencyResult | None
    rounds: list[Round]          # the kept rounds
    discarded: list[Round]       # the first pass of a re-measured job
    timing_quality: str
    timing_reason: str | None
    remeasured: bool
    error: BaseException | None = None

    @property
    def spread(self) -> float:
        """max / min of the kept round medians, minus 1."""
        return _spread(self.rounds)

    def as_dict(self) -> dict[str, Any]:
        """Record fields: the latency columns, ``latency_round_*``, ``timing_*`` and the machine (worst round)."""
        if self.latency is None:
            raise RuntimeError(f"{self.name}: no latency (failed: {self.error!r})")
        out = self.latency.as_dict()
        worst = max(self.rounds, key=lambda r: ((r.machine.other_cores or 0.0) + (r.machine.steal_cores or 0.0),
                                                r.machine.psi_cpu_some or 0.0))
        out.update(worst.machine.as_dict())
        out.update({
            "latency_rounds": len(self.rounds),
            "latency_round_medians_ms": [r.median_ms for r in self.rounds],
            "latency_round_spread": self.spread,
            "latency_round_contended": [r.contention is not None for r in self.rounds],
            "latency_remeasured": self.remeasured,
            "latency_discarded_round_medians_ms": [r.median_ms for r in self.discarded],
            "timing_quality": self.timing_quality,
            "timing_reason": self.timing_reason,
        })
        return out


def _spread(rounds: list[Round]) -> float:
    meds = [r.median_ms for r in rounds if r.median_ms > 0]
    return max(meds) / min(meds) - 1.0 if len(meds) >= 2 else 0.0


def round_budget(settings: LatencySettings, rounds: int, index: int) -> LatencySettings:
    """One round's share of a measurement budget: ``min_samples``, ``min_time_s``, ``max_time_s`` and (after
    the first round, whose warm-up settles the model) ``warmup_s`` divided by ``rounds``; never fewer than 5
    samples a round, so every round has a median."""
    max_time_s = settings.max_time_s / rounds
    return replace(
        settings,
        min_samples=max(5, -(-settings.min_samples // rounds)),
        min_time_s=min(settings.min_time_s / rounds, max_time_s),
        max_time_s=max_time_s,
        # after the first round another model ran in between and evicted the caches: re-warm, but briefly
        warmup_s=settings.warmup_s / rounds if index > 0 else settings.warmup_s,
    )


def measure_rounds(
    jobs: list[LatencyJob],
    *,
    rounds: int = DEFAULT_ROUNDS,
    bound: float = ROUND_SPREAD_BOUND,
    remeasure: bool = True,
    progress: Callable[[str, dict], None] | None = None,
    nvml: Any = None,
) -> list[RoundsResult]:
    """Measure ``jobs`` in ``rounds`` interleaved rounds (A B C A B C ...), re-measure the ones whose rounds
    disagree by more than ``bound`` or ran contended, and flag what stays doubtful. A job that raises (OOM,
    a broken model) is taken out of later rounds and returned with ``error`` set; the others go on.
    ``progress(event, info)``: ``round_start`` / ``round_end`` with ``pass``, ``round`` and ``job``."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    emit = progress or (lambda event, info: None)
    models: dict[str, nn.Module] = {}
    errors: dict[str, BaseException] = {}
    first = _run_pass(jobs, rounds, 0, models, errors, emit, nvml)
    redo = [j for j in jobs if j.name not in errors
            and (_spread(first[j.name]) > bound or any(r.contention for r in first[j.name]))]
    second = _run_pass(redo, rounds, 1, models, errors, emit, nvml) if remeasure and redo else {}
    out = []
    for job in jobs:
        if job.name in errors or not first.get(job.name):  # failed, or a factory that built None (nothing to time)
            out.append(RoundsResult(job.name, None, [], [], "ok", None, False, error=errors.get(job.name)))
            continue
        kept, discarded = (second[job.name], first[job.name]) if job.name in second else (first[job.name], [])
        quality, reason = _quality(kept, bound, remeasured=bool(discarded), first=discarded)
        lat = summarize([s for r in kept for s in r.latency.samples_ms], like=kept[0].latency)
        out.append(RoundsResult(job.name, lat, kept, discarded, quality, reason, bool(discarded)))
    return out


def _run_pass(jobs, rounds, pass_, models, errors, emit, nvml) -> dict[str, list[Round]]:
    out: dict[str, list[Round]] = {j.name: [] for j in jobs}
    for r in range(rounds):
        for job in jobs:
            if job.name in errors:
                continue
            info = {"pass": pass_, "round": r, "rounds": rounds, "job": job.name}
            emit("round_start", info)
            try:
                if job.name not in models:
                    models[job.name] = job.model() if not isinstance(job.model, nn.Module) else job.model
                if models[job.name] is None:
                    continue
                settings = round_budget(job.settings, rounds, r if pass_ == 0 else 1)
                with MachineWindow(job.device, nvml=nvml) as win:
                    lat = measure_latency(models[job.name], job.clip, settings, device=job.device)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - one broken model never stops the others' rounds
                errors[job.name] = exc
                emit("round_end", {**info, "error": repr(exc)})
                continue
            # the window closed after measure_latency restored the caller's thread count: use the measurement's
            rnd = Round(r, pass_, lat.latency_ms_p50, lat, replace(win.state, threads=lat.threads))
            out[job.name].append(rnd)
            emit("round_end", {**info, "median_ms": rnd.median_ms, "contention": rnd.contention})
    return out


REMEASURED_OK = "re-measured after the first pass disagreed or was contended"  # the only reason an ``ok`` job carries


def _quality(kept: list[Round], bound: float, *, remeasured: bool, first: list[Round] = ()) -> tuple[str, str | None]:
    """``(timing_quality, timing_reason)`` of a job's kept rounds. After a re-measure, the first pass's
    uncontended rounds are a cross-check: a second pass that agrees with itself but not with them (a level
    shift between passes, which within-pass agreement cannot see) is ``noisy``."""
    after = " after a re-measure" if remeasured else ""
    bad = [r for r in kept if r.contention]
    if bad:
        r = bad[0]
        more = f" (and {len(bad) - 1} more round{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        return "contended", f"round {r.index + 1} of {len(kept)}{after}: {r.contention}{more}"
    spread = _spread(kept)
    if spread > bound:
        meds = [r.median_ms for r in kept]
        return "noisy", (f"round medians {min(meds):.3g}-{max(meds):.3g} ms disagree by {100 * spread:.0f} % "
                         f"(bound {100 * bound:.0f} %){after}")
    clean = sorted(r.median_ms for r in first if not r.contention)
    if clean:
        ref, now = clean[len(clean) // 2], sorted(r.median_ms for r in kept)[len(kept) // 2]
        shift = max(now, ref) / min(now, ref) - 1
        if shift > bound:
            return "noisy", (f"re-measured rounds ({now:.3g} ms) disagree with the first pass's uncontended rounds "
                             f"({ref:.3g} ms) by {100 * shift:.0f} % (bound {100 * bound:.0f} %)")
    return "ok", (REMEASURED_OK if remeasured else None)


def worst_quality(*flags: tuple) -> tuple[str, str | None]:
    """The worst of several ``(quality, reason[, what])`` flags (contended > noisy > ok), reasons joined."""
    rank = {q: i for i, q in enumerate(QUALITIES)}
    worst = max((f[0] for f in flags), key=lambda q: rank.get(q, 0))
    reasons = [(f"{f[2]}: " if len(f) > 2 else "") + f[1] for f in flags if f[0] != "ok" and f[1]]
    if worst == "ok":
        reasons = [(f"{f[2]}: " if len(f) > 2 else "") + f[1] for f in flags if f[1]]
    return worst, "; ".join(reasons) or None
