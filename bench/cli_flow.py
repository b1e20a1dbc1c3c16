"""`bench flow`: optical-flow throughput and robustness tables (thin adapter over bench.flowbench)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .console import fail, out_console

app = typer.Typer(add_completion=False, no_args_is_help=True)


def _floats(text: str, what: str, minimum: float = 0.0, integer: bool = False) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        fail(f"{what} must be comma-separated numbers, got {text!r}")
    if not vals:
        fail(f"{what} needs at least one value")
    bad = [v for v in vals if not (math.isfinite(v) and v >= minimum and (not integer or v == int(v)))]
    if bad:
        fail(f"{what} must be {'whole numbers' if integer else 'finite numbers'} >= {minimum:g}, got {bad[0]:g}")
    return vals


def _at_least(value: int, what: str, minimum: int) -> int:
    if value < minimum:
        fail(f"{what} must be >= {minimum}, got {value}")
    return value


def _show(df, title: str, csv: Optional[Path]) -> None:
    from rich.table import Table

    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c))
    for _, row in df.iterrows():
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.tolist()])
    out_console.print(t)
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(csv, index=False)
        out_console.print(f"written: {csv}")


@app.command("throughput")
def throughput_cmd(
    sizes: str = typer.Option("32,64,112", help="square frame sizes"),
    batches: str = typer.Option("1,32", help="clips per call"),
    frames: int = typer.Option(8, help="T per clip (T-1 flow fields)"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    threads: Optional[int] = typer.Option(None, help="threads for torch and OpenCV alike"),
    farneback: bool = typer.Option(True, "--farneback/--no-farneback", help="also time OpenCV Farneback (CPU)"),
    backends: str = typer.Option("auto", help="Horn-Schunck backends, one row each: auto | torch | fused"),
    epe: bool = typer.Option(True, "--epe/--no-epe", help="EPE beside each rate (shift and rotation scenes)"),
    csv: Optional[Path] = typer.Option(None, help="also write the table as CSV"),
) -> None:
    """Flow fields/s of our Horn-Schunck module vs OpenCV Farneback, with each method's EPE at that size."""
    from fusion_models.flow import BACKENDS

    from .flowbench import flow_throughput
    from .measure import resolve_device

    names = [b.strip() for b in backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        fail(f"--backends must be a comma-separated list of {', '.join(BACKENDS)}, got {backends!r}")
    try:
        dev = resolve_device(device)
        df = flow_throughput([int(s) for s in _floats(sizes, "--sizes", 8, True)],
                             [int(b) for b in _floats(batches, "--batches", 1, True)],
                             dev, frames=_at_least(frames, "--frames", 2), farneback=farneback,
                             threads=None if threads is None else _at_least(threads, "--threads", 1),
                             backends=names, epe=epe)
    except ValueError as exc:
        fail(str(exc))
    _show(df, "optical-flow throughput (fields/s)", csv)


@app.command("robustness")
def robustness_cmd(
    size: int = typer.Option(32),
    sigmas: str = typer.Option("0,0.01,0.02,0.05,0.1", help="Gaussian noise std (frames in [0, 1])"),
    pans: str = typer.Option("0,1,2,4", help="camera pan px/frame"),
    shifts: str = typer.Option("", help="pure translations (s, s/2) px/frame, e.g. 0.5,1,2,3"),
    rotations: str = typer.Option("", help="rotations in degrees/frame about the centre, e.g. 3"),
    csv: Optional[Path] = typer.Option(None),
) -> None:
    """End-point error vs noise, camera pan (and optionally shift and rotation), ours vs Farneback."""
    from .flowbench import flow_robustness

    try:
        df = flow_robustness(size=_at_least(size, "--size", 8), sigmas=_floats(sigmas, "--sigmas"),
                             pans=_floats(pans, "--pans"), shifts=_floats(shifts, "--shifts") if shifts else (),
                             rotations=_floats(rotations, "--rotations") if rotations else ())
    except ValueError as exc:
        fail(str(exc))
    _show(df, "optical-flow EPE (px)", csv)
