"""Video decoding: PyAV always, torchcodec when it imports and works.

    path --probe--> VideoInfo(num_frames, fps, height, width)
    path, frame indices --decode--> uint8 [T, H, W, 3]

Each call opens a fresh decoder (never shared across DataLoader workers), with one decoder thread
(FFmpeg threading was slower than worker parallelism on 2 cores), seeks to the keyframe before the
first wanted frame and decodes only up to the last one.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

DECODER_NAMES = ("pyav", "torchcodec")


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts read from the container (``num_frames`` may be estimated from the duration)."""

    num_frames: int
    fps: float
    height: int
    width: int


@functools.lru_cache(maxsize=1)
def torchcodec_error() -> str | None:
    """``None`` when torchcodec imports and its FFmpeg libraries load, else why not (one line)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads the FFmpeg shared libraries)
    except Exception as exc:  # ImportError, or OSError/RuntimeError when FFmpeg libs are missing
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return None


def resolve_decoder(name: str) -> str:
    """``"auto"`` -> ``"torchcodec"`` when it works, else ``"pyav"``; an unavailable explicit choice raises."""
    if name == "pyav":
        return "pyav"
    if name == "torchcodec":
        err = torchcodec_error()
        if err:
            raise ValueError(f"decoder 'torchcodec' is not usable here ({err}); install torchcodec and the "
                             "system FFmpeg libraries, or use --decoder pyav / auto")
        return "torchcodec"
    if name == "auto":
        return "pyav" if torchcodec_error() else "torchcodec"
    raise ValueError(f"unknown decoder {name!r}; choose from auto, {', '.join(DECODER_NAMES)}")


def probe(path: str, decoder: str) -> VideoInfo:
    """Open ``path`` and decode its first frame; raises on an unreadable file.

    Memoised per (path, size, mtime, decoder): every model's loader lists the same videos."""
    import os

    st = os.stat(path)
    return _probe(path, st.st_size, st.st_mtime_ns, decoder)


@functools.lru_cache(maxsize=200_000)
def _probe(path: str, size: int, mtime_ns: int, decoder: str) -> VideoInfo:
    if decoder == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        d = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC")
        m = d.metadata
        d.get_frame_at(0)
        return VideoInfo(int(m.num_frames), float(m.average_fps or 0.0), int(m.height), int(m.width))
    import av

    with av.open(path, metadata_errors="ignore") as c:
        if not c.streams.video:
            raise ValueError("no video stream")
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 0)
        n = s.frames
        if n <= 0:  # mkv/webm carry no frame count: estimate from the duration
            if s.duration is not None and s.time_base is not None:
                n = round(float(s.duration * s.time_base) * fps)
            elif c.duration is not None:
                n = round(c.duration / 1_000_000 * fps)
        first = next(c.decode(s), None)
        if first is None:
            raise ValueError("no decodable frame")
        return VideoInfo(int(n), fps, first.height, first.width)


def decode(path: str, indices: list[int], decoder: str) -> np.ndarray:
    """Frames ``indices`` of ``path`` as uint8 ``[len(indices), H, W, 3]`` (RGB).

    An index past the real end (frame counts estimated from the duration) repeats the last frame."""
    if decoder == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        d = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC")
        n = int(d.metadata.num_frames)
        return d.get_frames_at(indices=[min(i, n - 1) for i in indices]).data.numpy()
    return _pyav_decode(path, indices)


def _pyav_decode(path: str, indices: list[int]) -> np.ndarray:
    want = sorted(set(indices))
    got = _pyav_scan(path, want, seek=want[0] > 0)
    if want[0] not in got:  # a seek that landed past the frame (odd keyframe index): decode from the start
        got = _pyav_scan(path, want, seek=False)
    if not got:
        raise ValueError(f"no frame decoded from {path}")
    have = sorted(got)
    out = []
    for i in indices:
        j = i if i in got else max((h for h in have if h <= i), default=have[0])
        out.append(got[j])
    return np.stack(out)


def _pyav_scan(path: str, want: list[int], *, seek: bool) -> dict[int, np.ndarray]:
    import av

    wanted, got = set(want), {}
    with av.open(path, metadata_errors="ignore") as c:
        s = c.streams.video[0]
        s.thread_type = "SLICE"
        s.codec_context.thread_count = 1
        fps = s.average_rate or s.guessed_rate or Fraction(25)
        tb = s.time_base or Fraction(1, 1_000_000)
        start = s.start_time or 0
        if seek:
            c.seek(start + int(Fraction(want[0]) / fps / tb), stream=s, backward=True, any_frame=False)
        for count, frame in enumerate(c.decode(s)):
            if frame.pts is None and seek:
                return {}   # no timestamps: only counting from the start is safe
            idx = count if frame.pts is None else round((frame.pts - start) * tb * fps)
            if idx > want[-1]:
                break
            if idx in wanted:
                got[idx] = frame.to_ndarray(format="rgb24")
    return got
