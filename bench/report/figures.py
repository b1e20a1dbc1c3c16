"""Report figures: tables in, PNG files out (matplotlib Agg under a seaborn theme; never shows, never prints).

Conventions every figure follows: colour = model family (the same three colours everywhere), marker = model
within its family, units in every axis label, point labels placed so they do not overlap, accuracy in %.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on servers and in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from .labels import place_labels  # noqa: E402
from .tables import FAMILY_ORDER, is_flagged, pareto_front  # noqa: E402

_CB = sns.color_palette("colorblind")
FAMILY_COLORS = {
    "single_frame": _CB[0],
    "order_invariant": _CB[1],
    "order_aware": _CB[2],
    "unknown": (0.5, 0.5, 0.5),
}
FAMILY_TITLES = {"single_frame": "single frame", "order_invariant": "order invariant", "order_aware": "order aware"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
MIXED = (0.3, 0.3, 0.3)
_RATIO_TICKS = (1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 1, 1.25, 2, 5, 10, 20, 50, 100, 1e3, 1e4)


def _num(v: float) -> str:
    """Three significant digits, thousands separated, never scientific notation."""
    from .render import fmt_num

    return fmt_num(float(v))


def family_color(family: str) -> Any:
    return FAMILY_COLORS.get(family, FAMILY_COLORS["unknown"])


def model_styles(models: pd.DataFrame) -> dict[str, tuple[Any, str]]:
    """``model -> (colour, marker)``: colour from the family, marker cycling within the family."""
    out, seen = {}, {}
    for model, fam in models[["model", "family"]].drop_duplicates("model").itertuples(index=False):
        i = seen.get(fam, 0)
        seen[fam] = i + 1
        out[model] = (family_color(fam), MARKERS[i % len(MARKERS)])
    return out


def _theme():
    return sns.axes_style("whitegrid", {"grid.linestyle": ":", "axes.edgecolor": "0.3"})


VECTOR_FORMATS = ("pdf", "svg")  # written beside every PNG: a paper wants vector figures


def _save(fig, path: Path, dpi: int) -> Path:
    """``path`` (PNG at ``dpi``) plus a PDF and an SVG beside it; returns the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    for ext in VECTOR_FORMATS:
        fig.savefig(path.with_suffix(f".{ext}"), facecolor="white", metadata={"Date": None} if ext == "pdf" else None)
    plt.close(fig)
    return path


def figure_files(path: Path) -> list[Path]:
    """The PNG at ``path`` and the vector copies written beside it."""
    return [path] + [p for p in (path.with_suffix(f".{e}") for e in VECTOR_FORMATS) if p.exists()]


def accuracy_label(main: pd.DataFrame, what: str = "top-1 accuracy (%, train clip") -> str:
    """An accuracy axis label that claims a 95% CI only where some model has seeds to make one."""
    has_ci = "acc_top1_ci95" in main and main["acc_top1_ci95"].notna().any()
    return what + (", mean ± 95% CI over seeds)" if has_ci else ", one seed: no CI)")


def _family_legend(families: Iterable[str]) -> list[Line2D]:
    fams = [f for f in FAMILY_ORDER if f in set(families)] + sorted(set(families) - set(FAMILY_ORDER))
    return [Line2D([], [], color=family_color(f), marker="o", ls="", label=FAMILY_TITLES.get(f, f)) for f in fams]


def _model_legend(styles: dict[str, tuple[Any, str]], line: bool = False) -> list[Line2D]:
    return [Line2D([], [], color=c, marker=m, ls="-" if line else "", label=name) for name, (c, m) in styles.items()]


def _errorbar_boxes(ax, x: np.ndarray, y: np.ndarray, err: np.ndarray) -> list[Bbox]:
    """Display-space boxes around vertical error bars, so labels avoid them too."""
    boxes = []
    for xi, yi, ei in zip(x, y, err):
        if ei > 0:
            (x0, y0), (x1, y1) = ax.transData.transform([(xi, yi - ei), (xi, yi + ei)])
            boxes.append(Bbox.from_extents(x0 - 4, y0, x1 + 4, y1))
    return boxes


def _log_if_wide(ax, values: Iterable[float], axis: str = "x") -> None:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    if len(v) and v.max() / v.min() > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


