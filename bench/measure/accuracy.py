"""Statistics of accuracy on a finite validation set: binomial intervals, exact McNemar, Holm.

Every model of a run is evaluated on the identical validation clips, so per-clip correctness pairs two
models clip by clip; the exact McNemar test uses only the discordant clips (one right, the other wrong):

    b = #(A right, B wrong), c = #(A wrong, B right);  p = P(|Binom(b + c, 1/2) - (b+c)/2| >= |b - (b+c)/2|)

Per-clip correctness travels in a record as ``pack_correct`` output: the bits packed 8 per byte,
base64 text (2500 clips -> 420 characters).
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats


def pack_correct(correct: Sequence[bool] | np.ndarray) -> str:
    """Per-clip correctness (in evaluation order) -> compact base64 text; ``unpack_correct`` inverts it."""
    bits = np.packbits(np.asarray(correct, dtype=bool))
    return base64.b64encode(bits.tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> np.ndarray:
    """The ``n`` correctness bits of ``pack_correct`` output, as a bool array."""
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=np.uint8)
    bits = np.unpackbits(raw)
    if len(bits) < n:
        raise ValueError(f"packed correctness holds {len(bits)} bits, {n} asked for")
    return bits[:n].astype(bool)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (fractions)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, float(centre - half))   # the bounds are exact at k = 0 and k = n
    hi = 1.0 if k == n else min(1.0, float(centre + half))
    return (lo, hi)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of ``k / n``: beta quantiles, conservative."""
    if n <= 0:
        return (math.nan, math.nan)
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return (lo, hi)


def wilson_half_width(p: float, n: int, confidence: float = 0.95) -> float:
    """Half the width of the Wilson interval at accuracy ``p`` on ``n`` clips (sizing the validation set)."""
    lo, hi = wilson_interval(round(p * n), n, confidence)
    return (hi - lo) / 2


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two classifiers on the same clips."""

    n: int            # paired clips
    a_only: int       # b: A right, B wrong
    b_only: int       # c: A wrong, B right
    p_value: float
    acc_a: float
    acc_b: float

    @property
    def diff(self) -> float:
        """``acc_a - acc_b`` (fraction)."""
        return self.acc_a - self.acc_b


def mcnemar_exact(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test on paired per-clip correctness; two-sided."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired correctness needs the same clips, got {a.shape} and {b.shape}")
    b_ = int((a & ~b).sum())
    c_ = int((~a & b).sum())
    p = 1.0 if b_ + c_ == 0 else float(stats.binomtest(b_, b_ + c_, 0.5).pvalue)
    n = len(a)
    return McNemar(n=n, a_only=b_, b_only=c_, p_value=min(1.0, p),
                   acc_a=float(a.mean()) if n else math.nan, acc_b=float(b.mean()) if n else math.nan)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down: which of the hypotheses are rejected at family-wise level ``alpha``."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    reject = [False] * len(p)
    m = len(p)
    for rank, i in enumerate(order):
        if not p[i] <= alpha / (m - rank):
            break
        reject[int(i)] = True
    return reject


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (reject where adjusted <= alpha; same decisions as ``holm``)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def ceiling_verdict(k: int, n: int, ceiling: float, confidence: float = 0.95) -> str:
    """``"within sampling error"`` when the interval of ``k / n`` covers ``ceiling``; ``"above ceiling"`` /
    ``"below ceiling"`` when it excludes it (above is a flag: a result cannot beat a Bayes ceiling)."""
    lo, hi = wilson_interval(k, n, confidence)
    if lo <= ceiling <= hi:
        return "within sampling error"
    return "above ceiling" if lo > ceiling else "below ceiling"


def sample_efficiency(curve: Sequence[dict], ceiling: float | None, budget_steps: int) -> dict[str, float | None]:
    """What a learning curve says about sample efficiency, from its stopping-split points.

    ``steps_to_90`` / ``gmacs_to_90`` (and ``_99``): step and counted training GMACs of the first evaluation
    whose stopping accuracy reached 90 % (99 %) of ``ceiling``; ``None`` when never reached or no ceiling
    is known. ``curve_auc``: mean stopping accuracy over ``[0, budget_steps]`` (trapezoid between
    evaluations, 0 before the first -- an untrained model is not credited -- and the last value held
    after the stop), so curves that stop at different steps compare on one range.
    """
    pts = [(float(p["step"]), float(p["stop_acc"]), p.get("train_gmacs")) for p in curve if p.get("stop_acc") is not None]
    out: dict[str, float | None] = {}
    for q in (90, 99):
        hit = next((p for p in pts if ceiling is not None and p[1] >= q / 100 * ceiling), None)
        out[f"steps_to_{q}"] = hit[0] if hit else None
        out[f"gmacs_to_{q}"] = hit[2] if hit else None
    if not pts or budget_steps <= 0:
        out["curve_auc"] = None
        return out
    xs, ys = [0.0] + [p[0] for p in pts], [0.0] + [p[1] for p in pts]
    if xs[-1] < budget_steps:
        xs.append(float(budget_steps))
        ys.append(ys[-1])
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))
    out["curve_auc"] = area / max(xs[-1], 1.0)
    return out
