"""``bench data``: write the synthetic tasks as real videos, preview a dataset. Thin adapters over bench.data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="synthetic clips as real videos, dataset previews")


def _spec(dataset: str, **knobs):
    from .data import DatasetSpec

    return DatasetSpec(name=dataset, **{k: v for k, v in knobs.items() if v is not None})


def _clip(frames: int, size: str):
    from fusion_models.clip import ClipSpec

    from .config import parse_size

    h, w = parse_size(size)
    return ClipSpec(frames=frames, height=h, width=w)


@app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="folder to write (UCF-101 layout: UCF-101/, ucfTrainTestlist/)"),
    videos_per_class: int = typer.Option(10, "--videos-per-class", min=1, help="videos written per class"),
    fmt: str = typer.Option("mp4", "--format", help="mp4 (H.264) or avi (MPEG-4 part 2)"),
    dataset: str = typer.Option("synthetic", "--dataset", help="synthetic | synthetic-order"),
    frames: int = typer.Option(8, "--frames", min=1, help="clip length T the videos are meant for"),
    video_frames: Optional[int] = typer.Option(None, "--video-frames", help="frames per video (default 2 T)"),
    size: str = typer.Option("32", "--size", help="H or HxW of the frames (even numbers)"),
    fps: int = typer.Option(25, "--fps", min=1),
    seed: int = typer.Option(0, "--seed"),
    noise: Optional[float] = typer.Option(None, "--noise", help="additive noise sigma"),
    camera: Optional[int] = typer.Option(None, "--camera", help="max camera pan, px/frame"),
    distractors: Optional[int] = typer.Option(None, "--distractors"),
    num_shapes: Optional[int] = typer.Option(None, "--num-shapes"),
) -> None:
    """Write synthetic clips as real videos with split files, readable with --dataset ucf101 --root OUT."""
    from .console import fail, out_console
    from .data.export import export_ucf101

    try:
        if fmt not in ("mp4", "avi"):
            raise ValueError(f"--format must be mp4 or avi, got {fmt!r}")
        spec = _spec(dataset, noise=noise, camera=camera, distractors=distractors, num_shapes=num_shapes)
        summary = export_ucf101(spec, _clip(frames, size), out, videos_per_class=videos_per_class, fmt=fmt,
                                seed=seed, video_frames=video_frames, fps=fps)
    except (ValueError, FileNotFoundError, OSError) as exc:
        fail(str(exc))
        return
    out_console.print(
        f"wrote {summary.train_videos + summary.test_videos} videos ({summary.train_videos} train, "
        f"{summary.test_videos} test; {len(summary.class_names)} classes, {summary.frames_per_video} frames each) "
        f"to {summary.root}\nread them back with: bench run --dataset ucf101 --root {summary.root}", highlight=False)


@app.command("preview")
def preview_cmd(
    out: Path = typer.Option(Path("preview.png"), "--out", help="PNG to write: one row per clip, one column per frame"),
    dataset: str = typer.Option("synthetic", "--dataset"),
    root: Optional[str] = typer.Option(None, "--root", help="real datasets: folder / CSV / dataset root"),
    split: str = typer.Option("val", "--split"),
    clips: int = typer.Option(8, "--clips", min=1),
    frames: int = typer.Option(8, "--frames", min=1),
    size: str = typer.Option("32", "--size"),
    noise: Optional[float] = typer.Option(None, "--noise"),
    camera: Optional[int] = typer.Option(None, "--camera"),
    distractors: Optional[int] = typer.Option(None, "--distractors"),
) -> None:
    """Write a PNG of a few clips and list the classes (and ceilings, for the synthetic tasks)."""
    import cv2
    from rich.table import Table

    from .console import fail, out_console
    from .data import FAMILIES, build_dataset, ceiling_for
    from .data.export import preview_grid

    try:
        spec = _spec(dataset, root=root, noise=noise, camera=camera, distractors=distractors, cache=False)
        ds = build_dataset(spec, _clip(frames, size), split)
        grid = preview_grid(ds, clips=clips)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), grid[..., ::-1]):
            raise OSError(f"could not write {out}")
    except (ValueError, FileNotFoundError, OSError) as exc:
        fail(str(exc))
        return
    t = Table(title=f"{dataset} {split}: {len(ds)} clips, {ds.num_classes} classes")
    t.add_column("label")
    t.add_column("class")
    for i, name in enumerate(ds.class_names[:32]):
        t.add_row(str(i), name)
    out_console.print(t)
    ceilings = {f: ceiling_for(dataset, f).get("top1") for f in FAMILIES}
    if any(v is not None for v in ceilings.values()):
        out_console.print("top-1 ceilings: " + ", ".join(f"{f} {v:.0%}" for f, v in ceilings.items()), highlight=False)
    out_console.print(f"wrote {out}", highlight=False)