# ------------------------------------------------------------------------------------------ figures
def pareto_figure(main: pd.DataFrame, path: Path, *, prefix: str, clip_label: str, dpi: int = 150,
                  include_flagged: bool = False) -> Path | None:
    """Accuracy vs GMACs and accuracy vs latency p50 (one panel each) with the Pareto front as a step line.
    A latency flagged noisy/contended is drawn hollow and kept off the front unless ``include_flagged``."""
    cols = [(f"{prefix}_gmacs", "GMACs per clip"), (f"{prefix}_latency_ms_p50", "latency p50 (ms)")]
    cols = [(c, lab) for c, lab in cols if c in main and main[c].notna().any()]
    d = main[main["acc_top1_mean"].notna()]
    if not cols or d.empty:
        return None
    styles = model_styles(d)
    name = d["model"] if "point" not in d else d["model"] + " (" + d["point"] + ")"
    with _theme():
        fig, axes = plt.subplots(1, len(cols), figsize=(5.2 * len(cols) + 2.4, max(4.6, 0.17 * len(styles) + 1.2)),
                                 sharey=True, squeeze=False)
        for ax, (col, xlabel) in zip(axes[0], cols):
            dd = d[d[col].notna()]
            x, y = dd[col].to_numpy(float), 100 * dd["acc_top1_mean"].to_numpy(float)
            err = 100 * dd["acc_top1_ci95"].fillna(0).to_numpy(float)
            flagged = np.array([is_flagged(q) for q in dd.get(f"{prefix}_timing_quality", pd.Series("", index=dd.index))]
                               if "latency" in col else np.zeros(len(dd), bool), bool)
            for xi, yi, ei, model, fl in zip(x, y, err, dd["model"], flagged):
                c, m = styles[model]
                ax.errorbar(xi, yi, yerr=ei if ei > 0 else None, fmt=m, color=c, ms=7, mec=c if fl else "white",
                            mfc="none" if fl else c, mew=1.2 if fl else 0.6, elinewidth=1, capsize=2, zorder=3)
            front = pareto_front(np.where(flagged & (not include_flagged), np.nan, x), y)
            if front.any():
                fx, fy = x[front], y[front]
                o = np.argsort(fx)
                ax.step(fx[o], fy[o], where="post", color="0.2", ls="--", lw=1, zorder=2, label="Pareto front")
                ax.scatter(fx, fy, s=150, facecolors="none", edgecolors="0.2", lw=0.8, zorder=2)
            for fam, ceil in d.groupby("family")["ceiling_top1"].first().items():
                if pd.notna(ceil):
                    ax.axhline(100 * ceil, color=family_color(fam), ls=":", lw=1.2, zorder=1)
            _log_if_wide(ax, x)
            ax.set_xlabel(f"{xlabel} — {clip_label}" + (", log scale" if ax.get_xscale() == "log" else ""))
            ax.margins(x=0.12, y=0.1)
        axes[0][0].set_ylabel(accuracy_label(d))
        axes[0][0].set_ylim(0, 105)  # accuracy lives in [0, 100]; a wide t-interval (n=2) is cut at the frame
        # marker = model within its family: the legend names every marker, not only the colours
        handles = _model_legend(styles) + [
            Line2D([], [], color="0.2", ls="--", lw=1, label="Pareto front"),
            Line2D([], [], color="0.4", ls=":", lw=1.2, label="family ceiling")]
        if any(is_flagged(q) for q in d.get(f"{prefix}_timing_quality", [])):
            handles.append(Line2D([], [], color="0.3", marker="o", mfc="none", ls="", label="latency flagged\n(noisy/contended)"
                                  + ("" if include_flagged else ",\noff the front")))
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False,
                   title="model (colour = family)", title_fontsize=7.5)
        fig.tight_layout(rect=(0, 0, 1 - 2.1 / fig.get_figwidth(), 1))
        for ax, (col, _) in zip(axes[0], cols):
            dd = d[d[col].notna()]
            x, y = dd[col].to_numpy(float), 100 * dd["acc_top1_mean"].to_numpy(float)
            err = 100 * dd["acc_top1_ci95"].fillna(0).to_numpy(float)
            place_labels(ax, x, y, list(name[dd.index]), avoid=_errorbar_boxes(ax, x, y, err))
        return _save(fig, path, dpi)


