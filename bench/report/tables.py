"""Report tables: a tidy records DataFrame in, summary DataFrames out (no I/O, no printing).

Records (see ``bench.results.COLUMNS``) have one row per (model, point, seed, measurement, scale, batch).
Every table here is keyed by the *row key* of the report: ``model``, plus ``point`` when the runs hold
several ablation points, plus ``run_id`` when several runs are reported together.

Scales: records say ``scale="train"`` (the tiny training clip) or ``scale="cost"`` (the deployment clip);
column names and captions call the latter ``deploy`` because that is what it means to a reader.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import stats

from bench import measurements

FAMILY_ORDER = ("single_frame", "order_invariant", "order_aware")
SCALES = {"train": "train", "cost": "deploy"}          # record scale -> column prefix
SCALE_TITLES = {"train": "train clip", "cost": "deploy clip"}



def cost_columns() -> list[tuple[str, str, str, str]]:
    """Per-scale cost columns of the main table: (output suffix, record column, measurement, which batch),
    every column with a main-table header in the measurement table (bench/measurements.py), by report rank."""
    return [(c.name, c.name, m.name, c.batch) for m, c in measurements.columns("report") if c.main]


ACCURACY_COLUMNS = ("acc_top1", "acc_shape", "acc_direction")
CEILING_COLUMNS = ("ceiling_top1", "ceiling_shape", "ceiling_direction")
_IDENTITY = (
    "run_id", "model", "family", "measurement", "scale", "status", "error", "seed", "point", "point_id",
    "frames", "height", "width", "backbone", "batch_size", "num_classes", "needs_flow", "fusion_point",
)
_LATENCY_EXTRA = ("flow_latency_ms_p50", "flow_share", "timing_quality", "timing_reason")  # flow split, timing flags


def _needed() -> tuple[str, ...]:
    """Every column the report reads (``prepare`` adds the missing ones as NaN)."""
    main = [c.name for _, c in measurements.columns() if c.main or c.ablation]
    return tuple(dict.fromkeys((*_IDENTITY, *ACCURACY_COLUMNS, *CEILING_COLUMNS, *main, *_LATENCY_EXTRA)))


FLAGGED = ("noisy", "contended")  # timing_quality values that mark a latency as not to be trusted (worst last)


def worst_timing(sub: pd.DataFrame) -> tuple[str, str]:
    """``(quality, reason)``: the worst ``timing_quality`` of latency records ``sub`` ("" when none was
    assessed, e.g. a run from before the flags existed), with that record's reason."""
    q = sub["timing_quality"].dropna().astype(str) if "timing_quality" in sub else pd.Series(dtype=str)
    if q.empty:
        return "", ""
    rank = {v: i for i, v in enumerate(("ok",) + FLAGGED)}
    idx = max(q.index, key=lambda i: rank.get(q[i], 0))
    reason = sub.at[idx, "timing_reason"] if "timing_reason" in sub else None
    return q[idx], reason if isinstance(reason, str) else ""


def is_flagged(quality: Any) -> bool:
    """Whether a ``timing_quality`` value marks a latency as noisy or contended."""
    return isinstance(quality, str) and quality in FLAGGED


# ------------------------------------------------------------------------------------------ preparing
def point_label(point: Any) -> str:
    """``'{"frames": 4}'`` -> ``"frames=4"``; no knobs -> ``"default"``."""
    knobs = point_knobs(point)
    return ", ".join(f"{k}={v}" for k, v in knobs.items()) or "default"


