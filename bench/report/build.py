"""``build_report``: runs -> tables -> figures -> Markdown + self-contained HTML under ``reports/<run-id>/``.

Computed first, rendered second: every number in the report comes from a table that is also written as CSV.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bench.results import RunStore, load_results, now_iso, resolve_run

from . import efficiency as EF
from . import figures as F
from . import paper
from . import param_sweep
from . import tables as T
from .render import Block, display_main_table, fmt_num, fmt_pct, render_html, render_markdown

FORMATS = ("md", "html", "tex")  # tex: report.tex (booktabs tables, PDF figures) beside tables/main.tex


@dataclass
class ReportResult:
    """Where a report was written and the main table it shows (numeric, accuracies as fractions)."""

    run_ids: list[str]
    out_dir: Path
    markdown: Path | None
    html: Path | None
    tables: dict[str, Path]
    figures: dict[str, Path]
    main_table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    latex: Path | None = None


    @property
    def files(self) -> list[Path]:
        """Every file written: the documents first, then tables and figures."""
        docs = [p for p in (self.markdown, self.html, self.latex) if p is not None]
        return docs + list(self.tables.values()) + [f for p in self.figures.values() for f in F.figure_files(p)]


def report_dir_name(run_ids: Sequence[str]) -> str:
    """``<id>`` for one run, ``<first-id>+<number of further runs>`` for several."""
    return run_ids[0] if len(run_ids) == 1 else f"{run_ids[0]}+{len(run_ids) - 1}"


def build_report(
    runs: Sequence[str] | str,
    *,
    results_root: str | Path = "results",
    out_root: str | Path = "reports",
    formats: Sequence[str] = FORMATS,
    dpi: int = 300,
    include_flagged: bool = False,
) -> ReportResult:
    """Write ``report.md`` / ``report.html`` / ``report.tex`` (as ``formats`` asks), ``tables/*.csv`` and
    ``figures/*.{png,pdf,svg}`` for one or more runs.
    Latencies flagged noisy/contended are marked everywhere and kept off the Pareto front unless
    ``include_flagged``.

    Raises ``RunNotFoundError`` for an unknown run and ``ValueError`` for no runs, an unknown format or a run
    without records.
    """
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if not runs:
        raise ValueError("no run given; pass a run id, a run directory or 'latest'")
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown report format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(FORMATS)}")
    paths = [resolve_run(r, results_root) for r in runs]
    run_ids = list(dict.fromkeys(p.name for p in paths))
    raw = load_results([str(p) for p in dict.fromkeys(paths)], results_root)
    if raw.empty:
        raise ValueError(f"run {', '.join(run_ids)} has no records yet; nothing to report")
    metas = {p.name: RunStore(p.parent, p.name).read_meta() for p in paths}
    out_dir = Path(out_root) / report_dir_name(run_ids)
    for d in (out_dir / "figures", out_dir / "tables"):
        d.mkdir(parents=True, exist_ok=True)
        for stale in [p for ext in ("png", "pdf", "svg", "csv", "tex") for p in d.glob(f"*.{ext}")]:  # a rebuilt report never shows old figures
            stale.unlink()

    df = T.prepare(raw)
    r = _Report(out_dir=out_dir, df=df, main=T.main_table(df), dpi=dpi, include_flagged=include_flagged)
    r.save_table("main", r.main)
    r.save_table("compact", paper.compact_numeric(r.main))
    failures = r.save_table("failures", T.failures_table(df))
    ceilings = r.save_table("ceilings", T.ceiling_table(r.main))

    title = f"fusionbench report — {', '.join(run_ids)}"
    _header(r, title, raw, metas, results_root)
    _summary(r, failures)
    from .claims import claims_blocks  # a `bench study` run's verdicts (bench/report/claims.py); none otherwise

    for rid, meta in metas.items():
        r.blocks += claims_blocks(meta, raw[raw["run_id"] == rid], r.fig_dir, r.save_table, r.figs, dpi)
    _main_tables(r)
    _pareto(r)
    _ceilings(r, ceilings)
    _sample_efficiency(r)
    _params_vs_frames(r)
    _flow_split(r)
    _ablations(r)
    _failures(r, failures, several=len(run_ids) > 1)
    r.blocks.append(Block("h2", "Environment and provenance"))
    for rid, meta in metas.items():
        r.blocks += _environment_blocks(rid, meta, df[df["run_id"] == rid], several=len(run_ids) > 1)
    if r.notes:
        r.blocks += [Block("h2", "Notes"), Block("list", items=r.notes)]
    r.blocks += [Block("h2", "Files"), Block("list", items=[f"`{p.relative_to(out_dir).as_posix()}`"
                                                            for p in [*r.tables.values(), *r.figs.values()]])]

    md_path = html_path = tex_path = None
    if "tex" in formats:
        tex_path = _write_latex(out_dir, r.main, r.figs, r.blocks, title, metas)
        r.tables["main_tex"] = out_dir / "tables" / "main.tex"
    if "md" in formats:
        md_path = out_dir / "report.md"
        md_path.write_text(render_markdown(r.blocks, out_dir), encoding="utf-8")
    if "html" in formats:
        html_path = out_dir / "report.html"
        html_path.write_text(render_html(r.blocks, title), encoding="utf-8")
    return ReportResult(run_ids=run_ids, out_dir=out_dir, markdown=md_path, html=html_path, tables=r.tables,
                        figures=r.figs, main_table=r.main, notes=r.notes, latex=tex_path)


# ------------------------------------------------------------------------------------------ sections
@dataclass
class _Report:
    """A report being built: its tables and records, and what the sections add (blocks, CSVs, figures, notes)."""

    out_dir: Path
    df: pd.DataFrame     # T.prepare of the records
    main: pd.DataFrame   # T.main_table
    dpi: int
    include_flagged: bool
    blocks: list[Block] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    figs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def fig_dir(self) -> Path:
        return self.out_dir / "figures"

    @property
    def scales(self) -> dict[str, str]:
        return self.main.attrs["scales"]

    def save_table(self, name: str, table: pd.DataFrame) -> pd.DataFrame:
        """``tables/<name>.csv`` (rounded, accuracies in %); returns ``table``."""
        path = self.out_dir / "tables" / f"{name}.csv"
        paper.csv_table(table).to_csv(path, index=False)
        self.tables[name] = path
        return table

    def figure(self, name: str, path: Path | None, heading: str | None, text: str, level: str = "h2") -> bool:
        """A figure that was drawn (``path``), under ``heading``; False (and nothing added) when none was."""
        if not path:
            return False
        self.figs[name] = path
        if heading is not None:
            self.blocks.append(Block(level, heading))
        self.blocks.append(Block("figure", path=path, text=text))
        return True


def _header(r: _Report, title: str, raw: pd.DataFrame, metas: dict[str, dict], results_root: str | Path) -> None:
    n = len(metas)
    r.blocks.append(Block("h1", title))
    r.blocks.append(Block("note", f"Generated {now_iso()} from {len(raw)} records of "
                                  f"{n} run{'s' if n > 1 else ''} under `{results_root}`."))
    for rid, meta in metas.items():
        status = meta.get("status")
        if status and status != "complete":
            r.blocks.append(Block("warn", f"run `{rid}` is **{status}**: its results are partial"
                                          + (f"; resume it with `bench run --resume {rid} --out {results_root}`."
                                             if status in ("interrupted", "failed") else ".")))
    for msg in raw.attrs.get("read_problems", []):  # unreadable lines, duplicate keys (resolved to one record)
        r.blocks.append(Block("warn", msg))


def _summary(r: _Report, failures: pd.DataFrame) -> None:
    df = r.df
    r.blocks.append(Block("h2", "Summary"))
    r.blocks.append(Block("list", items=_findings(r.main, failures, r.scales) + EF.accuracy_findings(df)
                          + _latency_quality(df) + _timing_flags(df, r.include_flagged)))
    flagged = T.flagged_latency(df)
    if not flagged.empty:
        r.save_table("flagged_latency", flagged)


def _main_tables(r: _Report) -> None:
    """The compact main table first, every column in "Full table" below (and in tables/main.csv)."""
    main, scales = r.main, r.scales
    r.blocks.append(Block("h2", "Main table"))
    disp = display_main_table(main, T.failed_cells(r.df))
    cost_at = paper.cost_prefix(main)
    legend = [f"**{p}** = {lab}" for p, lab in scales.items()]
    ci_note = ("Accuracy: mean over seeds ± half-width of the 95 % Student-t interval; a model with one seed has no "
               "interval (shown as n=1)." if main["acc_top1_ci95"].notna().any()
               else "Accuracy: one seed per model; [lo, hi] is its 95 % Wilson interval over the validation clips "
                    "(the clips' sampling error, not seed-to-seed variation: run more seeds, `--seeds 0,1,2`, for that)."
               if main.get("acc_top1_lo", pd.Series(dtype=float)).notna().any()
               else "Accuracy: one seed per model, so no confidence interval can be given; run more seeds (`--seeds 0,1,2`).")
    r.blocks.append(Block("table", table=paper.compact_display(disp, cost_at), text=" ".join([
        f"Accuracy on the {scales.get('train', 'training clip')}; GMACs, parameters, latency and peak memory at the "
        f"{scales[cost_at]} (medians over seeds)." if cost_at else "Accuracy on the training clip.", ci_note,
        "OOM/ERROR mark a failed measurement. Every column (ceilings, p90, throughput, both clips): the full table "
        "below and `tables/main.csv`; this table's numbers: `tables/compact.csv`."])))
    r.blocks.append(Block("h2", "Full table"))
    r.blocks.append(Block("table", table=disp, text=" ".join([
        "Accuracy is measured on the training clip; costs at each scale are medians over seeds.",
        "Column groups: " + "; ".join(legend) + "." if legend else "",
        ci_note, "Ceiling: Bayes-optimal top-1 of the model's family on this dataset (an upper bound implied by "
        "the family's invariance). Latency is per batch; OOM/ERROR mark a failed measurement; (noisy) / "
        "(contended) mark a latency whose interleaved rounds disagreed or ran while other processes wanted the "
        "cores (see the summary and `tables/flagged_latency.csv`). Raw numbers: "
        "`tables/main.csv`."])))


def _pareto(r: _Report) -> None:
    """Accuracy against cost at the deployment clip (the training clip when there is none)."""
    main, scales = r.main, r.scales
    prefix = "deploy" if "deploy" in scales else "train" if "train" in scales else None
    if not prefix:
        return
    path = F.pareto_figure(main, r.fig_dir / "pareto.png", prefix=prefix, clip_label=scales[prefix], dpi=r.dpi,
                           include_flagged=r.include_flagged)
    if r.figure("pareto", path, "Accuracy vs cost", text=(
            f"Top-1 accuracy (training clip, {_acc_claim(main)}) against GMACs and batch-"
            f"{_batch(main, prefix, 'latency_ms_p50')} latency p50 at the {scales[prefix]}. Dashed step: "
            "Pareto front (no model is both cheaper and more accurate); dotted lines: each family's Bayes ceiling."
            + ("" if r.include_flagged else " Hollow markers: latency flagged noisy/contended, left off the latency "
               "front (`bench report --include-flagged` puts them back)."))):
        front = _front_lists(main, prefix, r.include_flagged)
        if front:
            r.blocks.append(Block("list", items=front))


def _ceilings(r: _Report, ceilings: pd.DataFrame) -> None:
    path = F.ceiling_figure(r.main, r.fig_dir / "ceilings.png", chance=_chance(r.df), dpi=r.dpi)
    if not r.figure("ceilings", path, "Accuracy against the Bayes ceiling", text=(
            f"Per model: measured accuracy (bars, family colour; top-1, {_acc_claim(r.main)}) and the Bayes ceiling "
            "of its family (black tick). Shape and direction are the two attributes of a synthetic class: "
            "single-frame models can read the shape but not the direction, order-invariant models the axis but not "
            "the sign.")):
        return
    if not ceilings.empty:
        ct = ceilings.copy()
        for c in ("ceiling_top1", "ceiling_shape", "ceiling_direction", "best_acc_top1", "mean_acc_top1",
                  "gap_to_ceiling"):
            if c in ct:
                ct[c] = [fmt_pct(v) for v in ct[c]]
        ct.columns = [c.replace("_", " ") + (" (%)" if c.startswith(("ceiling", "best_acc", "mean_acc", "gap"))
                                              else "") for c in ct.columns]
        r.blocks.append(Block("table", table=ct))


def _sample_efficiency(r: _Report) -> None:
    """The plateau protocol's learning curves (bench/report/efficiency.py)."""
    eff = EF.efficiency_table(r.df)
    if eff.empty:
        return
    r.save_table("sample_efficiency", eff)
    r.blocks.append(Block("h2", "Training to a plateau: sample efficiency"))
    r.figure("sample_efficiency", EF.efficiency_figure(r.df, r.fig_dir / "sample_efficiency.png", dpi=r.dpi), None,
             text=EF.FIGURE_TEXT)
    r.blocks.append(Block("table", table=EF.display_table(eff)))


def _params_vs_frames(r: _Report) -> None:
    try:
        pvt, source = param_sweep.params_vs_frames(r.df)
    except Exception as exc:  # noqa: BLE001 - a figure we cannot compute is a note, never a failed report
        pvt, source = pd.DataFrame(), "built"
        r.notes.append(f"params vs T not computed: {type(exc).__name__}: {exc}")
    if pvt.empty:
        return
    r.save_table("params_vs_frames", pvt)
    errs = pvt[pvt.get("error", pd.Series("", index=pvt.index)).fillna("").astype(bool)] if "error" in pvt else pvt.iloc[0:0]
    for _, e in errs.drop_duplicates("model").iterrows():
        r.notes.append(f"params vs T: {e['model'] or 'models'} not built ({e['error']})")
    source_note = ("from the ablation over frames" if source == "ablation"
                   else f"computed by building each model at T ∈ {{{','.join(map(str, param_sweep.PARAM_FRAMES))}}}")
    path = F.params_figure(pvt, r.fig_dir / "params_vs_frames.png", source_note=source_note, dpi=r.dpi)
    r.figure("params_vs_frames", path, "Parameters vs clip length", text=(
        f"Total and first-convolution parameters against T ({source_note}). Early fusion stacks the T frames "
        "as 3T input channels of the first convolution, so its first conv grows linearly with T while models "
        "that share one per-frame encoder stay flat; models with identical curves are drawn as one dashed line."))


def _flow_split(r: _Report) -> None:
    flow = T.flow_split_table(r.df)
    if flow.empty:
        return
    r.save_table("flow_split", flow)
    path = F.flow_figure(flow, r.fig_dir / "flow_split.png", scale_labels=r.scales, dpi=r.dpi)
    r.figure("flow_split", path, "Two-stream latency: optical flow vs network", text=(
        "Median latency of models that compute optical flow in their forward pass, split into the flow "
        "stage (timed alone) and the rest of the network; the label gives the total and the flow share. "
        "The two are timed in the same interleaved rounds but separately, so on a noisy machine the share can "
        "exceed 100 %; (noisy) / (contended) mark a flagged timing."))


def _ablations(r: _Report) -> None:
    knobs = T.varied_knobs(r.df)
    if knobs:
        r.blocks.append(Block("h2", "Ablations"))
    metric_labels = {c: lab for c, _, lab in T.ablation_metrics()}
    for knob, values in knobs.items():
        abl = T.ablation_table(r.df, knob)
        if abl.empty:
            continue
        r.save_table(f"ablation_{knob}", abl)
        path = F.ablation_figure(abl, knob, r.fig_dir / f"ablation_{knob}.png", metric_labels=metric_labels,
                                 scale_labels=r.scales, dpi=r.dpi)
        r.figure(f"ablation_{knob}", path, f"{knob} ∈ {{{', '.join(str(v) for v in values)}}}", level="h3", text=(
            f"Each metric against {knob}, one line per model (colour = family). Accuracy: {_acc_claim(abl)}; latency "
            f"and memory at the smallest batch measured; a red ring marks a latency flagged "
            f"noisy/contended. Data: `tables/ablation_{knob}.csv`."))


def _failures(r: _Report, failures: pd.DataFrame, *, several: bool) -> None:
    r.blocks.append(Block("h2", "Failed measurements"))
    if failures.empty:
        r.blocks.append(Block("p", "None: every measurement finished with status ok."))
    else:
        r.blocks.append(Block("table", table=_failures_by_seed(failures, several=several),
                              text="Records whose status is not ok (seeds that failed the same way share a row); they "
                                   "are absent from the figures, not dropped silently. `tables/failures.csv` holds one "
                                   "row per record."))


def _write_latex(out_dir: Path, main: pd.DataFrame, figs: dict[str, Path], blocks: list[Block], title: str,
                 metas: dict[str, dict]) -> Path:
    """``tables/main.tex`` (the compact table, booktabs, to ``\\input`` in a paper) and ``report.tex``, a
    standalone document holding it and every figure as PDF with the report's captions."""
    devices = sorted({str((m.get("environment") or {}).get("device_name") or (m.get("environment") or {}).get("device")
                          or "unknown") for m in metas.values()})
    table = paper.latex_table(paper.compact_numeric(main), caption=paper.caption_text(main, device=", ".join(devices)))
    (out_dir / "tables" / "main.tex").write_text(table, encoding="utf-8")
    captions = {b.path: b.text for b in blocks if b.kind == "figure"}
    fig_list = [(p.with_suffix(".pdf").relative_to(out_dir).as_posix(), captions.get(p, p.stem)) for p in figs.values()]
    path = out_dir / "report.tex"
    path.write_text(paper.latex_document([("Main table", r"\input{tables/main.tex}")], fig_list, title), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ helpers
def _acc_claim(table: pd.DataFrame) -> str:
    """What an accuracy in a caption is: a mean with a 95 % interval only where some row has seeds to make one."""
    ci = next((c for c in ("acc_top1_ci95", "ci95") if c in table), None)
    if ci is not None and table[ci].notna().any():
        return "mean ± 95% t-CI over seeds"
    return "one seed: no seed interval (the main table gives each accuracy's 95 % Wilson interval over the clips)"


def _batch(main: pd.DataFrame, prefix: str, suffix: str) -> str:
    b = main.attrs.get("batches", {}).get(prefix, {}).get(suffix, math.nan)
    return str(int(b)) if isinstance(b, float) and math.isfinite(b) else "?"


def _chance(df: pd.DataFrame) -> float | None:
    k = df["num_classes"].dropna().unique()
    return 1.0 / float(k[0]) if len(k) == 1 and float(k[0]) > 0 else None


def _name(r: pd.Series) -> str:
    return r["model"] + (f" ({r['point']})" if "point" in r and isinstance(r.get("point"), str) else "")


def _front_lists(main: pd.DataFrame, prefix: str, include_flagged: bool = False) -> list[str]:
    items = []
    for suffix, what in (("gmacs", "GMACs"), ("latency_ms_p50", "latency")):
        col = f"{prefix}_{suffix}"
        if col not in main:
            continue
        cost = main[col]
        if suffix.startswith("latency") and not include_flagged and f"{prefix}_timing_quality" in main:
            cost = cost.where(~main[f"{prefix}_timing_quality"].map(T.is_flagged).astype(bool))  # flagged: off the front
        mask = T.pareto_front(cost, main["acc_top1_mean"])
        front = main[mask].sort_values(col)
        if not front.empty:
            parts = [f"{_name(r)} ({fmt_pct(r['acc_top1_mean'])} %, {fmt_num(r[col])} "
                     f"{'GMACs' if suffix == 'gmacs' else 'ms'})" for _, r in front.iterrows()]
            items.append(f"Pareto-optimal for accuracy vs {what} ({prefix} clip), cheapest first: " + ", ".join(parts))
    return items


def _findings(main: pd.DataFrame, failures: pd.DataFrame, scales: dict[str, str]) -> list[str]:
    items: list[str] = []
    acc = main[main["acc_top1_mean"].notna()]
    if not acc.empty:
        best = acc.loc[acc["acc_top1_mean"].idxmax()]
        ci = f" ± {fmt_pct(best['acc_top1_ci95'])}" if pd.notna(best["acc_top1_ci95"]) else ""
        ceil = f" (family ceiling {fmt_pct(best['ceiling_top1'], 0)} %)" if pd.notna(best["ceiling_top1"]) else ""
        items.append(f"Most accurate: **{_name(best)}**, {fmt_pct(best['acc_top1_mean'])}{ci} % top-1{ceil}.")
        for fam, g in acc.groupby("family", sort=False):
            ceil = g["ceiling_top1"].dropna()
            if ceil.empty:
                continue
            b = g.loc[g["acc_top1_mean"].idxmax()]
            items.append(f"{fam.replace('_', ' ')}: best {_name(b)} at {fmt_pct(b['acc_top1_mean'])} % against a "
                         f"{fmt_pct(ceil.iloc[0], 0)} % ceiling ({len(g)} model{'s' if len(g) > 1 else ''}).")
        seeds = sorted(set(int(n) for n in acc["n_seeds"]))
        items.append(f"Seeds per model: {', '.join(map(str, seeds))}" + (
            " — each single-seed accuracy carries its 95 % Wilson interval over the validation clips, not a seed "
            "interval." if seeds == [1] else "."))
    for prefix in ("deploy", "train"):
        col = f"{prefix}_latency_ms_p50"
        if col in main and main[col].notna().any():
            fast = main.loc[main[col].idxmin()]
            slow = main.loc[main[col].idxmax()]
            items.append(f"Latency p50 at the {scales[prefix]}: {fmt_num(fast[col])} ms ({_name(fast)}) to "
                         f"{fmt_num(slow[col])} ms ({_name(slow)}), batch {_batch(main, prefix, 'latency_ms_p50')}.")
            break
    if not failures.empty:
        counts = failures["status"].value_counts()
        items.append(f"{len(failures)} measurement{'s' if len(failures) > 1 else ''} failed ("
                     + ", ".join(f"{n} {s}" for s, n in counts.items()) + "): "
                     + ", ".join(dict.fromkeys(failures["model"])) + " — see *Failed measurements*.")
    return items or ["No ok accuracy or latency records yet."]


def _failures_by_seed(failures: pd.DataFrame, *, several: bool) -> pd.DataFrame:
    """One row per (model, point, measurement, scale, batch, status, error) with its seeds listed."""
    keys = [c for c in failures.columns if c not in ("seed",) and (several or c != "run_id")]
    f = failures.copy()
    f["batch"] = f["batch"].map(lambda b: str(int(b)) if pd.notna(b) else "")
    f["seed"] = f["seed"].map(lambda x: str(int(x)) if pd.notna(x) else "?")
    out = f.groupby(keys, sort=False, dropna=False)["seed"].agg(lambda s: ",".join(dict.fromkeys(s))).reset_index()
    return out[[c for c in keys if c not in ("status", "error")] + ["seed", "status", "error"]].rename(
        columns={"seed": "seeds"})


def _latency_quality(df: pd.DataFrame) -> list[str]:
    """A warning when the latency measurement itself flagged wide spreads (IQR / median > 0.1)."""
    if "latency_spread_warning" not in df:
        return []
    lat = df[(df["measurement"] == "latency") & (df["status"] == "ok")]
    flagged = lat[lat["latency_spread_warning"].astype("boolean").fillna(False).astype(bool)]
    if flagged.empty:
        return []
    return [f"Latency spread: {len(flagged)} of {len(lat)} latency measurements have IQR / median > 0.1 (a noisy "
            f"machine or bimodal timings) — compare their medians with care and re-run on an idle machine "
            f"({', '.join(list(dict.fromkeys(flagged['model']))[:6])}{', ...' if flagged['model'].nunique() > 6 else ''})."]


def _timing_flags(df: pd.DataFrame, include_flagged: bool) -> list[str]:
    """A bullet naming every latency flagged noisy/contended by the interleaved rounds, with the first reason."""
    flagged = T.flagged_latency(df)
    if flagged.empty:
        return []
    parts = []
    for (model, scale, batch), g in flagged.groupby(["model", "scale", "batch"], sort=False):
        r = g.iloc[0]
        parts.append(f"{model} ({scale}, batch {int(batch) if pd.notna(batch) else '?'}): {r['timing_quality']} — "
                     f"{r['timing_reason'] or 'no reason recorded'}")
    head = (f"Latency flagged ({len(flagged)} record{'s' if len(flagged) > 1 else ''}; marked in every table and "
            f"figure{'' if include_flagged else ', left off the Pareto front'})")
    if len(parts) <= _FLAG_REASONS:
        return [head + ": " + "; ".join(parts) + "."]
    # many: name every model (the reader looks for theirs), give the first reasons; all are in the records
    counts = flagged["timing_quality"].value_counts()
    models = ", ".join(dict.fromkeys(flagged["model"]))
    return [head + f": {', '.join(f'{n} {q}' for q, n in counts.items())}, in {models}. First "
            f"{_FLAG_REASONS}: " + "; ".join(parts[:_FLAG_REASONS]) +
            f"; the other {len(parts) - _FLAG_REASONS} in tables/flagged_latency.csv and each record's `timing_reason`."]


_FLAG_REASONS = 4  # reasons spelled out in the summary before it only counts them


_ENV_KEYS = (
    ("device", "device"), ("device_name", "device name"), ("cpu_name", "CPU"), ("cpu_count", "CPU cores"),
    ("threads", "torch intra-op threads"), ("interop_threads", "torch inter-op threads"),
    ("torch_version", "torch"), ("torchvision_version", "torchvision"), ("cuda_version", "CUDA"),
    ("cudnn_version", "cuDNN"), ("driver_version", "GPU driver"), ("python_version", "Python"),
    ("platform", "platform"), ("fvcore_version", "fvcore"), ("pandas_version", "pandas"), ("av_version", "PyAV"),
    ("tf32_matmul", "TF32 matmul"), ("cudnn_benchmark", "cuDNN benchmark"), ("malloc", "allocator"),
    ("flow_cpu_backend", "Horn–Schunck on CPU"), ("numba_version", "numba"),
    ("fusionbench_version", "fusionbench"), ("git_commit", "git commit"), ("git_dirty", "uncommitted changes"),
)


def _environment_blocks(rid: str, meta: dict[str, Any], recs: pd.DataFrame, *, several: bool) -> list[Block]:
    env = dict(meta.get("environment") or {})
    if not env and not recs.empty:  # an old run without run.json: fall back to the provenance on the records
        first = recs.iloc[0]
        env = {k: first[k] for k in ("device", "device_name", "threads", "torch_version", "git_commit", "git_dirty")
               if k in recs and pd.notna(first[k])}
    items: list[tuple[str, Any]] = [("run", rid)]
    for key, label in (("status", "run status"), ("started_at", "started"), ("finished_at", "finished")):
        if meta.get(key) is not None:
            items.append((label, str(meta[key])))
    if meta.get("wall_time_s") is not None:
        items.append(("wall time (s)", float(meta["wall_time_s"])))
    if meta.get("matmul_peak_gflops_s") is not None:
        items.append(("matmul peak (GFLOP/s)", float(meta["matmul_peak_gflops_s"])))
    for key, label in _ENV_KEYS:
        v = env.get(key)
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            v = "yes" if v else "no"
        elif not isinstance(v, (int, float, np.integer, np.floating)):
            v = str(v)
        items.append((label, v))
    blocks = [Block("h3", f"Run {rid}")] if several else []
    blocks.append(Block("kv", items=items))
    if meta.get("command"):
        blocks.append(Block("p", "Command that produced the run:"))
        blocks.append(Block("code", meta["command"], lang="bash"))
    spec = meta.get("spec") or meta.get("points")
    if spec:
        blocks.append(Block("code", json.dumps(spec, indent=2, sort_keys=True, default=str), lang="json",
                            collapsed=True, title="Full run spec (run.json)"))
    return blocks
