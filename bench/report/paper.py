"""Paper-ready outputs: the compact main table (accuracy, GMACs, params, latency, memory at one clip), CSVs
rounded to meaningful digits, and LaTeX (pandas Styler, booktabs) for the main table.

Computed from ``tables.main_table``; nothing here measures or reads records.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

# (main-table suffix, numeric header with its unit, divisor): the compact table's cost columns, in order.
COMPACT_COSTS = (
    ("gmacs", "GMACs", 1),
    ("params", "params (M)", 1e6),
    ("latency_ms_p50", "latency p50 (ms)", 1),
    ("peak_mem_mib", "peak mem (MiB)", 1),
)
# Display headers of ``render.display_main_table`` kept in the compact table (prefix match, batch suffix varies).
_COMPACT_DISPLAY = ("GMACs", "params (M)", "latency p50", "peak mem")
SIGNIFICANT = 4  # digits a CSV keeps: timings and counts from this suite do not resolve a fifth


def cost_prefix(main: pd.DataFrame) -> str | None:
    """The clip the compact table shows costs at: the deploy clip where measured, else the training clip."""
    scales = main.attrs.get("scales", {})
    return "deploy" if "deploy" in scales else "train" if "train" in scales else None


def compact_display(disp: pd.DataFrame, prefix: str | None) -> pd.DataFrame:
    """The columns of the formatted main table (``render.display_main_table``) a reader needs first: model,
    family, top-1 (± CI), seeds, and GMACs / params / latency / memory at the ``prefix`` clip, status."""
    keep = []
    for group, name in disp.columns:
        if group == "":
            keep.append((group, name))
        elif group.startswith("accuracy") and not name.startswith("ceiling"):
            keep.append((group, name))
        elif prefix and group.startswith(f"cost — {prefix} clip") and name.startswith(_COMPACT_DISPLAY):
            keep.append((group, name))
    return disp[keep]


def round_significant(v: Any, digits: int = SIGNIFICANT) -> Any:
    """``0.2862499952316284`` -> ``0.2862``; integers, strings and NaN pass through."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (float, np.floating)) or not math.isfinite(v) or v == 0:
        return v
    v = float(v)
    if v.is_integer() and abs(v) >= 10 ** (digits - 1):
        return v
    return round(v, digits - 1 - int(math.floor(math.log10(abs(v)))))