def point_knobs(point: Any) -> dict[str, Any]:
    """The knob dict of a record's ``point`` (JSON string, dict, or missing)."""
    if isinstance(point, dict):
        return dict(point)
    if isinstance(point, str) and point.strip():
        try:
            value = json.loads(point)
        except json.JSONDecodeError:
            return {}
        return dict(value) if isinstance(value, dict) else {}
    return {}


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every column the report reads (missing -> NaN), ``point_label`` and a stable model order."""
    df = df.copy()
    for col in _needed():
        if col not in df.columns:
            df[col] = np.nan
    for col, default in (("status", "ok"), ("family", "unknown"), ("model", "?")):
        df[col] = df[col].astype(object).where(df[col].notna(), default)
    df["point_label"] = [point_label(p) for p in df["point"]]
    df["_point_sort"] = [_sort_key(point_knobs(p)) for p in df["point"]]
    first_seen = {m: i for i, m in enumerate(dict.fromkeys(df["model"]))}
    fam_rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    df["_model_sort"] = [fam_rank.get(f, len(FAMILY_ORDER)) * 10_000 + first_seen[m]
                         for f, m in zip(df["family"], df["model"])]
    return df


def _sort_key(knobs: dict[str, Any]) -> tuple:
    return tuple((k, float(v)) if isinstance(v, (int, float)) else (k, math.inf, str(v)) for k, v in sorted(knobs.items()))


def row_keys(df: pd.DataFrame) -> list[str]:
    """Columns that identify one row of the report's tables."""
    keys = []
    if df["run_id"].nunique() > 1:
        keys.append("run_id")
    if df["point_label"].nunique() > 1:
        keys.append("point_label")
    return keys + ["model"]


def model_order(df: pd.DataFrame) -> list[str]:
    """Models ordered by family (single frame, order invariant, order aware), then as the run listed them."""
    return list(df.sort_values("_model_sort", kind="stable")["model"].drop_duplicates())


def scale_label(df: pd.DataFrame, scale: str) -> str:
    """``"train clip T8 32² small_cnn"`` from the dims the records at ``scale`` actually used."""
    sub = df[df["scale"] == scale]
    if sub.empty:
        return SCALE_TITLES.get(scale, scale)
    return f"{SCALE_TITLES.get(scale, scale)} {clip_dims(sub)}"


def clip_dims(sub: pd.DataFrame) -> str:
    """``"T8 32² small_cnn"``; a dim that varies (ablation) is shown as a set, ``T{2,4,8}``."""
    def vals(col: str) -> list:
        v = sub[col].dropna().unique().tolist()
        return sorted(v, key=lambda x: (isinstance(x, str), x))

    def fmt(v: Any) -> str:
        return str(int(v)) if isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer() else str(v)

    t, h, w, bb = vals("frames"), vals("height"), vals("width"), vals("backbone")
    parts = []
    if t:
        parts.append("T" + (fmt(t[0]) if len(t) == 1 else "{" + ",".join(fmt(x) for x in t) + "}"))
    if h and w:
        if len(h) == 1 and len(w) == 1:
            parts.append(f"{fmt(h[0])}²" if h[0] == w[0] else f"{fmt(h[0])}×{fmt(w[0])}")
        else:
            parts.append("{" + ",".join(f"{fmt(a)}²" if a == b else f"{fmt(a)}×{fmt(b)}" for a, b in zip(h, w)) + "}")
    if bb:
        parts.append("/".join(str(b) for b in bb))
    return " ".join(parts)


