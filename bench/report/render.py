"""Rendering: a report is a list of blocks (heading, paragraph, table, figure, code, key-value) computed
first, then written as Markdown (figures linked) and as one self-contained HTML file (figures embedded
as base64 PNG, CSS inline, no external requests)."""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import measurements

from .tables import SCALES, is_flagged


# ------------------------------------------------------------------------------------------ blocks
@dataclass
class Block:
    kind: str                    # "h1" | "h2" | "h3" | "p" | "note" | "warn" | "table" | "figure" | "code" | "kv" | "list"
    text: str = ""
    table: pd.DataFrame | None = None
    path: Path | None = None
    items: list[Any] = field(default_factory=list)
    lang: str = ""
    collapsed: bool = False
    title: str = ""              # summary line of a collapsed block


# ------------------------------------------------------------------------------------------ numbers
def fmt_num(v: Any, digits: int = 3) -> str:
    """Three significant digits without scientific notation for the ranges a report meets; NaN -> ``—``."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if not isinstance(v, (float, np.floating)):
        return str(v)
    v = float(v)
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 10 ** digits:
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(a))))
    return f"{v:.{decimals}f}"


def fmt_pct(v: Any, decimals: int = 1) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{100 * v:.{decimals}f}"


def _cost_display() -> list[tuple[str, str, str, float]]:
    """(suffix, measurement, header, divisor) of the main table's cost cells (bench/measurements.py)."""
    return [(c.name, m.name, c.main, c.divisor) for m, c in measurements.columns("report") if c.main]


def display_main_table(main: pd.DataFrame, failed: dict[tuple, str]) -> pd.DataFrame:
    """The main table formatted for reading: two-level columns (group, metric), accuracy in % with its
    95 % t-CI, costs in M/k units, and OOM/ERROR in the cells whose measurement failed."""
    keys = main.attrs.get("keys", ["model"])
    batches = main.attrs.get("batches", {})
    scales = main.attrs.get("scales", {})
    any_ci = main["acc_top1_ci95"].notna().any()
    cols: dict[tuple[str, str], list[str]] = {}
    cols[("", "model")] = list(main["model"])
    cols[("", "family")] = [f.replace("_", " ") for f in main["family"]]
    if "run_id" in main:
        cols[("", "run")] = list(main["run_id"])
    if "point" in main:
        cols[("", "point")] = list(main["point"])

    def fail(row: pd.Series, prefix: str, meas: str, batch: float | None) -> str | None:
        key = tuple(row[k] for k in keys)
        for fk, status in failed.items():
            if fk[: len(key)] == key and fk[len(key)] == prefix and fk[len(key) + 1] == meas:
                if batch is None or math.isnan(batch) or fk[len(key) + 2] == batch:
                    return status.upper()
        return None

    acc_group = "accuracy — " + scales.get("train", "train clip")
    top1 = []
    for _, r in main.iterrows():
        if not np.isfinite(r["acc_top1_mean"]):
            top1.append(fail(r, "train", "accuracy", None) or "—")
        elif np.isfinite(r["acc_top1_ci95"]):
            top1.append(f"{fmt_pct(r['acc_top1_mean'])} ± {fmt_pct(r['acc_top1_ci95'])}")
        elif np.isfinite(r.get("acc_top1_lo", math.nan)):  # one seed: the binomial interval over the clips
            top1.append(f"{fmt_pct(r['acc_top1_mean'])} [{fmt_pct(r['acc_top1_lo'])}, {fmt_pct(r['acc_top1_hi'])}]")
        else:
            top1.append(f"{fmt_pct(r['acc_top1_mean'])}" + (" (n=1)" if r["n_seeds"] == 1 and any_ci else ""))
    any_wilson = bool(np.isfinite(main.get("acc_top1_lo", pd.Series([math.nan]))).any())
    header = ("top-1 % ± 95% CI (seeds)" + (" or [95% Wilson] (1 seed)" if any_wilson else "") if any_ci
              else "top-1 % [95% Wilson, 1 seed]" if any_wilson else "top-1 % (1 seed, no CI)")
    cols[(acc_group, header)] = top1
    cols[(acc_group, "seeds")] = [str(int(n)) for n in main["n_seeds"]]
    cols[(acc_group, "ceiling %")] = [fmt_pct(v, 0) for v in main["ceiling_top1"]]
    # shape / direction accuracies live in the ceiling figure and tables/main.csv: the main table is wide enough
    for prefix, label in scales.items():
        group = f"cost — {label}"
        for suffix, meas, header, div in _cost_display():
            col = f"{prefix}_{suffix}"
            if col not in main:
                continue
            b = batches.get(prefix, {}).get(suffix, math.nan)
            header = header.format(b=f", batch {int(b)}" if isinstance(b, float) and math.isfinite(b) else "")
            vals = []
            for _, r in main.iterrows():
                v = r[col]
                cell = fmt_num(v / div) if np.isfinite(v) else (fail(r, prefix, meas, b) or "—")
                flag = r.get(f"{prefix}_timing_quality") if meas == "latency" and np.isfinite(v) else None
                vals.append(f"{cell} ({flag})" if is_flagged(flag) else cell)  # a flagged timing says so in its cell
            cols[(group, header)] = vals
    cols[("", "status")] = list(main["status"])
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def flatten_columns(df: pd.DataFrame, short: dict[str, str] | None = None) -> pd.DataFrame:
    """Two-level columns -> one level (``"deploy GMACs"``) for Markdown and CSV."""
    if not isinstance(df.columns, pd.MultiIndex):
        return df
    short = short or {}
    names = []
    for group, name in df.columns:
        prefix = short.get(group, "")
        names.append(f"{prefix} {name}".strip())
    out = df.copy()
    out.columns = names
    return out


