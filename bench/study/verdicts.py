"""Verdicts from records: one decider per kind of claim, each returning a ``Verdict`` with its comparisons.

A verdict is ``supported`` / ``contradicted`` / ``not resolved`` at alpha = 0.05, never written by hand:

    paired_diff   subject - against on the same clips: exact McNemar (one seed, top-1), paired seed t-test
                  (several seeds), Newcombe interval + Fisher exact (one seed, an attribute accuracy)
    degradation   (subject's loss from the clean to the hardest level) - (against's loss), normal interval
                  from the four binomial variances (one seed) or a t-interval of per-seed values
    bound         one-sided binomial (or t) tests of a metric against a ceiling: above it contradicts, below
                  ceiling + margin supports
    spread        F-test of the seed-to-seed variances (subject vs each other model), interval of the SD ratio
    share         t-interval over seeds of a share (flow stage / model latency) against a threshold
    ratio         Mann-Whitney U on raw latency samples, bootstrap interval of the ratio of medians
    exact_scaling a deterministic count against its formula (equal at every level, or not)
    gain          each model's pretrained − scratch metric on the same clips (exact McNemar, one seed), and the
                  subject's gain minus each other's (exact sign-flip test on the per-clip difference in
                  differences); the subject's gain and its excesses decide, the others' gains are context

Several comparisons in one claim are Holm-adjusted together. The rule: *contradicted* when any comparison
resolves against the claim; *supported* when every comparison resolves for it; otherwise *not resolved*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..measure import holm_adjusted, unpack_correct, wilson_interval
from ..report.compare import _samples as compare_samples
from ..report.compare import ratio_test
from ..report.efficiency import paired_test
from ..report.tables import t_interval
from .claims import Claim

ALPHA = 0.05
SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved"


@dataclass
class Verdict:
    """A claim's verdict, the effect that decided it (with its 95 % interval) and every comparison."""

    claim: str
    verdict: str
    reason: str
    effect: float = math.nan          # the headline effect (the comparison closest to deciding)
    lo: float = math.nan
    hi: float = math.nan
    effect_label: str = ""
    null: float = 0.0                 # the value of "no effect" (0 for differences, 1 for ratios, the bound)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_seeds: int = 0
    exact: bool = False               # a count, not an estimate: no sampling interval

    def as_row(self) -> dict[str, Any]:
        return {"claim": self.claim, "verdict": self.verdict, "effect": self.effect, "effect_lo": self.lo,
                "effect_hi": self.hi, "effect_label": self.effect_label, "n_seeds": self.n_seeds, "exact": self.exact,
                "reason": self.reason}


COMPARISON_COLUMNS = ("comparison", "level", "effect", "lo", "hi", "null", "p_value", "p_holm", "test", "note")


def _row(comparison: str, level: str, effect: float, lo: float, hi: float, p: float, test: str, *,
         null: float = 0.0, note: str = "") -> dict[str, Any]:
    return dict(comparison=comparison, level=level, effect=effect, lo=lo, hi=hi, null=null, p_value=p,
                p_holm=math.nan, test=test, note=note)


def _ok(df: pd.DataFrame, measurement: str, scale: str = "train") -> pd.DataFrame:
    if df.empty or "measurement" not in df:
        return df.iloc[0:0]
    d = df[(df["measurement"] == measurement) & (df["status"] == "ok")]
    return d[d["scale"] == scale] if "scale" in d else d


def _num(r: pd.Series, col: str) -> float:
    v = r.get(col)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


