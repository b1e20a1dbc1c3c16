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
            p.update(self.epoch, info=f"train acc {info['train_acc']:.2f}")
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
        body = f"top-1 {fmt(r.get('acc_top1'), '.3f')} (ceiling {fmt(r.get('ceiling_top1'), '.2f')}) in {fmt(r.get('train_time_s'), '.1f')} s"
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


def summary_table(records: Iterable[dict], title: str = "summary") -> Table:
    """Model x key metrics from a run's records (first seed's costs, mean accuracy over seeds)."""
    by_model: dict[str, dict[str, Any]] = {}
    accs: dict[str, list[float]] = {}
    for r in records:
        d = by_model.setdefault(r["model"], {"status": "ok"})
        if r["status"] != "ok":
            d["status"] = r["status"]
            continue
        m, s = r["measurement"], r["scale"]
        if m == "accuracy":
            accs.setdefault(r["model"], []).append(r.get("acc_top1"))
            d["ceiling"] = r.get("ceiling_top1")
        elif m == "params":
            d.setdefault(f"params_{s}", r.get("params"))
        elif m == "flops":
            d.setdefault(f"gmacs_{s}", r.get("gmacs"))
        elif m == "latency" and r.get("batch_size") == 1:
            d.setdefault(f"lat_{s}", r.get("latency_ms_p50"))
        elif m == "memory":
            d.setdefault(f"mem_{s}", r.get("peak_mem_mib"))
    t = Table(title=title)
    for col in ("model", "status", "acc top-1", "ceiling", "params (train)", "GMACs (deploy)",
                "p50 ms b1 (train)", "p50 ms b1 (deploy)", "peak MiB (deploy)"):
        t.add_column(col, justify="left" if col in ("model", "status") else "right")
    for name, d in by_model.items():
        a = [x for x in accs.get(name, []) if x is not None]
        t.add_row(
            name, d["status"], fmt(sum(a) / len(a), ".3f") if a else "-", fmt(d.get("ceiling"), ".2f"),
            fmt(d.get("params_train"), ","), fmt(d.get("gmacs_cost"), ".3g"), fmt(d.get("lat_train"), ".3g"),
            fmt(d.get("lat_cost"), ".3g"), fmt(d.get("mem_cost"), ".3g"),
        )
    return t


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr and a non-zero exit (no traceback)."""
    import typer

    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
