"""Write synthetic clips as real video files in the UCF-101 layout, so the real-video path runs offline.

    out/UCF-101/<Class>/v_<Class>_g<NN>_c01.<mp4|avi>
    out/ucfTrainTestlist/{classInd.txt, trainlist0N.txt, testlist0N.txt}

``DatasetSpec(name="ucf101", root=out)`` then reads it back through the same decoder and sampler
as real data.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fusion_models.clip import ClipSpec

from .spec import DatasetSpec
from .synthetic import SyntheticClips, camel

# Encoder per container: every one ships in PyAV's bundled FFmpeg.
CODECS = {".mp4": ("libx264", {"crf": "12", "preset": "veryfast"}), ".mkv": ("libx264", {"crf": "12", "preset": "veryfast"}),
          ".avi": ("mpeg4", {}), ".webm": ("libvpx-vp9", {"crf": "20", "b": "0", "deadline": "realtime"})}


def write_video(path: str | Path, frames: np.ndarray, *, fps: int = 25) -> Path:
    """Encode uint8 ``[T, H, W, 3]`` RGB frames to ``path`` (codec from the extension; H and W even)."""
    import av

    path = Path(path)
    if path.suffix.lower() not in CODECS:
        raise ValueError(f"cannot write {path.suffix!r} videos; choose from {', '.join(CODECS)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"frame size {h}x{w}: yuv420p video needs even height and width")
    codec, options = CODECS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = 16   # a keyframe every 16 frames, so a clip seek skips most of a video
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000   # its default ~200 kb/s smears small sprites; files stay tiny anyway
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        container.mux(stream.encode())
    return path


@dataclass(frozen=True)
class ExportSummary:
    """What ``export_ucf101`` wrote."""

    root: Path
    class_names: list[str]
    train_videos: int
    test_videos: int
    frames_per_video: int


def export_ucf101(spec: DatasetSpec, clip: ClipSpec, out: str | Path, *, videos_per_class: int, fmt: str = "mp4",
                  seed: int = 0, video_frames: int | None = None, fps: int = 25, test_fraction: float = 0.25,
                  split_id: int = 1) -> ExportSummary:
    """Render ``videos_per_class`` synthetic videos per class (``video_frames``, default 2 T, at the clip's
    H x W) into ``out`` in the UCF-101 layout; the last ``test_fraction`` of each class is the test list."""
    if not spec.is_synthetic:
        raise ValueError(f"export writes the synthetic tasks, not {spec.name!r}")
    if fmt not in ("mp4", "avi"):
        raise ValueError(f"format must be mp4 or avi, got {fmt!r}")
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    frames = video_frames or 2 * clip.frames
    if frames < clip.frames:
        raise ValueError(f"video_frames={frames} is shorter than the clip ({clip.frames} frames)")
    ds = SyntheticClips(replace(spec, train_size=videos_per_class * 64),
                        clip.with_(frames=frames, channels=3), split="train", seed=seed)
    k = ds.num_classes
    names = [camel(n) for n in ds.class_names]
    out = Path(out)
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    n_test = 0 if videos_per_class < 2 else max(1, round(videos_per_class * test_fraction))
    train, test = [], []
    for label, name in enumerate(names):
        for i in range(videos_per_class):
            rel = f"{name}/v_{name}_g{i + 1:02d}_c01.{fmt}"
            video = ds.clip_uint8(label + k * i).permute(0, 2, 3, 1).numpy()   # label(index) = index % K
            write_video(out / "UCF-101" / rel, video, fps=fps)
            (test if i >= videos_per_class - n_test else train).append((rel, label))
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    (lists / f"trainlist{split_id:02d}.txt").write_text("".join(f"{r} {lab + 1}\n" for r, lab in train))
    (lists / f"testlist{split_id:02d}.txt").write_text("".join(f"{r}\n" for r, _ in test))
    return ExportSummary(out, names, len(train), len(test), frames)


def preview_grid(ds, *, clips: int = 8, scale: int = 3) -> np.ndarray:
    """Rows = the first ``clips`` items of ``ds``, columns = their frames: uint8 ``[rows*H*s, T*W*s, 3]``."""
    rows = []
    for i in range(min(clips, len(ds))):
        c = ds.clip_uint8(i).permute(0, 2, 3, 1).numpy()          # [T, H, W, C]
        c = np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c[..., :3]
        rows.append(np.concatenate(list(c), axis=1))
    grid = np.concatenate(rows, axis=0)
    return np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