# ------------------------------------------------------------------------------------------ statistics
def t_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """``(mean, half_width, n)`` of a Student-t interval; ``n < 2`` gives ``half_width = NaN`` (no CI)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, 1
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def pareto_front(cost: Iterable[float], acc: Iterable[float]) -> np.ndarray:
    """Boolean mask of points no other point beats (lower-or-equal cost and higher-or-equal accuracy,
    strictly better in one). NaNs are never on the front."""
    c, a = np.asarray(list(cost), float), np.asarray(list(acc), float)
    ok = np.isfinite(c) & np.isfinite(a)
    mask = np.zeros(len(c), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (c <= c[i]) & (a >= a[i]) & ((c < c[i]) | (a > a[i]))
        mask[i] = not dominated.any()
    return mask


# ------------------------------------------------------------------------------------------ main table
def _pick_batch(sub: pd.DataFrame, how: str) -> float:
    b = sub["batch_size"].dropna()
    if b.empty:
        return math.nan
    return float(b.min() if how == "min" else b.max())


def main_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per row key: accuracy mean ± 95 % t-CI over seeds, ceilings, and per-scale costs.

    Columns: ``model, family[, run_id][, point], acc_top1_mean, acc_top1_ci95, n_seeds, acc_top1_lo,
    acc_top1_hi`` (one seed: its 95 % Wilson interval; NaN otherwise), ``ceiling_top1,
    acc_shape_mean, acc_direction_mean, ceiling_shape, ceiling_direction``, then for each scale present
    ``<train|deploy>_{gmacs, params, first_conv_params, latency_ms_p50, latency_ms_p90, throughput_clips_s,
    peak_mem_mib}``, then ``status`` (``ok`` or what failed). Accuracies are fractions.
    ``attrs``: ``scales`` (prefix -> clip label), ``batches`` (prefix -> {column: batch}).
    """
    df = prepare(df) if "point_label" not in df.columns else df
    keys = row_keys(df)
    # model-major: an ablation reads as each model's rows over the knob values, in family order
    run_rank = {r: i for i, r in enumerate(dict.fromkeys(df["run_id"]))}
    index = (df.assign(_run_sort=df["run_id"].map(run_rank))
             .sort_values(["_run_sort", "_model_sort", "_point_sort"], kind="stable")
             .drop_duplicates(keys)[list(dict.fromkeys(keys + ["family", "run_id", "point_label"]))])
    rows = []
    for _, idx in index.iterrows():
        sel = np.ones(len(df), bool)
        for k in keys:
            sel &= (df[k] == idx[k]).to_numpy()
        sub = df[sel]
        row: dict[str, Any] = {"model": idx["model"], "family": idx["family"]}
        if "run_id" in keys:
            row["run_id"] = idx["run_id"]
        if "point_label" in keys:
            row["point"] = idx["point_label"]
        acc = sub[(sub["measurement"] == "accuracy") & (sub["scale"] == "train") & (sub["status"] == "ok")]
        if acc.empty:  # a run without a train-scale accuracy record may still have one at another scale
            acc = sub[(sub["measurement"] == "accuracy") & (sub["status"] == "ok")]
        mean, half, n = t_interval(acc["acc_top1"])
        row.update(acc_top1_mean=mean, acc_top1_ci95=half, n_seeds=n)
        # one seed: its binomial (Wilson) interval over the validation clips, from the record
        one = n == 1 and {"acc_top1_lo", "acc_top1_hi"} <= set(acc.columns)
        row["acc_top1_lo"] = float(acc["acc_top1_lo"].iloc[0]) if one else math.nan
        row["acc_top1_hi"] = float(acc["acc_top1_hi"].iloc[0]) if one else math.nan
        allacc = sub[sub["measurement"] == "accuracy"]
        row["ceiling_top1"] = _first(allacc["ceiling_top1"])
        row["acc_shape_mean"] = _mean(acc["acc_shape"])
        row["acc_direction_mean"] = _mean(acc["acc_direction"])
        row["ceiling_shape"] = _first(allacc["ceiling_shape"])
        row["ceiling_direction"] = _first(allacc["ceiling_direction"])
        rows.append(row)
    out = pd.DataFrame(rows)
    batches: dict[str, dict[str, float]] = {}
    scales: dict[str, str] = {}
    for scale, prefix in SCALES.items():
        at = df[df["scale"] == scale]
        if at[at["measurement"] != "accuracy"].empty:
            continue
        scales[prefix] = scale_label(df, scale)
        batches[prefix] = {}
        per_batch = measurements.per_batch()
        for suffix, col, meas, how in cost_columns():
            m = at[at["measurement"] == meas]
            batch = _pick_batch(m, how) if meas in per_batch else math.nan
            batches[prefix][suffix] = batch
            if not math.isnan(batch):
                m = m[m["batch_size"] == batch]
            m = m[m["status"] == "ok"]
            vals = m.groupby(keys, dropna=False)[col].median() if not m.empty else pd.Series(dtype=float)
            out[f"{prefix}_{suffix}"] = [vals.get(_key(r, keys), math.nan) for _, r in out.iterrows()]
        # the worst timing flag of the latency records behind this scale's latency/throughput cells
        lat = at[(at["measurement"] == "latency") & (at["status"] == "ok")]
        flags = [worst_timing(_select(lat, r, keys)) for _, r in out.iterrows()]
        out[f"{prefix}_timing_quality"] = [q for q, _ in flags]
        out[f"{prefix}_timing_reason"] = [why for _, why in flags]
    out["status"] = [_status_summary(df, r, keys) for _, r in out.iterrows()]
    out.attrs["scales"] = scales
    out.attrs["batches"] = batches
    out.attrs["keys"] = ["point" if k == "point_label" else k for k in keys]
    return out


def _key(row: pd.Series, keys: list[str]):
    vals = tuple(row["point" if k == "point_label" else k] for k in keys)
    return vals[0] if len(vals) == 1 else vals


def _first(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.iloc[0]) if not s.empty else math.nan


