"""Accuracy as the plateau protocol records it: sample efficiency (table + figure), paired tests, and the
sentences a report may state about accuracy differences.

    accuracy records --efficiency_table--> per model: how training ended, steps, compute, steps/GMACs to 90/99 %
                     --efficiency_figure--> stopping accuracy vs counted training GMACs (log x), ceiling lines
                     --paired_test(a, b)--> exact McNemar (one seed, per-clip correctness) | seed t-interval
                     --accuracy_findings--> "A beats B" only where Holm-adjusted p <= alpha, else "not distinguishable"

Pairing needs the identical validation clips on both sides: records are paired by seed (same seed, same
dataset spec -> same clips) and only where both carry ``val_correct`` of the same length.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.measure import ceiling_verdict, holm_adjusted, mcnemar_exact, unpack_correct

from . import tables as T
from .render import fmt_pct

ALPHA = 0.05


def _ok_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    acc = df[(df["measurement"] == "accuracy") & (df["status"] == "ok")]
    train = acc[acc["scale"] == "train"] if "scale" in acc else acc
    return train if not train.empty else acc


def _col(d: pd.DataFrame, name: str) -> pd.Series:
    return d[name] if name in d else pd.Series([math.nan] * len(d), index=d.index, dtype=float)


def ceiling_judgement(acc: float, k: int | None, n: int | None, half: float | None, ceiling: float) -> str:
    """Where a result stands against its family ceiling: ``""`` when below it; above it, ``"within sampling
    error"`` when its interval (Wilson on one seed, else the seed t-interval ``half``) covers the ceiling,
    ``"above ceiling (flag)"`` when it does not (a Bayes ceiling cannot be beaten: look for a leak)."""
    if not (np.isfinite(acc) and np.isfinite(ceiling)) or acc <= ceiling:
        return ""
    if k is not None and n:
        verdict = ceiling_verdict(int(k), int(n), float(ceiling))
    elif half is not None and np.isfinite(half):
        verdict = "within sampling error" if acc - half <= ceiling else "above ceiling"
    else:
        return "above ceiling (no interval)"
    return "within sampling error" if verdict == "within sampling error" else "above ceiling (flag)"


def efficiency_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model (and point): how training ended over its seeds, steps and samples, counted training
    GMACs, steps / GMACs to 90 % and 99 % of the family ceiling (NaN when never reached), curve AUC, and the
    single-seed Wilson interval. Means over seeds; ``converged`` as "k/n"; ``stop_reason`` joined."""
    df = T.prepare(df) if "point_label" not in df.columns else df
    acc = _ok_accuracy(df)
    if acc.empty or "stop_reason" not in acc:
        return pd.DataFrame()
    keys = [k for k in T.row_keys(df) if k in acc]
    rows = []
    for _, g in acc.sort_values("_model_sort", kind="stable").groupby(keys, sort=False, dropna=False):
        r0 = g.iloc[0]
        row: dict[str, Any] = {"model": r0["model"], "family": r0["family"]}
        if "point_label" in keys:
            row["point"] = r0["point_label"]
        conv = g["converged"].fillna(False).astype(bool) if "converged" in g else pd.Series([False] * len(g))
        row["stop_reason"] = ", ".join(dict.fromkeys(str(s) for s in g["stop_reason"].fillna("?")))
        row["converged"] = f"{int(conv.sum())}/{len(g)}"
        for c in ("steps", "samples_seen", "train_gmacs", "train_time_s", "steps_to_90", "gmacs_to_90",
                  "steps_to_99", "gmacs_to_99", "curve_auc"):
            vals = pd.to_numeric(_col(g, c), errors="coerce")
            # a threshold some seed never reached has no mean: NaN, not the mean of those that did
            row[c] = float(vals.mean()) if vals.notna().all() and len(vals) else math.nan
        row["epochs_to_stop"] = (row["samples_seen"] / float(_col(g, "fit_n").mean())
                                 if pd.notna(_col(g, "fit_n")).all() else math.nan)
        mean, half, n = T.t_interval(g["acc_top1"])
        row.update(acc_top1=mean, n_seeds=n)
        if n == 1:
            row["acc_top1_lo"], row["acc_top1_hi"] = float(_col(g, "acc_top1_lo").iloc[0]), float(_col(g, "acc_top1_hi").iloc[0])
        else:
            row["acc_top1_lo"], row["acc_top1_hi"] = mean - half, mean + half
        ceil = float(pd.to_numeric(_col(g, "ceiling_top1"), errors="coerce").iloc[0])
        row["ceiling_top1"] = ceil
        k = round(float(g["acc_top1"].iloc[0]) * float(r0.get("val_n", 0) or 0)) if n == 1 else None
        row["vs_ceiling"] = ceiling_judgement(mean, k, r0.get("val_n") if n == 1 else None, half, ceil)
        rows.append(row)
    return pd.DataFrame(rows)