def short_groups(df: pd.DataFrame) -> dict[str, str]:
    """Group title -> the short prefix used in flattened headers (``train`` / ``deploy``)."""
    out = {}
    if isinstance(df.columns, pd.MultiIndex):
        for group in dict.fromkeys(df.columns.get_level_values(0)):
            for prefix in SCALES.values():
                if group.startswith(f"cost — {prefix} clip"):
                    out[group] = prefix
    return out


# ------------------------------------------------------------------------------------------ markdown
def _md_cell(v: Any) -> str:
    s = fmt_num(v) if not isinstance(v, str) else v
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table; numbers right-aligned."""
    df = flatten_columns(df, short_groups(df))
    headers = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) or _looks_numeric(df[c]) for c in df.columns]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


_NUMERIC_RE = re.compile(r"^[-+]?[\d,.]+(\s*±\s*[\d.]+)?(\s*\(n=1\))?$|^—$|^[A-Z]+$")


def _looks_numeric(s: pd.Series) -> bool:
    vals = [str(v) for v in s]
    return bool(vals) and all(_NUMERIC_RE.match(v) for v in vals) and any(any(ch.isdigit() for ch in v) for v in vals)


def render_markdown(blocks: list[Block], base: Path) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "note":
            out.append(f"_{b.text}_" if "_" not in b.text else b.text)
        elif b.kind == "warn":
            out.append(f"> **Warning:** {b.text}")
        elif b.kind == "table":
            out.append(to_markdown(b.table))
            if b.text:
                out.append(b.text)
        elif b.kind == "figure":
            rel = b.path.relative_to(base).as_posix() if b.path.is_relative_to(base) else b.path.as_posix()
            out.append(f"![{b.text.split('.')[0]}]({rel})\n\n*{b.text}*")
        elif b.kind == "code":
            if b.title:
                out.append(f"{b.title}:")
            out.append(f"```{b.lang}\n{b.text}\n```")
        elif b.kind == "kv":
            out.append("| | |\n|:---|:---|\n" + "\n".join(f"| {k} | {_md_cell(v)} |" for k, v in b.items))
        elif b.kind == "list":
            out.append("\n".join(f"- {item}" for item in b.items))
    return "\n\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ html
_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;max-width:1500px;margin:24px auto;
padding:0 24px;color:#1d1d1f;line-height:1.45;font-size:15px}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #eee;padding-bottom:.15em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:12.5px;margin:.6em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d0d0;padding:3px 7px}th{background:#f3f4f6;font-weight:600}
td{white-space:nowrap}td.num{text-align:right}tr:nth-child(even) td{background:#fafafa}
td.bad{color:#b00020;font-weight:600}.scroll{overflow-x:auto}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
code{background:#f3f4f6;padding:1px 4px;border-radius:3px;font-size:.92em}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;border-radius:4px;font-size:12.5px}
.note{color:#555;font-size:.92em}.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px}
table.kv td:first-child{color:#555}
"""