def _mean(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.mean()) if not s.empty else math.nan


def _select(df: pd.DataFrame, row: pd.Series, keys: list[str]) -> pd.DataFrame:
    sel = np.ones(len(df), bool)
    for k in keys:
        sel &= (df[k] == row["point" if k == "point_label" else k]).to_numpy()
    return df[sel]


def _status_summary(df: pd.DataFrame, row: pd.Series, keys: list[str]) -> str:
    bad = _select(df, row, keys)
    bad = bad[bad["status"] != "ok"]
    if bad.empty:
        return "ok"
    parts = []
    for (status, meas, scale), g in bad.groupby(["status", "measurement", "scale"], dropna=False, sort=False):
        b = sorted({int(x) for x in g["batch_size"].dropna()}) if meas in measurements.per_batch() else []
        where = f"{SCALES.get(scale, scale)} {meas}" + (f" b{','.join(map(str, b))}" if b else "")
        parts.append(f"{status}: {where}")
    return "; ".join(dict.fromkeys(parts))


def failed_cells(df: pd.DataFrame) -> dict[tuple, str]:
    """``(row key..., prefix, measurement, batch) -> status`` for every non-ok record (to print OOM in a cell)."""
    keys = row_keys(df)
    out: dict[tuple, str] = {}
    for _, r in df[df["status"] != "ok"].iterrows():
        key = tuple(r[k] for k in keys)
        b = r["batch_size"]
        out[key + (SCALES.get(r["scale"], r["scale"]), r["measurement"], float(b) if pd.notna(b) else math.nan)] = r["status"]
    return out


