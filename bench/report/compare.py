"""``compare_runs``: one metric across models (relative to a baseline model) or across two runs (B / A),
with a Mann–Whitney U test on the raw latency samples and a bootstrap CI of the ratio.

Why Mann–Whitney: latency samples are skewed and heavy-tailed (scheduler hiccups, GC, clock boosts), so a
rank test that assumes no distribution is the honest default; with a dozen models the p-values are Holm-
adjusted so "significant" holds for the whole table, not one row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from bench import measurements
from bench.results import load_results, resolve_run

from . import figures as F
from . import tables as T
from .render import to_markdown

# metric -> (measurement it lives in, statistic of the raw latency samples it summarises, or None): the columns
# the measurement table (bench/measurements.py) gives a unit, read live so a registered measurement is comparable.
METRICS = measurements.LiveMap(measurements.compare_metrics)
N_BOOT = 2000


@dataclass
class CompareResult:
    """The comparison table (one row per model and measurement group) and the files written."""

    table: pd.DataFrame
    figure: Path
    csv: Path
    markdown: Path
    out_dir: Path
    metric: str
    baseline: str | None
    run_ids: list[str]
    notes: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # setups that differ between the two runs, said first
    better: str = "lower"  # which way a ratio is an improvement for this metric ("lower" | "higher")


def _statistic(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """Vectorised over the last axis (for the bootstrap)."""
    if kind == "mean":
        return lambda x: x.mean(axis=-1)
    if kind == "inv_p50":  # throughput and achieved GFLOP/s scale with 1 / median latency at a fixed batch
        return lambda x: 1.0 / np.median(x, axis=-1)
    q = float(kind[1:])
    return lambda x: np.percentile(x, q, axis=-1)


def _samples(g: pd.DataFrame) -> np.ndarray:
    if "latency_samples_ms" not in g:
        return np.empty(0)
    out = [np.asarray(s, float) for s in g["latency_samples_ms"] if isinstance(s, (list, tuple, np.ndarray)) and len(s)]
    return np.concatenate(out) if out else np.empty(0)


def ratio_test(a: np.ndarray, b: np.ndarray, kind: str | None, *, seed: int = 0) -> dict[str, float]:
    """Mann–Whitney U (two-sided) of samples ``b`` vs ``a``, ``P(b < a)``, and a percentile-bootstrap 95 % CI
    of ``stat(b) / stat(a)``; NaNs when either side has fewer than 2 samples or no statistic applies."""
    out = dict(u_stat=math.nan, p_value=math.nan, prob_b_lower=math.nan, ratio_ci_low=math.nan, ratio_ci_high=math.nan)
    if kind is None or len(a) < 2 or len(b) < 2:
        return out
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    out.update(u_stat=float(res.statistic), p_value=float(res.pvalue),
               prob_b_lower=float(res.statistic) / (len(a) * len(b)))
    rng = np.random.default_rng(seed)
    stat = _statistic(kind)
    ra = stat(a[rng.integers(0, len(a), (N_BOOT, len(a)))])
    rb = stat(b[rng.integers(0, len(b), (N_BOOT, len(b)))])
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = np.nanpercentile(rb / ra, [2.5, 97.5])
    out.update(ratio_ci_low=float(lo), ratio_ci_high=float(hi))
    return out


def _paired(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> dict[str, Any]:
    """The paired accuracy test of ``b`` against ``a`` (ok records); only top-1 carries per-clip correctness."""
    from .efficiency import paired_test

    return paired_test(a[a["status"] == "ok"], b[b["status"] == "ok"]) if metric == "acc_top1" else {}


def holm(p: pd.Series) -> pd.Series:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN)."""
    vals = p.to_numpy(float)
    ok = np.flatnonzero(np.isfinite(vals))
    adj = np.full(len(vals), math.nan)
    if len(ok):
        order = ok[np.argsort(vals[ok])]
        m = len(order)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * vals[i]))
            adj[i] = running
    return pd.Series(adj, index=p.index)


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else "n.s."


def _load(run: str, root: str | Path) -> tuple[str, pd.DataFrame]:
    path = resolve_run(run, root)
    df = load_results([str(path)], root)
    if df.empty:
        raise ValueError(f"run {path.name!r} has no records yet; nothing to compare")
    return path.name, T.prepare(df)