def _merge_identical(t: pd.DataFrame, col: str) -> list[tuple[list[str], str, pd.DataFrame]]:
    """Group models whose ``col``-vs-frames series are identical, so overlapping lines become one labelled line."""
    groups: dict[tuple, list[str]] = {}
    fams: dict[tuple, set] = {}
    series: dict[tuple, pd.DataFrame] = {}
    for model, g in t.groupby("model", sort=False):
        g = g[g[col].notna()].sort_values("frames")
        if g.empty:
            continue
        sig = tuple(zip(g["frames"].astype(float), g[col].astype(float)))
        groups.setdefault(sig, []).append(model)
        fams.setdefault(sig, set()).add(g["family"].iloc[0])
        series[sig] = g
    return [(models, next(iter(fams[s])) if len(fams[s]) == 1 else "mixed", series[s]) for s, models in groups.items()]


def params_figure(pvt: pd.DataFrame, path: Path, *, source_note: str, dpi: int = 150) -> Path | None:
    """Params (M) and first-conv params (k) vs T, models with identical curves merged into one line."""
    t = pvt[pvt["params"].notna()] if "params" in pvt else pvt.iloc[0:0]
    if t.empty:
        return None
    scale = "deploy" if (t["scale"] == "deploy").any() else t["scale"].iloc[0]
    t = t[t["scale"] == scale]
    panels = [("params", 1e6, "parameters (M)"), ("first_conv_params", 1e3, "first-conv parameters (k)")]
    panels = [p for p in panels if t[p[0]].notna().any()]
    styles = model_styles(t)
    with _theme():
        fig, axes = plt.subplots(1, len(panels), figsize=(11.5, 5.4), squeeze=False)
        for ax, (col, unit, ylabel) in zip(axes[0], panels):
            merged = _merge_identical(t, col)
            in_family: dict[str, int] = {}
            for models, fam, g in merged:
                # a family's lines differ in shade and dash as well as marker: 13 same-green lines were unreadable
                k = in_family[fam] = in_family.get(fam, -1) + 1
                color = _shade(family_color(fam) if fam != "mixed" else MIXED, k)
                marker = styles[models[0]][1] if len(models) == 1 else "o"
                label = models[0] if len(models) == 1 else f"{len(models)} models: " + ", ".join(models)
                ax.plot(g["frames"], g[col] / unit, marker=marker, color=color, lw=1.6, ms=5,
                        ls=_SOLO_DASHES[k % len(_SOLO_DASHES)] if len(models) == 1 else "--", label=_wrap(label, 48))
            frames = sorted(t["frames"].unique())
            ax.set_xscale("log", base=2)
            ax.set_xticks(frames, [str(int(f)) for f in frames])
            ax.minorticks_off()
            _log_if_wide(ax, t[col] / unit, axis="y")
            ax.set_xlabel("frames per clip T (log₂ scale)")
            ax.set_ylabel(ylabel + (", log scale" if ax.get_yscale() == "log" else ""))
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        fig.suptitle(f"Parameters vs clip length ({scale} backbone; {source_note})", fontsize=10)
        fig.tight_layout()
        return _save(fig, path, dpi)


_SOLO_DASHES = ("-", "-.", ":", (0, (6, 1.5, 1, 1.5, 1, 1.5)))  # "--" is kept for merged identical curves