# ------------------------------------------------------------------------------------------ decisions
def _decide(claim: Claim, rows: list[dict[str, Any]], label: str, n_seeds: int, *, empty_reason: str) -> Verdict:
    """Holm over the comparisons that have a p-value, then the claim's rule (see the module docstring)."""
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    if table.empty:
        return Verdict(claim.name, NOT_RESOLVED, empty_reason, effect_label=label, comparisons=table, n_seeds=n_seeds)
    finite = table.index[np.isfinite(table["p_value"].astype(float))]
    if len(finite):
        table.loc[finite, "p_holm"] = holm_adjusted(table.loc[finite, "p_value"].astype(float).tolist())
    sign = 1.0 if claim.decision.expect == "greater" else -1.0
    resolved = table["p_holm"].astype(float) <= ALPHA
    toward = resolved & (sign * (table["effect"].astype(float) - table["null"].astype(float)) > 0)
    against = resolved & ~toward
    head = table.loc[table["p_holm"].astype(float).fillna(2.0).idxmin()]
    n = len(table)
    if against.any():
        verdict = CONTRADICTED
        head = table[against].iloc[0]
        reason = (f"{int(against.sum())} of {n} comparison(s) resolved against the claim "
                  f"(Holm, α = {ALPHA}): {head['comparison']} at {head['level']}")
    elif toward.all():
        verdict = SUPPORTED
        reason = f"all {n} comparison(s) resolved in the claimed direction (Holm, α = {ALPHA})"
    else:
        verdict = NOT_RESOLVED
        untested = table["p_value"].isna()
        reason = (f"{int(toward.sum())} of {n} comparison(s) resolved in the claimed direction, none against "
                  f"(Holm, α = {ALPHA})")
        if untested.any():
            notes = [x for x in table.loc[untested, "note"] if x]
            reason += f"; {int(untested.sum())} without a test" + (f" ({notes[0]})" if notes else "")
    return Verdict(claim.name, verdict, reason, float(head["effect"]), float(head["lo"]), float(head["hi"]), label,
                   float(head["null"]), table, n_seeds)


def _seeds(d: pd.DataFrame) -> int:
    return int(d["seed"].nunique()) if "seed" in d and not d.empty else 0


def _by_model(d: pd.DataFrame, model: str, pid: str | None = None) -> pd.DataFrame:
    g = d[d["model"] == model]
    return g if pid is None else g[g["point_id"] == pid]


def _pairs(d, records: pd.DataFrame, levels: list[tuple[str, str]]):
    """``(level label, subject, other, other's records, subject's records)`` for every level x subject x other
    where both have records."""
    for label, pid in levels:
        for s in d.subject:
            for o in d.against:
                a, b = _by_model(records, o, pid), _by_model(records, s, pid)
                if not (a.empty or b.empty):
                    yield label, s, o, a, b


def _label(metric: str) -> str:
    return {"acc_top1": "top-1", "acc_direction": "direction accuracy", "curve_auc": "learning-curve area",
            "first_conv_params": "first-conv parameters", "flow_share": "flow share of latency",
            "latency_ms_p50": "latency p50"}.get(metric, metric)


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, Any]:
    """``b - a`` of ``metric`` on the same clips: ``efficiency.paired_test`` for top-1 and for several seeds; with
    one seed an attribute accuracy (no per-clip bits) gets the Newcombe hybrid interval and Fisher's exact test
    (conservative: it ignores the pairing). Keys as ``paired_test``'s, plus ``note``."""
    if metric == "acc_top1":
        out = paired_test(a, b)
        return {**out, "note": "" if out["test"] else "no shared seed with per-clip correctness"}
    sa = {int(r["seed"]): r for _, r in a.iterrows() if np.isfinite(_num(r, metric))}
    sb = {int(r["seed"]): r for _, r in b.iterrows() if np.isfinite(_num(r, metric))}
    seeds = sorted(set(sa) & set(sb))
    out = dict(test="", n_pairs=len(seeds), diff=math.nan, diff_lo=math.nan, diff_hi=math.nan, p_value=math.nan,
               note="")
    if not seeds:
        out["note"] = f"no shared seed with {metric} on both"
        return out
    if len(seeds) >= 2:
        diffs = np.array([_num(sb[s], metric) - _num(sa[s], metric) for s in seeds])
        mean, half, _ = t_interval(diffs)
        p = (1.0 if diffs[0] == 0 else math.nan) if np.allclose(diffs, diffs[0]) else float(
            stats.ttest_1samp(diffs, 0.0).pvalue)
        out.update(test="paired seed t", diff=mean, diff_lo=mean - half, diff_hi=mean + half, p_value=p)
        if not np.isfinite(p):
            out["note"] = "identical non-zero differences on every seed: no spread to test"
        return out
    ra, rb = sa[seeds[0]], sb[seeds[0]]
    na, nb = _num(ra, "val_n"), _num(rb, "val_n")
    if not metric.startswith("acc_") or not (np.isfinite(na) and np.isfinite(nb)):
        out["note"] = f"one seed: {metric} has no sampling interval; run >= 2 seeds"
        return out
    ka, kb = round(_num(ra, metric) * na), round(_num(rb, metric) * nb)
    pa, pb = ka / na, kb / nb
    la, ua = wilson_interval(ka, int(na))
    lb, ub = wilson_interval(kb, int(nb))
    d = pb - pa
    lo = d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    hi = d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    p = float(stats.fisher_exact([[kb, int(nb) - kb], [ka, int(na) - ka]]).pvalue)
    out.update(test="Newcombe + Fisher exact", diff=d, diff_lo=lo, diff_hi=hi, p_value=p)
    return out