def efficiency_figure(df: pd.DataFrame, path: Path, *, dpi: int = 150) -> Path | None:
    """Stopping-split accuracy against counted training compute (GMACs, log x), one line per model (seed 0
    or the first seed), family colours; dotted horizontal lines: each family's Bayes ceiling."""
    import matplotlib.pyplot as plt

    from . import figures as F

    acc = _ok_accuracy(T.prepare(df) if "point_label" not in df.columns else df)
    if acc.empty or "learning_curve" not in acc:
        return None
    acc = acc.sort_values(["_model_sort", "seed"], kind="stable").drop_duplicates("model")
    styles = F.model_styles(acc)
    lines = []
    for _, r in acc.iterrows():
        try:
            curve = json.loads(r["learning_curve"]) if isinstance(r["learning_curve"], str) else []
        except ValueError:
            curve = []
        pts = [(p["train_gmacs"], p["stop_acc"]) for p in curve
               if p.get("train_gmacs") and p.get("stop_acc") is not None]
        if pts:
            lines.append((r["model"], r["family"], np.array(pts, float), r.get("ceiling_top1")))
    if not lines:
        return None
    with F._theme():
        fig, ax = plt.subplots(figsize=(9.5, 4.8))
        for model, _, pts, _ in lines:
            color, marker = styles[model]
            ax.plot(pts[:, 0], 100 * pts[:, 1], color=color, marker=marker, ms=3.5, lw=1.2, label=model)
        ceilings = {}
        for _, fam, _, ceil in lines:
            if ceil is not None and np.isfinite(ceil):
                ceilings.setdefault(fam, float(ceil))
        for fam, ceil in ceilings.items():
            ax.axhline(100 * ceil, color=F.family_color(fam), ls=":", lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("training compute (counted forward + backward GMACs, log scale)")
        ax.set_ylabel("stopping-split accuracy (%)")
        ax.set_ylim(0, 102)
        # beside the axes, not over the curves (which fill the lower right, where the slow models end)
        ax.legend(fontsize=7, ncol=1 if len(lines) <= 12 else 2, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  frameon=False, title="dotted: family ceiling", title_fontsize=7)
        fig.tight_layout()
        return F._save(fig, path, dpi)


def paired_test(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    """Paired test of accuracy between two sets of ok accuracy records (two models, or one model in two runs),
    paired by seed on identical validation clips. One shared seed: exact McNemar on per-clip correctness.
    Several: one-sample t-test and 95 % t-interval of the per-seed differences ``b - a``. Keys: ``test``,
    ``n_pairs``, ``diff`` (fraction, b - a), ``diff_lo``, ``diff_hi``, ``p_value`` (NaN: nothing to pair)."""
    out: dict[str, Any] = dict(test="", n_pairs=0, diff=math.nan, diff_lo=math.nan, diff_hi=math.nan,
                               p_value=math.nan)
    sa = {int(r["seed"]): r for _, r in a.iterrows()}
    sb = {int(r["seed"]): r for _, r in b.iterrows()}
    seeds = sorted(set(sa) & set(sb))
    if not seeds:
        return out
    if len(seeds) == 1:
        ra, rb = sa[seeds[0]], sb[seeds[0]]
        ca, cb = ra.get("val_correct"), rb.get("val_correct")
        if not (isinstance(ca, str) and isinstance(cb, str)) or ra.get("val_n") != rb.get("val_n"):
            return out
        n = int(ra["val_n"])
        t = mcnemar_exact(unpack_correct(ca, n), unpack_correct(cb, n))
        # interval of the paired difference: normal approximation on the discordant counts (Agresti)
        d = (t.b_only - t.a_only) / n
        se = math.sqrt(max(t.a_only + t.b_only - (t.b_only - t.a_only) ** 2 / n, 0.0)) / n
        out.update(test="McNemar exact", n_pairs=n, diff=d, diff_lo=d - 1.96 * se, diff_hi=d + 1.96 * se,
                   p_value=t.p_value)
        return out
    diffs = np.array([float(sb[s]["acc_top1"]) - float(sa[s]["acc_top1"]) for s in seeds])
    mean, half, n = T.t_interval(diffs)
    if np.allclose(diffs, diffs[0]):  # no spread: the t-test is undefined; identical results do not differ
        p = 1.0 if diffs[0] == 0 else math.nan
    else:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    out.update(test="paired seed t", n_pairs=n, diff=mean, diff_lo=mean - half, diff_hi=mean + half, p_value=p)
    return out


def accuracy_findings(df: pd.DataFrame, alpha: float = ALPHA) -> list[str]:
    """Summary sentences on accuracy differences: the most accurate model against every other (Holm across
    those comparisons); a difference is stated only where the paired test resolves it, others are named
    as not distinguishable. Results above their ceiling are judged against their interval."""
    d = T.prepare(df) if "point_label" not in df.columns else df
    acc = _ok_accuracy(d)
    if acc.empty or acc["model"].nunique() < 2 or "point_label" in acc and acc["point_label"].nunique() > 1:
        return []
    means = acc.groupby("model")["acc_top1"].mean().sort_values(ascending=False)
    best = means.index[0]
    others = list(means.index[1:])
    tests = [paired_test(acc[acc["model"] == m], acc[acc["model"] == best]) for m in others]
    ps = [t["p_value"] for t in tests]
    finite = [i for i, p in enumerate(ps) if np.isfinite(p)]
    adj = dict(zip(finite, holm_adjusted([ps[i] for i in finite]))) if finite else {}
    resolved, tied, untested = [], [], []
    for i, (m, t) in enumerate(zip(others, tests)):
        if i not in adj:
            untested.append(m)
        elif adj[i] <= alpha:
            resolved.append(f"{m} ({fmt_pct(-t['diff'])} points lower, p_Holm {adj[i]:.2g})")
        else:
            tied.append(m)
    kind = tests[0]["test"] if tests and tests[0]["test"] else "paired test"
    items = []
    if tied:
        items.append(f"Not distinguishable from the most accurate, {best} ({kind}, Holm over {len(adj)} "
                     f"comparisons, α = {alpha}): " + ", ".join(tied) + ".")
    if resolved:
        items.append(f"Resolved below {best} ({kind}, Holm, α = {alpha}): " + ", ".join(resolved) + ".")
    if untested:
        items.append("No paired test possible (no shared seed with per-clip correctness): " + ", ".join(untested) + ".")
    eff = efficiency_table(df)
    if not eff.empty:
        above = eff[eff["vs_ceiling"] != ""]
        for _, r in above.iterrows():
            items.append(f"{r['model']} at {fmt_pct(r['acc_top1'])} % is above its {fmt_pct(r['ceiling_top1'], 0)} % "
                         f"ceiling: {r['vs_ceiling']} (interval {fmt_pct(r['acc_top1_lo'])}–{fmt_pct(r['acc_top1_hi'])} %).")
        capped = eff[eff["converged"].str.split("/").str[0] != eff["converged"].str.split("/").str[1]]
        if not capped.empty:
            items.append("Not converged (ended by the step budget or diverged; accuracy is a lower bound): "
                         + ", ".join(f"{m} ({c})" for m, c in zip(capped["model"], capped["converged"])) + ".")
    return items


FIGURE_TEXT = ("Stopping-split accuracy at each evaluation against the training compute consumed so far (counted "
               "forward + backward MACs of a training step × steps; log scale), one line per model in its family "
               "colour; dotted lines: each family's Bayes ceiling. The stopping split is carved from the training "
               "data; reported accuracies are on the separate validation split.")

_DISPLAY = (  # (column, header, formatter)
    ("model", "model", str), ("stop_reason", "stop", str), ("converged", "converged", str),
    ("steps", "steps", "num"), ("epochs_to_stop", "epochs", "num"), ("train_gmacs", "train GMACs", "num"),
    ("steps_to_90", "steps to 90 %", "num"), ("gmacs_to_90", "GMACs to 90 %", "num"),
    ("steps_to_99", "steps to 99 %", "num"), ("gmacs_to_99", "GMACs to 99 %", "num"),
    ("curve_auc", "curve AUC (%)", "pct"), ("acc_top1", "top-1 (%)", "pct"),
    ("interval", "95 % interval (%)", str), ("vs_ceiling", "vs ceiling", str),
)


def display_table(eff: pd.DataFrame) -> pd.DataFrame:
    """``efficiency_table`` formatted for the report (percent, 3 significant digits, "—" for never reached)."""
    from .render import fmt_num

    e = eff.copy()
    e["interval"] = [f"{fmt_pct(lo)}–{fmt_pct(hi)}" for lo, hi in zip(e["acc_top1_lo"], e["acc_top1_hi"])]
    cols = {}
    for col, head, how in _DISPLAY:
        if col not in e:
            continue
        if how == "num":
            cols[head] = ["—" if not np.isfinite(v) else fmt_num(float(v)) for v in e[col].astype(float)]
        elif how == "pct":
            cols[head] = [fmt_pct(v) for v in e[col].astype(float)]
        else:
            cols[head] = e[col].astype(str).tolist()
    return pd.DataFrame(cols)
