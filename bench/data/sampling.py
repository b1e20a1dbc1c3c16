"""Which frames of a video make a clip, shared by every model and decoder.

    dense:     start, start + s, ..., start + (T-1) s        (s = frame stride)
    segments:  the video cut into T equal segments, one frame from each (TSN)

Training draws the start (dense) or the frame inside each segment (segments) at random; evaluation
takes K clips evenly spaced over the video (dense) or the segment centres shifted by k/K of a
segment (segments), so video-level accuracy averages the logits of K clips.
"""
from __future__ import annotations

import numpy as np


def span(frames: int, stride: int) -> int:
    """Frames a dense clip of ``frames`` frames ``stride`` apart covers."""
    return (frames - 1) * stride + 1


def min_video_frames(frames: int, stride: int, sampling: str) -> int:
    """The shortest video a clip can come from without repeating frames."""
    return span(frames, stride) if sampling == "dense" else frames


def dense_random(num_frames: int, frames: int, stride: int, rng: np.random.Generator) -> list[int]:
    """T indices ``stride`` apart from a uniformly random start."""
    start = int(rng.integers(num_frames - span(frames, stride) + 1))
    return [start + i * stride for i in range(frames)]


def dense_even(num_frames: int, frames: int, stride: int, k: int, clips: int) -> list[int]:
    """Clip ``k`` of ``clips`` evenly spaced dense clips (clip 0 at the start, the last at the end)."""
    room = num_frames - span(frames, stride)
    # One clip: the centre, as in single-clip evaluation; several: first at the start, last at the end.
    start = room // 2 if clips == 1 else int(k * room / (clips - 1) + 0.5)
    return [start + i * stride for i in range(frames)]


def segments_random(num_frames: int, frames: int, rng: np.random.Generator) -> list[int]:
    """One random frame from each of T equal segments (TSN training)."""
    edges = np.linspace(0, num_frames, frames + 1)
    return [min(num_frames - 1, int(lo + rng.random() * (hi - lo))) for lo, hi in zip(edges[:-1], edges[1:])]


def segments_even(num_frames: int, frames: int, k: int, clips: int) -> list[int]:
    """Frame ``(k + 0.5) / clips`` of the way through each of T segments (TSN evaluation)."""
    seg = num_frames / frames
    return [min(num_frames - 1, int(i * seg + (k + 0.5) / clips * seg)) for i in range(frames)]


def clip_indices(num_frames: int, frames: int, *, sampling: str, stride: int, train: bool,
                 rng: np.random.Generator | None = None, k: int = 0, clips: int = 1) -> list[int]:
    """The frame indices of one clip (length T, each in ``[0, num_frames)``)."""
    if num_frames < min_video_frames(frames, stride, sampling):
        raise ValueError(f"video has {num_frames} frames; a {sampling} clip of {frames} frames "
                         f"(stride {stride}) needs {min_video_frames(frames, stride, sampling)}")
    if sampling == "dense":
        return (dense_random(num_frames, frames, stride, rng) if train
                else dense_even(num_frames, frames, stride, k, clips))
    return segments_random(num_frames, frames, rng) if train else segments_even(num_frames, frames, k, clips)