def decide_paired_diff(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    d, m = claim.decision, claim.decision.metric
    acc = _ok(df, "accuracy")
    rows = []
    for label, s, o, a, b in _pairs(d, acc, levels):
        t = paired_difference(a, b, m)
        rows.append(_row(f"{s} − {o}", label, t["diff"], t["diff_lo"], t["diff_hi"], t["p_value"], t["test"],
                         note=t.get("note", "")))
    return _decide(claim, rows, f"{_label(m)}: subject − other (fraction)", _seeds(acc),
                   empty_reason="no ok accuracy records of the compared models")


def difference_in_differences(cells: list[pd.DataFrame], metric: str, *, per_clip: bool = False) -> dict[str, Any] | None:
    """``(c0 − c1) − (c2 − c3)`` of ``metric`` over the four cells' shared seeds (None: no shared seed), as
    ``dict(effect, lo, hi, p, test)``. ≥ 2 seeds: seed t. One seed: with ``per_clip`` and per-clip top-1
    correctness on the same clips, the exact sign-flip test of the per-clip differences (``sign_flip_test``);
    otherwise the normal interval from the four binomial variances (ignores the positive correlation of models
    on the same clips: conservative)."""
    seeds = sorted(set.intersection(*[set(c["seed"].astype(int)) for c in cells]))
    if not seeds:
        return None
    per = [{int(r["seed"]): r for _, r in c.iterrows()} for c in cells]
    vals = np.array([[_num(p[sd], metric) for p in per] for sd in seeds])   # seeds x (c0, c1, c2, c3)
    did = (vals[:, 0] - vals[:, 1]) - (vals[:, 2] - vals[:, 3])
    if len(seeds) >= 2:
        mean, half, _ = t_interval(did)
        p = float(stats.ttest_1samp(did, 0.0).pvalue) if not np.allclose(did, did[0]) else math.nan
        return dict(effect=mean, lo=mean - half, hi=mean + half, p=p, test="seed t (difference in differences)")
    rows = [p[seeds[0]] for p in per]
    n = np.array([_num(r, "val_n") for r in rows])
    bits = [r.get("val_correct") for r in rows]
    if per_clip and metric == "acc_top1" and len(set(n)) == 1 and all(isinstance(b, str) for b in bits):
        c = [unpack_correct(b, int(n[0])).astype(int) for b in bits]
        t = sign_flip_test((c[0] - c[1]) - (c[2] - c[3]))
        return dict(effect=t["mean"], lo=t["lo"], hi=t["hi"], p=t["p_value"],
                    test="exact sign-flip (per-clip difference in differences)")
    se = math.sqrt(float(np.sum(vals[0] * (1 - vals[0]) / n)))
    mean, half = float(did[0]), 1.959964 * se
    p = float(2 * stats.norm.sf(abs(mean) / se)) if se > 0 else math.nan
    return dict(effect=mean, lo=mean - half, hi=mean + half, p=p, test="normal, four binomial variances")


def sign_flip_test(d: np.ndarray) -> dict[str, float]:
    """Exact two-sided sign-flip (paired permutation) test that integer per-clip differences ``d`` in
    {−2, …, 2} are symmetric about 0: under the null each non-zero ``d_i`` keeps its size and takes either
    sign, so ``Σ d = (2 K1 − n1) + 2 (2 K2 − n2)`` with ``K1 ~ Bin(n1, ½)``, ``K2 ~ Bin(n2, ½)`` (n1, n2:
    clips with |d| = 1, 2); its distribution is their convolution. With |d| ≤ 1 only it is exact McNemar.
    Interval of the mean: normal, 95 %."""
    d = np.asarray(d, dtype=int)
    if np.abs(d).max(initial=0) > 2:
        raise ValueError("sign_flip_test takes per-clip differences in -2..2")
    n = len(d)
    n1, n2 = int((np.abs(d) == 1).sum()), int((np.abs(d) == 2).sum())
    # P(sum = v) on the grid v = -(n1 + 2 n2) .. (n1 + 2 n2): K1 moves the sum by 2, K2 by 4
    span = n1 + 2 * n2
    pmf = np.zeros(2 * span + 1)
    p1, p2 = stats.binom.pmf(np.arange(n1 + 1), n1, 0.5), stats.binom.pmf(np.arange(n2 + 1), n2, 0.5)
    for k2, q in enumerate(p2):
        idx = (2 * np.arange(n1 + 1) - n1) + 2 * (2 * k2 - n2) + span
        pmf[idx] += q * p1
    total = int(d.sum())
    p = 1.0 if n1 + n2 == 0 else float(min(1.0, pmf[np.abs(np.arange(-span, span + 1)) >= abs(total)].sum()))
    mean = float(d.mean()) if n else math.nan
    half = 1.959964 * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return dict(mean=mean, lo=mean - half, hi=mean + half, p_value=p)


def decide_degradation(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """Difference in differences: (subject(clean) − subject(hardest)) − (other(clean) − other(hardest))."""
    d, m = claim.decision, claim.decision.metric
    acc = _ok(df, "accuracy")
    if len(levels) < 2:
        return Verdict(claim.name, NOT_RESOLVED, "needs a clean and a degraded level", comparisons=pd.DataFrame())
    (_, clean), (hard_label, hard) = levels[0], levels[-1]
    rows = []
    for s in d.subject:
        for o in d.against:
            cells = [_by_model(acc, x, pid) for x in (s, o) for pid in (clean, hard)]
            t = None if any(c.empty for c in cells) else difference_in_differences(cells, m)
            if t is not None:
                rows.append(_row(f"loss of {s} − loss of {o}", f"clean → {hard_label}", t["effect"], t["lo"], t["hi"],
                                 t["p"], t["test"]))
    return _decide(claim, rows, f"extra {_label(m)} lost by the subject (fraction)", _seeds(acc),
                   empty_reason="no ok accuracy records at both levels")


def decide_gain(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """Pre-training's gain, ``pretrained − scratch`` of ``metric`` on the same clips, for every model at each
    pair of levels (the plan lists the scratch levels, then the same levels pretrained). What decides: the
    subject's gain (> 0: McNemar with one seed) and the subject's gain minus each other model's (> 0: the exact
    sign-flip test on the per-clip difference in differences), Holm over these. Each other model's own gain is
    a context row with its own test, not decided on: a strategy that pre-training does not help widens the
    subject's advantage rather than contradicting it."""
    d, m = claim.decision, claim.decision.metric
    acc = _ok(df, "accuracy")
    label = f"{_label(m)} gained from pre-training: pretrained − scratch (fraction)"
    half = len(levels) // 2
    if half == 0 or len(levels) % 2:
        return Verdict(claim.name, NOT_RESOLVED, "needs a scratch and a pretrained level", effect_label=label)
    rows, context = [], []
    for (name, scratch), (_, pre) in zip(levels[:half], levels[half:]):
        where = f"{name}: scratch → pretrained"
        cells = {x: (_by_model(acc, x, pre), _by_model(acc, x, scratch)) for x in d.subject + d.against}
        cells = {x: c for x, c in cells.items() if not (c[0].empty or c[1].empty)}
        for x, (b, a) in cells.items():
            t = paired_difference(a, b, m)
            (rows if x in d.subject else context).append(
                _row(f"gain of {x}", where, t["diff"], t["diff_lo"], t["diff_hi"], t["p_value"], t["test"],
                     note=t.get("note", "")))
        for s in (x for x in d.subject if x in cells):
            for o in (x for x in d.against if x in cells):
                t = difference_in_differences([*cells[s], *cells[o]], m, per_clip=True)
                if t is not None:
                    rows.append(_row(f"gain of {s} − gain of {o}", where, t["effect"], t["lo"], t["hi"], t["p"],
                                     t["test"]))
    v = _decide(claim, rows, label, _seeds(acc), empty_reason="no ok accuracy records of the subject at both levels")
    if context:
        ctx = pd.DataFrame(context, columns=list(COMPARISON_COLUMNS))
        ctx["note"] = ["context, not decided on" + (f"; {x}" if x else "") for x in ctx["note"]]
        v.comparisons = pd.concat([v.comparisons, ctx], ignore_index=True)
    return v


def decide_bound(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """Each subject's metric at ``threshold`` (a ceiling the claim says the subject reaches and cannot pass):
    *contradicted* when one resolves above it (one-sided test); *supported* when every subject resolves within
    ``threshold ± margin`` (two one-sided tests, TOST); Holm over the subjects for each test. An untrained model
    below the ceiling is *not resolved*: it shows nothing about invariance."""
    d, m = claim.decision, claim.decision.metric
    bound, margin = float(d.threshold), float(d.margin)
    acc = _ok(df, "accuracy")
    rows, p_over, p_tost = [], [], []
    for label, pid in levels:
        for s in d.subject:
            g = _by_model(acc, s, pid)
            vals = [_num(r, m) for _, r in g.iterrows() if np.isfinite(_num(r, m))]
            if not vals:
                continue
            if len(vals) >= 2 and not np.allclose(vals, vals[0]):
                mean, half, _ = t_interval(vals)
                lo, hi = mean - half, mean + half
                po = float(stats.ttest_1samp(vals, bound, alternative="greater").pvalue)
                pt = max(float(stats.ttest_1samp(vals, bound - margin, alternative="greater").pvalue),
                         float(stats.ttest_1samp(vals, bound + margin, alternative="less").pvalue))
                test = "one-sided seed t, TOST"
            else:
                n = int(_num(g.iloc[0], "val_n"))
                k = round(vals[0] * n)
                mean = k / n
                lo, hi = wilson_interval(k, n)
                po = float(stats.binomtest(k, n, bound, alternative="greater").pvalue)
                pt = max(float(stats.binomtest(k, n, max(bound - margin, 0.0), alternative="greater").pvalue),
                         float(stats.binomtest(k, n, min(bound + margin, 1.0), alternative="less").pvalue))
                test = "one-sided exact binomial, TOST"
            rows.append(_row(s, label, mean, lo, hi, math.nan, test, null=bound))
            p_over.append(po)
            p_tost.append(pt)
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    label = f"{_label(m)} against the {100 * bound:g} % ceiling (fraction)"
    if table.empty:
        return Verdict(claim.name, NOT_RESOLVED, "no ok accuracy records of the subjects", effect_label=label,
                       null=bound, comparisons=table)
    over, within = holm_adjusted(p_over), holm_adjusted(p_tost)
    table["p_value"] = [min(a, b) for a, b in zip(p_over, p_tost)]
    table["p_holm"] = [o if o <= ALPHA else w for o, w in zip(over, within)]
    table["note"] = [f"p(above) {o:.2g}, p(within ±{100 * margin:g} pts) {w:.2g} (Holm)" for o, w in zip(over, within)]
    head = table.loc[table["effect"].astype(float).idxmax()]
    common = dict(effect=float(head["effect"]), lo=float(head["lo"]), hi=float(head["hi"]), effect_label=label,
                  null=bound, comparisons=table, n_seeds=_seeds(acc))
    if any(o <= ALPHA for o in over):
        names = ", ".join(table.loc[[o <= ALPHA for o in over], "comparison"])
        return Verdict(claim.name, CONTRADICTED, f"resolved above the ceiling: {names}", **common)
    if all(w <= ALPHA for w in within):
        return Verdict(claim.name, SUPPORTED, f"every subject resolved at the ceiling (within ±{100 * margin:g} "
                                              "points, TOST), none above", **common)
    below = [c for c, h in zip(table["comparison"], table["hi"].astype(float)) if h < bound - margin]
    return Verdict(claim.name, NOT_RESOLVED, "none resolved above the ceiling; not every subject resolved at it"
                   + (f" ({', '.join(below)} below it: not trained far enough to show invariance)" if below else
                      " (intervals too wide)"), **common)


def decide_spread(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """F-test of var(subject) / var(other) over seeds; the effect is the SD ratio with its F interval."""
    d, m = claim.decision, claim.decision.metric
    acc = _ok(df, "accuracy")
    rows = []
    for label, pid in levels:
        for s in d.subject:
            xs = [_num(r, m) for _, r in _by_model(acc, s, pid).iterrows()]
            for o in d.against:
                ys = [_num(r, m) for _, r in _by_model(acc, o, pid).iterrows()]
                if not xs or not ys:
                    continue
                if len(xs) < 2 or len(ys) < 2:
                    rows.append(_row(f"SD {s} / SD {o}", label, math.nan, math.nan, math.nan, math.nan, "",
                                     null=1.0, note="a spread needs >= 2 seeds per model"))
                    continue
                vs, vo = float(np.var(xs, ddof=1)), float(np.var(ys, ddof=1))
                d1, d2 = len(xs) - 1, len(ys) - 1
                if vo == 0 or vs == 0:
                    rows.append(_row(f"SD {s} / SD {o}", label, math.sqrt(vs / vo) if vo else math.inf, math.nan,
                                     math.nan, math.nan, "", null=1.0, note="zero spread on one side: no F-test"))
                    continue
                f = vs / vo
                p = float(min(1.0, 2 * min(stats.f.cdf(f, d1, d2), stats.f.sf(f, d1, d2))))
                lo, hi = f / stats.f.ppf(0.975, d1, d2), f / stats.f.ppf(0.025, d1, d2)
                rows.append(_row(f"SD {s} / SD {o}", label, math.sqrt(f), math.sqrt(lo), math.sqrt(hi), p,
                                 f"F-test ({len(xs)} and {len(ys)} seeds)", null=1.0))
    return _decide(claim, rows, f"seed-to-seed SD ratio of {_label(m)} (subject / other)", _seeds(acc),
                   empty_reason="no ok accuracy records of the compared models")


def decide_share(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """A share (``flow_share`` of latency records) over seeds against ``threshold``; FLOPs share in the note."""
    d, m, thr = claim.decision, claim.decision.metric, float(claim.decision.threshold)
    lat = _ok(df, "latency", d.scale)
    flops = _ok(df, "flops", d.scale)
    rows = []
    for label, pid in levels:
        for s in d.subject:
            g = _by_model(lat, s, pid)
            if "batch_size" in g:
                g = g[g["batch_size"].astype(float) == float(g["batch_size"].min())] if not g.empty else g
            vals = [_num(r, m) for _, r in g.iterrows() if np.isfinite(_num(r, m))]
            if not vals:
                continue
            note = "; ".join(x for x in (_flops_share(_by_model(flops, s, pid)), _flagged(g)) if x)
            mean, half, n = t_interval(vals)
            if n < 2 or not np.isfinite(half):
                rows.append(_row(s, label, mean, math.nan, math.nan, math.nan, "", null=thr,
                                 note="an interval of the share needs >= 2 seeds" + (f"; {note}" if note else "")))
                continue
            p = (float(stats.ttest_1samp(vals, thr, alternative="greater").pvalue) if not np.allclose(vals, vals[0])
                 else (0.0 if vals[0] > thr else 1.0))
            p_less = (float(stats.ttest_1samp(vals, thr, alternative="less").pvalue) if not np.allclose(vals, vals[0])
                      else (0.0 if vals[0] < thr else 1.0))
            rows.append(_row(s, label, mean, mean - half, mean + half, 2 * min(p, p_less), "seed t against threshold",
                             null=thr, note=note))
    return _decide(claim, rows, f"{_label(m)} (fraction; threshold {thr:g})", _seeds(lat),
                   empty_reason="no ok latency records with a flow stage")


def _flagged(g: pd.DataFrame) -> str:
    """``"timing flagged: noisy (2 records)"`` when the interleaved rounds flagged any of these latencies."""
    if "timing_quality" not in g:
        return ""
    bad = [q for q in g["timing_quality"] if isinstance(q, str) and q != "ok"]
    return f"timing flagged: {', '.join(sorted(set(bad)))} ({len(bad)} record(s))" if bad else ""


def _flops_share(g: pd.DataFrame) -> str:
    """``"FLOPs share 0.12 (flow 0.3 of 2.5 GMACs)"`` from a flops record's per-module split, or ``""``."""
    for _, r in g.iterrows():
        by = r.get("by_module_gmacs")
        if isinstance(by, str):
            import json

            try:
                by = json.loads(by)
            except ValueError:
                by = None
        total = _num(r, "gmacs")
        if isinstance(by, dict) and "flow" in by and total > 0:
            return f"FLOPs share {float(by['flow']) / total:.3g} (flow {float(by['flow']):.3g} of {total:.3g} GMACs)"
    return ""


def decide_ratio(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """subject / against of median latency: Mann-Whitney U on the raw samples, bootstrap 95 % interval."""
    d = claim.decision
    lat = _ok(df, "latency", d.scale)
    rows = []
    for label, s, o, ga, gb in _pairs(d, lat, levels):
        a, b = _samples(ga), _samples(gb)
        if len(a) == 0 or len(b) == 0:
            continue
        t = ratio_test(a, b, "p50")
        ratio = float(np.median(b) / np.median(a))
        rows.append(_row(f"{s} / {o}", label, ratio, t["ratio_ci_low"], t["ratio_ci_high"], t["p_value"],
                         f"Mann-Whitney U, bootstrap ({len(b)} and {len(a)} samples)", null=1.0,
                         note=_flagged(pd.concat([ga, gb]))))
    return _decide(claim, rows, f"{_label(d.metric)} ratio (subject / other) at the {d.scale} clip", _seeds(lat),
                   empty_reason="no ok latency records with samples")


def _samples(g: pd.DataFrame) -> np.ndarray:
    """Raw latency samples of every seed at the smallest batch measured (``compare._samples``)."""
    if "batch_size" in g and not g.empty:
        g = g[g["batch_size"].astype(float) == float(g["batch_size"].min())]
    return compare_samples(g)


def decide_exact_scaling(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]]) -> Verdict:
    """subject(T) / against(T) against T at every level (a count: no sampling, so equal or not)."""
    d, m = claim.decision, claim.decision.metric
    par = _ok(df, "params")
    rows = []
    for label, s, o, a, b in _pairs(d, par, levels):
        t = _num(b.iloc[0], "frames")
        ratio = _num(b.iloc[0], m) / _num(a.iloc[0], m)
        exact = math.isclose(ratio, t, rel_tol=0, abs_tol=1e-12)
        rows.append(_row(f"{s} / {o}", label, ratio, ratio, ratio, 0.0 if not exact else math.nan,
                         "count against k²·3T·C_out", null=t,
                         note=f"{int(_num(b.iloc[0], m))} {'=' if exact else '≠'} {t:g} × {int(_num(a.iloc[0], m))}"))
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    label = f"{_label(m)} ratio (subject / other); exact value T"
    if table.empty:
        return Verdict(claim.name, NOT_RESOLVED, "no ok params records of both models", effect_label=label,
                       comparisons=table)
    wrong = table[table["p_value"] == 0.0]
    head = (wrong if not wrong.empty else table).iloc[-1]
    common = dict(effect=float(head["effect"]), lo=float(head["lo"]), hi=float(head["hi"]), effect_label=label,
                  null=float(head["null"]), comparisons=table, n_seeds=_seeds(par), exact=True)
    if not wrong.empty:
        return Verdict(claim.name, CONTRADICTED, f"ratio differs from T at {', '.join(wrong['level'])}", **common)
    if len(table) < 2:
        return Verdict(claim.name, NOT_RESOLVED, "growth with T needs >= 2 values of T", **common)
    return Verdict(claim.name, SUPPORTED, f"ratio equals T exactly at all {len(table)} values of T", **common)


DECIDERS: dict[str, Callable[[Claim, pd.DataFrame, list[tuple[str, str]]], Verdict]] = {
    "exact_scaling": decide_exact_scaling, "paired_diff": decide_paired_diff, "degradation": decide_degradation,
    "bound": decide_bound, "spread": decide_spread, "share": decide_share, "ratio": decide_ratio,
    "gain": decide_gain,
}


def decide(claim: Claim, df: pd.DataFrame, levels: list[tuple[str, str]], seeds=None) -> Verdict:
    """The verdict of ``claim`` from records ``df`` (the run's records; only ``levels``' point ids are read,
    and only ``seeds`` when given: a point shared with a claim that trains more seeds keeps this one's test)."""
    ids = {pid for _, pid in levels}
    sub = df[df["point_id"].isin(ids)] if "point_id" in df and ids else df.iloc[0:0]
    if seeds and "seed" in sub:
        sub = sub[sub["seed"].isin(list(seeds))]
    return DECIDERS[claim.decision.kind](claim, sub, levels)