def _inline(text: str) -> str:
    """Escape, then the little Markdown the report's prose uses: `code`, **bold**, _italic_."""
    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    return s


def _cell_class(v: str, numeric: bool) -> str:
    classes = []
    if numeric:
        classes.append("num")
    if v in ("OOM", "ERROR", "DIVERGED") or v.startswith(("oom", "error", "diverged")):
        classes.append("bad")
    return f' class="{" ".join(classes)}"' if classes else ""


def to_html_table(df: pd.DataFrame) -> str:
    """An HTML table; two-level columns become a grouped header (colspan)."""
    parts = ['<div class="scroll"><table>', "<thead>"]
    if isinstance(df.columns, pd.MultiIndex):
        groups = list(df.columns.get_level_values(0))
        row1, i = [], 0
        while i < len(groups):
            j = i
            while j < len(groups) and groups[j] == groups[i]:
                j += 1
            if groups[i]:
                row1.append(f'<th colspan="{j - i}">{html.escape(groups[i])}</th>')
            else:
                row1.extend(f'<th rowspan="2">{html.escape(str(df.columns[k][1]))}</th>' for k in range(i, j))
            i = j
        row2 = [f"<th>{html.escape(str(n))}</th>" for g, n in df.columns if g]
        parts += ["<tr>" + "".join(row1) + "</tr>", "<tr>" + "".join(row2) + "</tr>"]
    else:
        parts.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns) + "</tr>")
    parts.append("</thead><tbody>")
    numeric = [pd.api.types.is_numeric_dtype(df.iloc[:, k]) or _looks_numeric(df.iloc[:, k]) for k in range(df.shape[1])]
    for row in df.itertuples(index=False):
        cells = []
        for v, num in zip(row, numeric):
            s = fmt_num(v) if not isinstance(v, str) else v
            cells.append(f"<td{_cell_class(s, num)}>{html.escape(s)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    return "\n".join(parts)


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(blocks: list[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            anchor = re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-")
            out.append(f'<{b.kind} id="{anchor}">{_inline(b.text)}</{b.kind}>')
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "note":
            out.append(f'<p class="note">{_inline(b.text)}</p>')
        elif b.kind == "warn":
            out.append(f'<p class="warn"><strong>Warning:</strong> {_inline(b.text)}</p>')
        elif b.kind == "table":
            out.append(to_html_table(b.table))
            if b.text:
                out.append(f'<p class="note">{_inline(b.text)}</p>')
        elif b.kind == "figure":
            alt = html.escape(b.text.split(".")[0])
            out.append(f'<figure><img src="{_png_data_uri(b.path)}" alt="{alt}" data-file="{html.escape(b.path.name)}">'
                       f"<figcaption>{_inline(b.text)}</figcaption></figure>")
        elif b.kind == "code":
            body = f"<pre><code>{html.escape(b.text)}</code></pre>"
            out.append(f"<details><summary>{html.escape(b.title or b.lang or 'details')}</summary>{body}</details>"
                       if b.collapsed else body)
        elif b.kind == "kv":
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt_num(v) if not isinstance(v, str) else v)}"
                           f"</td></tr>" for k, v in b.items)
            out.append(f'<table class="kv">{rows}</table>')
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(str(i))}</li>" for i in b.items) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)
