"""Rendering for the CLI: rich progress for runner events, summary tables, one-line errors.

The harness never prints; this module is the only place that turns records into terminal output.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def fmt(x: Any, spec: str = ".3g") -> str:
    """A number formatted with ``spec``; None and NaN as "-", anything else as ``str``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def _record_line(r: dict) -> str:
    head = f"  {r['model']:<24} {r['measurement']:<8} {r['scale']:<5}"
    if r["status"] != "ok":
        return f"{head} [red]{r['status']}[/red]: {str(r.get('error'))[:160]}"
    m = r["measurement"]
    if m == "accuracy":
        body = (f"top-1 {fmt(_pct(r.get('acc_top1')), '.1f')} % (ceiling {fmt(_pct(r.get('ceiling_top1')), '.0f')} %) "
                f"in {fmt(r.get('train_time_s'), '.1f')} s")
    elif m == "params":
        body = f"{fmt(r.get('params'), ',')} params, first conv {fmt(r.get('first_conv_params'), ',')}"
    elif m == "flops":
        body = f"{fmt(r.get('gmacs'), '.4g')} GMACs, {fmt(r.get('gflops_torch'), '.4g')} GFLOPs (torch)"
    elif m == "latency":
        body = f"batch {r.get('batch_size')}: p50 {fmt(r.get('latency_ms_p50'), '.3g')} ms, p90 {fmt(r.get('latency_ms_p90'), '.3g')} ms"
        if r.get("flow_share") is not None:
            body += f", flow {100 * r['flow_share']:.0f}%"
    elif m == "memory":
        body = f"peak {fmt(r.get('peak_mem_mib'), '.3g')} MiB (train step {fmt(r.get('train_peak_mem_mib'), '.3g')} MiB)"
    else:
        body = ""
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


def _pct(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100 * float(v), 1)


def summary_rows(records: Iterable[dict]) -> list[dict[str, Any]]:
    """One row per model (per model and ablation point when the run has several points): mean top-1 over
    seeds and the ceiling in %, costs of the first seed."""
    import json

    records = list(records)
    points = {r.get("point") or "" for r in records}
    by_key: dict[tuple, dict[str, Any]] = {}
    accs: dict[tuple, list[float]] = {}
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
        m, s = r["measurement"], r["scale"]
        if m == "accuracy":
            accs.setdefault(key, []).append(r.get("acc_top1"))
            d["ceiling"] = r.get("ceiling_top1")
        elif m == "params":
            d.setdefault(f"params_{s}", r.get("params"))
        elif m == "flops":
            d.setdefault(f"gmacs_{s}", r.get("gmacs"))
        elif m == "latency" and r.get("batch_size") == 1:
            d.setdefault(f"lat_{s}", r.get("latency_ms_p50"))
        elif m == "memory":
            d.setdefault(f"mem_{s}", r.get("peak_mem_mib"))
    rows = []
    for key, d in by_key.items():
        a = [x for x in accs.get(key, []) if x is not None]
        rows.append({"model": d["model"], **({"point": d["point"]} if "point" in d else {}), "status": d["status"],
                     "top-1 %": _pct(sum(a) / len(a)) if a else None, "ceiling %": _pct(d.get("ceiling")),
                     "params (train)": d.get("params_train"), "GMACs (deploy)": d.get("gmacs_cost"),
                     "p50 ms b1 (train)": d.get("lat_train"), "p50 ms b1 (deploy)": d.get("lat_cost"),
                     "peak MiB (deploy)": d.get("mem_cost")})
    return rows


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr and a non-zero exit (no traceback)."""
    import typer

    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