def _shade(color: Any, k: int) -> tuple[float, float, float]:
    """The ``k``-th shade of a family colour: the colour itself, then alternately darker and lighter."""
    from matplotlib.colors import to_rgb

    rgb = np.asarray(to_rgb(color))
    step = ((k + 1) // 2) * 0.22 % 0.66
    target = np.zeros(3) if k % 2 else np.ones(3)
    return tuple(float(v) for v in rgb + (target - rgb) * step)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def ceiling_figure(main: pd.DataFrame, path: Path, *, chance: float | None = None, dpi: int = 150) -> Path | None:
    """Per model: measured top-1 / shape / direction accuracy (bars, family colour) against the family's
    Bayes ceiling (black tick) — shows which invariance caps which model."""
    panels = [("acc_top1_mean", "ceiling_top1", "top-1 (shape × direction)"),
              ("acc_shape_mean", "ceiling_shape", "shape attribute"),
              ("acc_direction_mean", "ceiling_direction", "direction attribute")]
    panels = [p for p in panels if p[0] in main and main[p[0]].notna().any()]
    d = main[main["acc_top1_mean"].notna() | main.get("ceiling_top1", pd.Series(dtype=float)).notna()]
    if not panels or d.empty:
        return None
    labels = list(d["model"] if "point" not in d else d["model"] + " (" + d["point"] + ")")
    y = np.arange(len(d))[::-1]
    with _theme():
        fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels) + 2.4, 0.34 * len(d) + 1.6),
                                 sharey=True, squeeze=False)
        for ax, (col, ceil_col, title) in zip(axes[0], panels):
            vals = 100 * d[col].to_numpy(float)
            colors = [family_color(f) for f in d["family"]]
            err = 100 * d["acc_top1_ci95"].to_numpy(float) if col == "acc_top1_mean" else None
            if err is not None:
                err = np.where(np.isfinite(err), err, 0)
            ax.barh(y, np.nan_to_num(vals), color=colors, height=0.7, xerr=err, error_kw=dict(lw=0.8, capsize=2))
            if ceil_col in d:
                ceil = 100 * d[ceil_col].to_numpy(float)
                ok = np.isfinite(ceil)
                ax.scatter(ceil[ok], y[ok], marker="|", s=260, color="black", lw=2, zorder=4)
            if chance and col == "acc_top1_mean":
                ax.axvline(100 * chance, color="0.5", ls=":", lw=1)
            for yi, v in zip(y, vals):
                ax.text(1.5, yi, "n/a" if not np.isfinite(v) else f"{v:.0f}", va="center", ha="left", fontsize=6.5,
                        color="white" if np.isfinite(v) and v > 12 else "0.2")
            ax.set_xlim(0, 105)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("accuracy (%)")
        axes[0][0].set_yticks(y, labels, fontsize=8)
        handles = _family_legend(d["family"]) + [Line2D([], [], color="black", marker="|", ls="", ms=12, mew=2,
                                                        label="Bayes ceiling")]
        if chance:
            handles.append(Line2D([], [], color="0.5", ls=":", label=f"chance (1/{round(1 / chance)})"))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
        return _save(fig, path, dpi)


def flow_figure(flow: pd.DataFrame, path: Path, *, scale_labels: dict[str, str], dpi: int = 150) -> Path | None:
    """Stacked horizontal bars: flow stage vs network latency (ms) per model with a flow stage, per scale."""
    if flow.empty:
        return None
    scales = list(dict.fromkeys(flow["scale"]))
    with _theme():
        n = flow.groupby("scale").size().max()
        fig, axes = plt.subplots(1, len(scales), figsize=(5.4 * len(scales), 0.45 * n + 1.9), squeeze=False)
        for ax, scale in zip(axes[0], scales):
            g = flow[flow["scale"] == scale]
            labels = list(g["model"] if "point" not in g else g["model"] + " (" + g["point"] + ")")
            y = np.arange(len(g))[::-1]
            colors = [family_color(f) for f in g["family"]]
            ax.barh(y, g["flow_ms"], color="0.75", hatch="///", edgecolor="0.45", height=0.6, label="optical flow")
            ax.barh(y, g["network_ms"], left=g["flow_ms"], color=colors, height=0.6, label="network")
            quality = g["timing_quality"] if "timing_quality" in g else pd.Series("", index=g.index)
            for yi, tot, flow_ms, share, q in zip(y, g["latency_ms_p50"], g["flow_ms"], g["flow_share"], quality):
                # flow is timed alone: on a noisy machine it can exceed the whole model's median; say so
                note = f"  {_num(tot)} ms, flow {100 * share:.0f}%" + (" > total: noise" if share > 1 else "")
                note += f" ({q})" if is_flagged(q) else ""
                ax.text(max(tot, flow_ms), yi, note, va="center", fontsize=7.5)
            ax.set_yticks(y, labels, fontsize=8)
            ax.set_xlim(0, max(g["latency_ms_p50"].max(), g["flow_ms"].max()) * 1.6)
            batch = g["batch"].dropna()
            ax.set_xlabel(f"latency p50 (ms per batch of {int(batch.iloc[0]) if len(batch) else '?'})")
            ax.set_title(scale_labels.get(scale, scale), fontsize=9)
        handles = [plt.Rectangle((0, 0), 1, 1, fc="0.75", hatch="///", ec="0.45", label="optical flow (Horn–Schunck)"),
                   plt.Rectangle((0, 0), 1, 1, fc=family_color("order_aware"), label="network (family colour)")]
        fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
        return _save(fig, path, dpi)