def _groups(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    meas, _ = METRICS[metric]
    d = df[df["measurement"] == meas].copy()
    if metric not in d:
        d[metric] = math.nan
    d["batch"] = d["batch_size"]
    return d


def _group_label(scale_labels: dict[str, str], scale: str, batch: Any, point: str, with_point: bool) -> str:
    label = scale_labels.get(scale, scale)
    if pd.notna(batch):
        label += f", batch {int(batch)}"
    if with_point:
        label += f" [{point}]"
    return label


def _summarise(g: pd.DataFrame, metric: str) -> tuple[float, np.ndarray, str, int, str]:
    """``(value, raw samples, status, ok records, timing_quality)`` of one model's records in a group."""
    ok = g[g["status"] == "ok"]
    status = "ok" if not ok.empty else ", ".join(dict.fromkeys(g["status"]))
    value = float(ok[metric].median()) if not ok.empty and ok[metric].notna().any() else math.nan
    quality = T.worst_timing(ok)[0] if METRICS[metric][0] == "latency" else ""
    return value, _samples(ok), status, len(ok), quality


# Setups that make two runs' latencies incomparable as a like-for-like change: (record column, what to call it).
SETUP_KEYS = (
    ("device", "device"), ("device_name", "device name"), ("latency_threads", "threads"), ("threads", "threads"),
    ("torch_version", "torch version"), ("cuda_version", "CUDA version"), ("latency_amp", "AMP"),
    ("latency_channels_last", "channels-last"), ("latency_compiled", "torch.compile"),
    ("cudnn_benchmark", "cudnn.benchmark"), ("git_commit", "commit"), ("git_dirty", "uncommitted changes"),
)


def _setup_values(d: pd.DataFrame, col: str) -> list[str]:
    if col not in d:
        return []
    vals = d[col] if col == "latency_amp" else d[col].dropna()  # amp None means "off", not "unknown"
    return sorted({"off" if v is None or (isinstance(v, float) and math.isnan(v)) else
                   str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in vals})


def setup_differences(a: pd.DataFrame, b: pd.DataFrame, id_a: str, id_b: str) -> list[str]:
    """One line per setup the two runs' latency records differ in (threads, device, versions, AMP, ...)."""
    la, lb = (d[d["measurement"] == "latency"] if "measurement" in d else d for d in (a, b))
    out, seen = [], set()
    for col, what in SETUP_KEYS:
        if what in seen:
            continue
        va, vb = _setup_values(la, col), _setup_values(lb, col)
        if va and vb:
            seen.add(what)
            if va != vb:
                out.append(f"runs differ in {what}: {id_a} {', '.join(va)} vs {id_b} {', '.join(vb)}")
    return out


def compare_runs(
    run_a: str,
    run_b: str | None = None,
    *,
    metric: str = "latency_ms_p50",
    baseline: str = "single_frame",
    results_root: str | Path = "results",
    out_dir: str | Path | None = None,
    dpi: int = 150,
) -> CompareResult:
    """One run: each model's ``metric`` divided by the ``baseline`` model's, per (scale, batch, point).
    Two runs: per model, run B's ``metric`` divided by run A's. Latency-derived metrics get a Mann–Whitney U
    test on the raw ``latency_samples_ms`` and a bootstrap CI of the ratio. Writes CSV, Markdown and PNG to
    ``out_dir`` (default ``reports/compare-<A>[-vs-<B>]``). Raises ``RunNotFoundError`` / ``ValueError``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    id_a, dfa = _load(run_a, results_root)
    id_b, dfb = _load(run_b, results_root) if run_b is not None else (None, None)
    meas, kind = METRICS[metric]
    for rid, d in ((id_a, dfa), (id_b, dfb)):
        if d is not None:
            _check_has_metric(d, rid, metric, meas)
    differences = setup_differences(dfa, dfb, id_a, id_b) if id_b else []
    notes: list[str] = []
    if run_b is None:
        rows = _baseline_rows(dfa, id_a, metric, baseline, notes)
    else:
        rows = _pair_rows(dfa, dfb, id_a, id_b, metric, notes)
    if metric == "acc_top1":
        notes.append("acc_top1: paired test on identical validation clips (exact McNemar on one seed, t-test of "
                     "per-seed differences on several), Holm-adjusted; diff = B - A in accuracy (fraction)")
    elif kind is None:
        notes.append(f"{metric} has no raw samples: ratios only, no significance test")
    table = _tested(_group_major(pd.DataFrame(rows)), notes)

    default = f"compare-{id_a}" + (f"-vs-{id_b}" if id_b else "")
    out = Path(out_dir) if out_dir is not None else Path("reports") / default
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare_{metric}"
    csv = out / f"{stem}.csv"
    table.to_csv(csv, index=False)
    unit = measurements.column(metric).unit
    if id_b:
        title = f"{metric}: {id_b} (B) / {id_a} (A)"
        xlabel = f"{metric}: B / A (log scale; < 1: B lower)"
    else:
        title = f"{metric} relative to {baseline} — run {id_a}"
        xlabel = f"{metric} / {baseline} (log scale; < 1: lower)"
    plot = table[table["model"] != baseline] if not id_b else table
    fig = F.compare_figure(plot if not plot.empty else table, out / f"{stem}.png", title=title, xlabel=xlabel, dpi=dpi)
    md = out / f"{stem}.md"
    md.write_text(_markdown(table, title, unit, kind, notes, fig.name, differences), encoding="utf-8")
    return CompareResult(table=table, figure=fig, csv=csv, markdown=md, out_dir=out, metric=metric,
                         baseline=None if id_b else baseline, run_ids=[i for i in (id_a, id_b) if i], notes=notes,
                         differences=differences, better=measurements.column(metric).better)


def _check_has_metric(d: pd.DataFrame, rid: str, metric: str, meas: str) -> None:
    """A run without a single value of ``metric`` (or without latency records, for a latency metric): one line."""
    if meas == "latency" and not ((d["measurement"] == "latency") & (d["status"] == "ok")).any():
        raise ValueError(f"run {rid!r} has no latency records; compare latency between runs that measured it "
                         f"(bench run --measure latency), or pick another --metric")
    if metric not in d or d[metric].notna().sum() == 0:
        have = [m for m in METRICS if m in d and d[m].notna().any()]
        raise ValueError(f"run {rid!r} has no {metric!r} values; metrics it has: {', '.join(have) or 'none'}")


def _baseline_rows(dfa: pd.DataFrame, id_a: str, metric: str, baseline: str, notes: list[str]) -> list[dict[str, Any]]:
    """One run: a row per (scale, batch, point, model), the model's ``metric`` against the baseline model's."""
    meas, kind = METRICS[metric]
    d = _groups(dfa, metric)
    models = list(dict.fromkeys(d["model"]))
    if baseline not in models:
        raise ValueError(f"baseline model {baseline!r} is not in run {id_a!r}; choose from {', '.join(models)}")
    scale_labels = {s: T.scale_label(dfa, s) for s in d["scale"].dropna().unique()}
    with_point = d["point_label"].nunique() > 1
    rows: list[dict[str, Any]] = []
    for (scale, batch, point), g in d.groupby(["scale", "batch", "point_label"], dropna=False, sort=False):
        gb = g[g["model"] == baseline]
        if gb.empty:
            notes.append(f"no {baseline} record at {scale}/batch {batch}/{point}: group skipped")
            continue
        base_val, base_s, base_status, _, base_q = _summarise(gb, metric)
        for model in T.model_order(g):
            gm = g[g["model"] == model]
            val, s, status, n, q = _summarise(gm, metric)
            test = ratio_test(base_s, s, kind) if model != baseline else ratio_test(np.empty(0), s, None)
            if meas == "accuracy" and model != baseline:  # paired on identical clips (McNemar / seed t)
                test.update(_paired(gb, gm, metric))
            rows.append(dict(group=_group_label(scale_labels, scale, batch, point, with_point),
                             scale=T.SCALES.get(scale, scale), batch=batch, point=point, model=model,
                             family=gm["family"].iloc[0], value=val, baseline_value=base_val,
                             ratio=val / base_val if base_val else math.nan, n_samples=len(s),
                             n_baseline_samples=len(base_s), **test, timing_quality=q, baseline_timing_quality=base_q,
                             status=status if base_status == "ok" else f"baseline {base_status}"))
    return rows


def _pair_rows(dfa: pd.DataFrame, dfb: pd.DataFrame, id_a: str, id_b: str, metric: str,
               notes: list[str]) -> list[dict[str, Any]]:
    """Two runs: a row per (scale, batch, point, model) both have, run B's ``metric`` against run A's."""
    meas, kind = METRICS[metric]
    da, db = _groups(dfa, metric), _groups(dfb, metric)
    scale_labels = {s: T.scale_label(dfa, s) for s in da["scale"].dropna().unique()}
    keys = ["scale", "batch", "point_label", "model"]
    with_point = da["point_label"].nunique() > 1
    gb_index = {k: g for k, g in db.groupby(keys, dropna=False, sort=False)}
    only_a = []
    rows: list[dict[str, Any]] = []
    for key, ga in da.sort_values("_model_sort", kind="stable").groupby(keys, dropna=False, sort=False):
        gb = gb_index.pop(key, None)
        if gb is None:
            only_a.append(key[-1])
            continue
        va, sa, sta, _, qa = _summarise(ga, metric)
        vb, sb, stb, _, qb = _summarise(gb, metric)
        scale, batch, point, model = key
        rows.append(dict(group=_group_label(scale_labels, scale, batch, point, with_point),
                         scale=T.SCALES.get(scale, scale), batch=batch, point=point, model=model,
                         family=ga["family"].iloc[0], value_a=va, value_b=vb,
                         ratio=vb / va if va else math.nan, n_samples_a=len(sa), n_samples_b=len(sb),
                         **ratio_test(sa, sb, kind), **(_paired(ga, gb, metric) if meas == "accuracy" else {}),
                         timing_quality_a=qa, timing_quality_b=qb,
                         status="ok" if sta == stb == "ok" else f"A {sta}, B {stb}"))
    if only_a:
        notes.append(f"only in {id_a}: {', '.join(dict.fromkeys(only_a))}")
    if gb_index:
        notes.append(f"only in {id_b}: {', '.join(dict.fromkeys(k[-1] for k in gb_index))}")
    if not rows:
        raise ValueError(f"runs {id_a!r} and {id_b!r} share no (model, scale, batch, point) with {metric!r}")
    return rows


def _group_major(table: pd.DataFrame) -> pd.DataFrame:
    """Group-major order: train clip before deploy clip, small batches first, then models by family."""
    scale_rank = {v: i for i, v in enumerate(T.SCALES.values())}
    group_key = [(scale_rank.get(s, 9), b if pd.notna(b) else -1.0, str(p))
                 for s, b, p in zip(table["scale"], table["batch"], table["point"])]
    return table.iloc[sorted(range(len(table)), key=group_key.__getitem__)].reset_index(drop=True)


def _tested(table: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Holm-adjusted p-values and stars. A flagged timing (noisy / contended) is never called a significant
    difference: its samples do not come from the machine the other side ran on. It keeps its raw p_value but
    leaves the Holm family."""
    qcols = [c for c in ("timing_quality", "baseline_timing_quality", "timing_quality_a", "timing_quality_b") if c in table]
    table["flagged"] = [any(T.is_flagged(q) for q in qs) for qs in zip(*(table[c] for c in qcols))] if qcols else False
    table["p_holm"] = holm(table["p_value"].where(~table["flagged"]))
    table["signif"] = ["flagged" if f else _stars(p) for f, p in zip(table["flagged"], table["p_holm"])]
    if table["flagged"].any():
        notes.append(f"{int(table['flagged'].sum())} row(s) have a latency flagged noisy/contended on either side: "
                     "shown, never called significant (signif = flagged)")
    return table


def _markdown(table: pd.DataFrame, title: str, unit: str, kind: str | None, notes: list[str], fig: str,
              differences: list[str] = ()) -> str:
    show = table.drop(columns=["u_stat", "scale", "batch", "point", "flagged"], errors="ignore").copy()
    for c in ("p_value", "p_holm"):
        show[c] = [f"{p:.2g}" if np.isfinite(p) else "—" for p in show[c]]
    text = [f"# {title}", ""] + ([*[f"- **{d}**" for d in differences], ""] if differences else []) + [f"Values in {unit}. " + (
        "`p_value`: two-sided Mann–Whitney U on the raw latency samples (seeds pooled); `p_holm`: Holm-adjusted "
        "over the table; `prob_b_lower`: probability that a random sample of the compared side is lower than one "
        "of the reference; `ratio_ci_*`: percentile-bootstrap 95% CI of the ratio "
        f"({N_BOOT} resamples)." if kind else "No raw samples exist for this metric, so no test is made."),
        "", to_markdown(show), "", f"![{title}]({fig})"]
    if notes:
        text += ["", *[f"- {n}" for n in notes]]
    return "\n".join(text) + "\n"
