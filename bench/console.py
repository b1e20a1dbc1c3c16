"""Rendering for the CLI: rich progress for runner events, summary tables, one-line errors.

The harness never prints; this module is the only place that turns records into terminal output.
"""
from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import measurements
from .measurements import fmt, pct as _pct

err_console = Console(stderr=True)
out_console = Console()


class RunProgress:
    """Turns ``Runner`` events into rich progress bars: models overall, epochs, steps; prints one line per
    finished measurement so a log (or a non-TTY) still shows what happened."""

    def __init__(self, total_models: int, console: Console | None = None) -> None:
        self.console = console or err_console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"), console=self.console, transient=False,
        )
        self.models = self.progress.add_task("models", total=total_models, info="")
        self.epoch = self.progress.add_task("epochs", total=1, info="", visible=False)
        self.step = self.progress.add_task("steps", total=1, info="", visible=False)

    def __enter__(self) -> "RunProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: str, info: dict) -> None:
        p = self.progress
        if event == "model_start":
            p.update(self.models, info=f"{info['model']} (seed {info['seed']})")
        elif event == "model_end":
            p.advance(self.models)
            p.update(self.epoch, visible=False)
            p.update(self.step, visible=False)
        elif event == "train_epoch_start":
            p.update(self.epoch, total=info["epochs"], completed=info["epoch"], visible=True,
                     description=f"train {info['model']}", info="")
            p.update(self.step, total=max(info["steps"], 1), completed=0, visible=True, description="steps")
        elif event == "train_step":
            p.update(self.step, completed=info["step"] + 1, info=f"loss {info['loss']:.3f}")
        elif event == "train_epoch_end":
            p.advance(self.epoch)
            p.update(self.epoch, info=f"train acc {100 * info['train_acc']:.1f} %")
        elif event == "measure_start":
            p.update(self.step, visible=False)
            p.update(self.epoch, visible=True, total=1, completed=0,
                     description=f"{info['measurement']} {info['model']}", info=f"{info['scale']} clip")
        elif event == "record":
            self.console.print(_record_line(info), highlight=False)


def _record_line(r: dict) -> str:
    head = f"  {r['model']:<24} {r['measurement']:<8} {r['scale']:<5}"
    if r["status"] != "ok":
        return f"{head} [red]{r['status']}[/red]: {str(r.get('error'))[:160]}"
    m = r["measurement"]
    body = measurements.get(m).line(r) if m in measurements.names() else ""
    return f"{head} {body}"


OUTPUT_FORMATS = ("table", "csv", "json")
FORMAT_HELP = ("table | csv | json; 'table' prints plain tab-separated lines with full names when stdout is not "
               "a terminal (a pipe, a file)")


def check_format(value: str) -> str:
    """``value`` if it is one of ``OUTPUT_FORMATS``; otherwise ``ValueError`` listing the choices."""
    if value not in OUTPUT_FORMATS:
        raise ValueError(f"--format takes one of {', '.join(OUTPUT_FORMATS)}; got {value!r}")
    return value


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt(v, ".4g")
    return "-" if v is None else str(v)


def emit_rows(rows: list[dict[str, Any]], fmt_name: str = "table", *, title: str = "", console: Console | None = None,
              left: tuple[str, ...] = ("model", "family", "status", "point", "group")) -> None:
    """Print ``rows`` (one dict each, same keys) as a rich table on a terminal, as plain TSV (header line first,
    full names, no truncation) when stdout is not one, or as CSV / JSON for scripts."""
    import csv
    import json
    import sys

    console = console or out_console
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if fmt_name == "json":
        console.file.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    if fmt_name == "csv" or not console.is_terminal:
        w = csv.writer(console.file, delimiter="," if fmt_name == "csv" else "\t", lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) if fmt_name != "csv" or not isinstance(r.get(c), (int, float)) or
                        isinstance(r.get(c), bool) else r.get(c) for c in cols])
        sys.stdout.flush()
        return
    t = Table(title=title or None)
    for c in cols:
        width = max([len(c)] + [len(_cell(r.get(c))) for r in rows]) if c == "model" else None
        t.add_column(c, justify="left" if c in left else "right", no_wrap=c == "model", min_width=width)
    for r in rows:
        t.add_row(*[_cell(r.get(c)) for c in cols])
    console.print(t)


def summary_rows(records: Iterable[dict]) -> list[dict[str, Any]]:
    """One row per model (per model and ablation point when the run has several points): the summary cells
    of every measurement (bench/measurements.py), e.g. mean top-1 over seeds and the ceiling in %, costs of
    the first seed."""
    import json

    records = list(records)
    points = {r.get("point") or "" for r in records}
    cells = [(m.name, cell) for m in measurements.measurements() for cell in m.summary]
    by_key: dict[tuple, dict[str, Any]] = {}
    seen: dict[tuple, dict[str, list]] = {}
    for r in records:
        point = r.get("point") or ""
        key = (r["model"], point)
        d = by_key.setdefault(key, {"model": r["model"], "status": "ok"})
        if len(points) > 1:
            knobs = json.loads(point) if isinstance(point, str) and point.startswith("{") else {}
            d["point"] = ", ".join(f"{k}={v}" for k, v in knobs.items()) or "default"
        if r["status"] != "ok":
            d["status"] = r["status"]
            continue
        vals = seen.setdefault(key, {})
        for name, cell in cells:
            if (name == r["measurement"] and cell.scale in (None, r["scale"])
                    and cell.batch in (None, r.get("batch_size"))):
                vals.setdefault(cell.header, []).append(r.get(cell.column))
    rows = []
    for key, d in by_key.items():
        row = {"model": d["model"], **({"point": d["point"]} if "point" in d else {}), "status": d["status"]}
        for _, cell in cells:
            row[cell.header] = _summary_value(seen.get(key, {}).get(cell.header, []), cell)
        rows.append(row)
    return rows


def _summary_value(vals: list, cell: measurements.Summary) -> Any:
    """One summary cell from the values of its records, in record order (seeds)."""
    if cell.agg == "mean":
        vals = [x for x in vals if x is not None]
        v = sum(vals) / len(vals) if vals else None
    else:
        v = (vals[0] if cell.agg == "first" else vals[-1]) if vals else None
    return _pct(v) if cell.pct else v


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr and a non-zero exit (no traceback)."""
    import typer

    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