def ablation_figure(abl: pd.DataFrame, knob: str, path: Path, *, metric_labels: dict[str, str],
                    scale_labels: dict[str, str], dpi: int = 150) -> Path | None:
    """One panel per (metric, scale): metric vs the knob, a line per model (accuracy with 95% t-CI bars)."""
    if abl.empty:
        return None
    # rows of panels follow the metric order of the table, train clip before deploy clip; a deploy clip that is
    # the training clip (same dims) would repeat every panel, so it is dropped
    scales = [sc for sc in ("train", "deploy") if sc in set(abl["scale"])]
    if len(scales) == 2 and scale_labels.get("train", "").split(" ", 2)[-1] == scale_labels.get("deploy", "").split(" ", 2)[-1]:
        abl = abl[abl["scale"] == "train"]
    metrics = list(dict.fromkeys(m for m in metric_labels if m in set(abl["metric"])))
    panels = [(m, sc) for m in metrics for sc in scales if ((abl["metric"] == m) & (abl["scale"] == sc)).any()]
    one_scale = abl["scale"].nunique() == 1
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    styles = model_styles(abl)
    numeric = pd.api.types.is_numeric_dtype(abl[knob])
    params_m = abl.loc[abl["metric"] == "params", "mean"].max() >= 1e6
    with _theme():
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols + 2.2, 3.4 * nrows), squeeze=False)
        for ax, (metric, scale) in zip(axes.flat, panels):
            g = abl[(abl["metric"] == metric) & (abl["scale"] == scale)]
            scale_y = 100 if metric == "acc_top1" else (1e-6 if params_m else 1e-3) if metric == "params" else 1
            for model, gm in g.groupby("model", sort=False):
                c, m = styles[model]
                x = gm[knob] if numeric else gm[knob].astype(str)
                err = gm["ci95"].to_numpy(float) * scale_y
                ax.errorbar(x, gm["mean"] * scale_y, yerr=np.where(np.isfinite(err), err, 0) if metric == "acc_top1"
                            else None, color=c, marker=m, ms=5, lw=1.4, capsize=2, label=model)
                fl = np.array([is_flagged(q) for q in gm.get("timing_quality", pd.Series("", index=gm.index))], bool)
                if fl.any():  # a flagged latency: a hollow ring around its point
                    ax.scatter(np.asarray(x)[fl], (gm["mean"] * scale_y).to_numpy()[fl], s=90, facecolors="none",
                               edgecolors="crimson", lw=1.2, zorder=4)
            if numeric:
                vals = sorted(abl[knob].unique())
                if min(vals) > 0 and max(vals) / min(vals) >= 4:
                    ax.set_xscale("log", base=2)
                    ax.minorticks_off()
                ax.set_xticks(vals, [f"{v:g}" for v in vals])
            if metric != "acc_top1":
                _log_if_wide(ax, g["mean"] * scale_y, axis="y")
            else:  # a wide t-interval must not push the axis past what accuracy can be
                lo, hi = ax.get_ylim()
                ax.set_ylim(max(lo, 0), min(hi, 100))
            ax.set_xlabel(knob)
            ylabel = metric_labels.get(metric, metric)
            if metric == "params" and not params_m:
                ylabel = ylabel.replace("(M)", "(k)")
            ax.set_ylabel(ylabel, fontsize=8.5)
            if not one_scale:
                ax.set_title(scale_labels.get(scale, scale), fontsize=8.5)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        fig.legend(handles=_model_legend(styles, line=True), loc="center right", fontsize=7.5, frameon=False,
                   title="model (colour = family)", title_fontsize=8)
        where = f" — {scale_labels.get(panels[0][1], panels[0][1])}" if one_scale else ""
        fig.suptitle(f"Ablation over {knob}{where}", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1 - 2.0 / fig.get_figwidth(), 1))
        return _save(fig, path, dpi)