def csv_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy for CSV: accuracies as percentages (``*_pct``), every float rounded to ``SIGNIFICANT`` digits.
    Other column names already carry their unit (``latency_ms_p50``, ``peak_mem_mib``, ``gmacs``)."""
    out = table.copy()
    for col in list(out.columns):
        if isinstance(col, str) and col.startswith(("acc_", "ceiling_", "gap_to_ceiling", "best_acc", "mean_acc")) \
                and pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col] * 100
            out = out.rename(columns={col: _pct_name(col)})
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = [round_significant(v) for v in out[col]]
    return out


def _pct_name(col: str) -> str:
    for stat in ("_mean", "_ci95"):
        if col.endswith(stat):
            return col[: -len(stat)] + "_pct" + stat
    return col + "_pct"


def compact_numeric(main: pd.DataFrame) -> pd.DataFrame:
    """The compact table with numbers (for CSV and LaTeX): accuracy in %, its 95 % CI half-width where seeds
    make one, and the costs of ``COMPACT_COSTS`` at the ``cost_prefix`` clip, units in the headers."""
    prefix = cost_prefix(main)
    cols: dict[str, Any] = {"model": main["model"], "family": main["family"]}
    for k in ("run_id", "point"):
        if k in main:
            cols[k] = main[k]
    cols["top1_pct"] = 100 * main["acc_top1_mean"]
    cols["top1_ci95_pct"] = 100 * main["acc_top1_ci95"]
    cols["seeds"] = main["n_seeds"]
    for suffix, header, div in COMPACT_COSTS:
        col = f"{prefix}_{suffix}"
        if prefix and col in main:
            cols[header] = main[col] / div
    return pd.DataFrame(cols).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ LaTeX
_TEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
_TEX_UNICODE = {"±": r"$\pm$", "²": r"$^2$", "—": "--", "–": "--", "×": r"$\times$", "∈": r"$\in$"}


def tex_escape(text: str) -> str:
    """Plain text -> LaTeX that pdflatex accepts: specials escaped, the few non-ASCII signs the report uses
    spelled as math."""
    s = re.sub(r"[&%$#_{}~^\\]", lambda m: _TEX_SPECIAL[m.group()], str(text))
    for k, v in _TEX_UNICODE.items():
        s = s.replace(k, v)
    return s


def _cell(v: Any, digits: int = 3) -> str:
    from .render import fmt_num

    return fmt_num(v, digits)


def latex_table(num: pd.DataFrame, *, caption: str, label: str = "tab:main") -> str:
    """``compact_numeric`` as a booktabs table (pandas Styler): names escaped, accuracy as mean ± CI where
    there are seeds, the best accuracy of each family in bold, failed/missing cells as --."""
    has_ci = num["top1_ci95_pct"].notna().any()
    shown = pd.DataFrame({"model": num["model"], "family": [f.replace("_", " ") for f in num["family"]]})
    for k in ("run_id", "point"):
        if k in num:
            shown[k.replace("_id", "")] = num[k].astype(str)
    shown["top-1 (%)"] = [
        "--" if not np.isfinite(m) else f"{m:.1f} ± {c:.1f}" if np.isfinite(c) else f"{m:.1f}"
        for m, c in zip(num["top1_pct"], num["top1_ci95_pct"])]
    if has_ci:
        shown["seeds"] = [str(int(n)) for n in num["seeds"]]
    for _, header, _ in COMPACT_COSTS:
        if header in num:
            shown[header] = ["--" if not np.isfinite(v) else _cell(v) for v in num[header]]
    best = np.zeros(len(num), bool)
    acc = num["top1_pct"].to_numpy(float)
    for fam in num["family"].unique():
        idx = np.flatnonzero((num["family"] == fam).to_numpy() & np.isfinite(acc))
        if len(idx):
            best[idx[acc[idx] == acc[idx].max()]] = True
    shown = shown.map(tex_escape)
    shown.columns = [tex_escape(c) for c in shown.columns]
    acc_col = tex_escape("top-1 (%)")

    def bold(frame: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=frame.index, columns=frame.columns)
        css.loc[best, acc_col] = "font-weight: bold;"
        return css

    styler = shown.style.hide(axis="index").apply(bold, axis=None)
    align = "".join("l" if c in ("model", "family", "run", "point") else "r" for c in shown.columns)
    return styler.to_latex(hrules=True, convert_css=True, column_format=align, caption=tex_escape(caption),
                           label=label, position="htbp", position_float="centering")


def caption_text(main: pd.DataFrame, *, device: str) -> str:
    """The compact table's caption: which clip, backbone and seeds the numbers come from, on what device."""
    scales = main.attrs.get("scales", {})
    prefix = cost_prefix(main)
    seeds = sorted({int(n) for n in main["n_seeds"] if np.isfinite(n)})
    seed_txt = (f"{seeds[0]} seed{'s' if seeds[0] != 1 else ''}" if len(seeds) == 1
                else f"{seeds[0]}-{seeds[-1]} seeds") if seeds else "no seeds"
    ci = main["acc_top1_ci95"].notna().any()
    acc = (f"Top-1 accuracy (%) on the {scales.get('train', 'training clip')}, "
           + (f"mean ± half-width of the 95% t-interval over {seed_txt}" if ci else f"{seed_txt}, so no interval"))
    batches = main.attrs.get("batches", {}).get(prefix, {}) if prefix else {}
    b = batches.get("latency_ms_p50", math.nan)
    cost = (f"; GMACs, parameters, latency p50{f' (batch {int(b)})' if isinstance(b, float) and math.isfinite(b) else ''}"
            f" and peak memory at the {scales[prefix]}" if prefix else "")
    return f"{acc}{cost}; device {device}. Bold: best accuracy of each family."


def latex_document(sections: list[tuple[str, str]], figures: list[tuple[str, str]], title: str) -> str:
    """A standalone article: ``sections`` are (heading, LaTeX body) and ``figures`` (PDF file, caption)."""
    parts = [r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage{booktabs}",
             r"\usepackage{graphicx}", r"\usepackage[margin=2cm,landscape]{geometry}",
             r"\pagestyle{empty}", r"\begin{document}", rf"\section*{{{tex_escape(title)}}}"]
    for heading, body in sections:
        parts += [rf"\subsection*{{{tex_escape(heading)}}}", body]
    for pdf, cap in figures:
        parts += [r"\begin{figure}[htbp]", r"\centering", rf"\includegraphics[width=\linewidth,height=0.8\textheight,"
                  rf"keepaspectratio]{{{pdf}}}", rf"\caption{{{tex_escape(cap)}}}", r"\end{figure}"]
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"