def failures_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every non-ok record: model, point, seed, measurement, scale, batch, status and its error message."""
    bad = df[df["status"] != "ok"].sort_values(["_model_sort", "_point_sort"], kind="stable")
    cols = ["run_id", "model", "family", "point_label", "seed", "measurement", "scale", "batch_size", "status", "error"]
    out = bad[cols].rename(columns={"point_label": "point", "batch_size": "batch"}).reset_index(drop=True)
    out["scale"] = out["scale"].map(lambda s: SCALES.get(s, s))
    out["error"] = out["error"].fillna("").astype(str).map(lambda e: e.strip().splitlines()[-1][:200] if e.strip() else "")
    return out


# ------------------------------------------------------------------------------------------ other tables
def ceiling_table(main: pd.DataFrame) -> pd.DataFrame:
    """Per family: its Bayes ceilings and the best / mean measured top-1 (fractions)."""
    rows = []
    for fam, g in main.groupby("family", sort=False):
        g = g[np.isfinite(g["acc_top1_mean"].astype(float))]
        best = g.loc[g["acc_top1_mean"].idxmax()] if not g.empty else None
        rows.append({
            "family": fam,
            "ceiling_top1": _first(main.loc[main["family"] == fam, "ceiling_top1"]),
            "ceiling_shape": _first(main.loc[main["family"] == fam, "ceiling_shape"]),
            "ceiling_direction": _first(main.loc[main["family"] == fam, "ceiling_direction"]),
            "best_model": best["model"] if best is not None else "",
            "best_acc_top1": float(best["acc_top1_mean"]) if best is not None else math.nan,
            "mean_acc_top1": float(g["acc_top1_mean"].mean()) if not g.empty else math.nan,
            "n_models": int((main["family"] == fam).sum()),
        })
    out = pd.DataFrame(rows)
    if not out.empty:
        # never negative: a result above its ceiling is judged against its interval (efficiency.ceiling_judgement)
        out["gap_to_ceiling"] = (out["ceiling_top1"] - out["best_acc_top1"]).clip(lower=0)
    return out


def flow_split_table(df: pd.DataFrame) -> pd.DataFrame:
    """Latency of models with a flow stage split into flow and network (ms, smallest batch, per scale)."""
    lat = df[(df["measurement"] == "latency") & (df["status"] == "ok") & df["flow_latency_ms_p50"].notna()]
    if lat.empty:
        return pd.DataFrame(columns=["model", "family", "scale", "batch", "latency_ms_p50", "flow_ms", "network_ms",
                                     "flow_share"])
    keys = row_keys(df)
    rows = []
    for scale, at in lat.groupby("scale", sort=False):
        at = at[at["batch_size"] == at["batch_size"].min()] if at["batch_size"].notna().any() else at
        for key, g in at.sort_values("_model_sort").groupby(keys, sort=False):
            total = float(g["latency_ms_p50"].median())
            flow = float(g["flow_latency_ms_p50"].median())
            row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            row.update(family=g["family"].iloc[0], scale=SCALES.get(scale, scale), batch=_first(g["batch_size"]),
                       latency_ms_p50=total, flow_ms=flow, network_ms=max(total - flow, 0.0),
                       flow_share=flow / total if total > 0 else math.nan, timing_quality=worst_timing(g)[0])
            rows.append(row)
    return pd.DataFrame(rows).rename(columns={"point_label": "point"})


def flagged_latency(df: pd.DataFrame) -> pd.DataFrame:
    """Every ok latency record flagged noisy or contended: model, point, seed, scale, batch, quality, reason."""
    if "timing_quality" not in df:
        return pd.DataFrame(columns=["model", "point", "seed", "scale", "batch", "timing_quality", "timing_reason"])
    lat = df[(df["measurement"] == "latency") & (df["status"] == "ok")]
    # a bool array, not a list: an empty list would select no *columns* (a run without latency records)
    lat = lat[np.array([is_flagged(q) for q in lat["timing_quality"]], dtype=bool)].sort_values(["_model_sort", "_point_sort"], kind="stable")
    out = lat[["model", "point_label", "seed", "scale", "batch_size", "timing_quality", "timing_reason"]]
    out = out.rename(columns={"point_label": "point", "batch_size": "batch"}).reset_index(drop=True)
    out["scale"] = out["scale"].map(lambda s: SCALES.get(s, s))
    return out


def varied_knobs(df: pd.DataFrame) -> dict[str, list]:
    """Knobs whose value differs between the points of the runs, with their sorted values."""
    knobs: dict[str, set] = {}
    for p in df["point"].dropna().unique():
        for k, v in point_knobs(p).items():
            knobs.setdefault(k, set()).add(json.dumps(v))
    out = {}
    for k, vs in knobs.items():
        vals = [json.loads(v) for v in vs]
        if len(vals) > 1:
            out[k] = sorted(vals, key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)))
    return out


def ablation_metrics() -> list[tuple[str, str, str]]:
    """(record column, measurement, axis label) of every column with an ablation label, by report rank."""
    return [(c.name, m.name, c.ablation) for m, c in measurements.columns("report") if c.ablation]


def ablation_table(df: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Long table for one knob: ``model, family, scale, <knob>, metric, mean, ci95, n`` (ok records only;
    latency/memory at each scale's smallest batch, accuracy mean ± t-CI over seeds)."""
    d = df[df["status"] == "ok"].copy()
    d[knob] = [point_knobs(p).get(knob) for p in d["point"]]
    d = d[d[knob].notna()]
    others = [c for c in ("run_id",) if d["run_id"].nunique() > 1]
    rows = []
    metrics, per_batch = ablation_metrics(), measurements.per_batch()
    for col, meas, _ in metrics:
        mean_ci = measurements.column(col).over_seeds == "mean_ci"
        m = d[d["measurement"] == meas]
        if m.empty or m[col].notna().sum() == 0:
            continue
        for scale, at in m.groupby("scale", sort=False):
            if meas in per_batch and at["batch_size"].notna().any():
                at = at[at["batch_size"] == at["batch_size"].min()]
            for key, g in at.groupby(others + ["model", knob], sort=False):
                mean, half, n = t_interval(g[col]) if mean_ci else (float(g[col].median()), math.nan, len(g))
                key = key if isinstance(key, tuple) else (key,)
                row = dict(zip(others + ["model", knob], key))
                row.update(family=g["family"].iloc[0], scale=SCALES.get(scale, scale), metric=col, mean=mean,
                           ci95=half, n=n, _model_sort=g["_model_sort"].iloc[0],
                           timing_quality=worst_timing(g)[0] if meas == "latency" else "")
                rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    metric_rank = {c: i for i, (c, _, _) in enumerate(metrics)}
    out["_metric_sort"] = out["metric"].map(metric_rank)
    return (out.sort_values(["_metric_sort", "scale", "_model_sort", knob], ascending=[True, False, True, True],
                            kind="stable").drop(columns=["_model_sort", "_metric_sort"]).reset_index(drop=True))