def _ratio_ticks(lim: float) -> list[float]:
    """Ratio ticks inside [1/lim, lim], outward from 1, at least a seventh of the axis apart."""
    gap = 2 * math.log(lim) / 7
    ticks = [1.0]
    for side in (sorted(t for t in _RATIO_TICKS if t > 1), sorted((t for t in _RATIO_TICKS if t < 1), reverse=True)):
        last = 0.0
        for t in side:
            if 1 / lim <= t <= lim and abs(math.log(t)) - last >= gap:
                ticks.append(t)
                last = abs(math.log(t))
    return sorted(ticks)


def compare_figure(table: pd.DataFrame, path: Path, *, title: str, xlabel: str, dpi: int = 150) -> Path:
    """Horizontal bars of a ratio per model (log scale, 1 = no change) with bootstrap 95% CI and
    significance marks from the Mann–Whitney U test (Holm-adjusted)."""
    groups = list(dict.fromkeys(table["group"])) if "group" in table else [""]
    n = table.groupby("group").size().max() if "group" in table else len(table)
    with _theme():
        ncols = min(2, len(groups))
        nrows = math.ceil(len(groups) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(6.6 * ncols + 0.4, (0.36 * n + 1.3) * nrows + 0.9),
                                 squeeze=False)
        for ax in list(axes.flat)[len(groups):]:
            ax.set_visible(False)
        for ax, grp in zip(axes.flat, groups):
            g = table[table["group"] == grp] if "group" in table else table
            y = np.arange(len(g))[::-1]
            r = g["ratio"].to_numpy(float)
            lo, hi = g["ratio_ci_low"].to_numpy(float), g["ratio_ci_high"].to_numpy(float)
            # the CI is of the pooled samples, the ratio of the per-seed medians: they can disagree a little
            xerr = np.clip(np.vstack([np.where(np.isfinite(lo), r - lo, 0), np.where(np.isfinite(hi), hi - r, 0)]), 0, None)
            xerr = np.nan_to_num(xerr)
            colors = [family_color(f) for f in g["family"]]
            ok = np.isfinite(r)
            ax.barh(y[ok], r[ok] - 1, left=1, color=np.asarray(colors, dtype=object)[ok].tolist(), height=0.6,
                    xerr=xerr[:, ok], error_kw=dict(lw=0.8, capsize=2))
            ax.axvline(1, color="0.2", lw=1)
            ax.set_xscale("log")
            # the axis spans the data and 1 only (every ratio above 1: no empty left half), with room right of
            # the longest bar for its label
            logs = np.log(np.concatenate([r[ok], hi[np.isfinite(hi)], lo[np.isfinite(lo) & (lo > 0)], [1.0]]))
            left, right = min(float(np.nanmin(logs)), 0.0), max(float(np.nanmax(logs)), 0.0)
            width = max(right - left, math.log(1.1))
            xmin, xmax = math.exp(left - 0.04 * width), math.exp(right + 0.6 * width)
            ax.set_xlim(xmin, xmax)
            ticks = [t for t in _ratio_ticks(max(xmax, 1 / xmin)) if xmin <= t <= xmax]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            for yi, ri, stars, status in zip(y, r, g["signif"], g["status"]):
                txt = (status if status != "ok" else "n/a") if not np.isfinite(ri) else f"{_num(ri)}× {stars}".strip()
                ax.text(0.99, yi, txt, va="center", ha="right", fontsize=7.5, transform=ax.get_yaxis_transform(),
                        color="#b00020" if status != "ok" else "0.15")
            ax.set_yticks(y, list(g["model"]), fontsize=8)
            ax.set_xlabel(xlabel)
            if grp:
                ax.set_title(grp, fontsize=9)
        handles = _family_legend(table["family"])
        handles.append(Line2D([], [], ls="", label="* p<0.05  ** p<0.01  *** p<0.001 (Mann–Whitney U, Holm)"))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
        return _save(fig, path, dpi)
