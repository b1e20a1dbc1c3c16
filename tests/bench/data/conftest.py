"""Tiny videos written with PyAV into temporary folders; nothing is downloaded."""
from __future__ import annotations

import numpy as np
import pytest

from bench.data.export import write_video


def moving_square(frames: int, *, h: int = 32, w: int = 48, seed: int = 0, step: int = 2) -> np.ndarray:
    """uint8 [T, H, W, 3]: a bright square moving right over a grey ramp."""
    rng = np.random.default_rng(seed)
    out = np.empty((frames, h, w, 3), np.uint8)
    base = np.tile(np.linspace(60, 160, w, dtype=np.uint8)[None, :, None], (h, 1, 3))
    colour = rng.integers(0, 256, 3)
    for t in range(frames):
        f = base.copy()
        x = (4 + step * t) % (w - 8)
        f[8:20, x: x + 8] = colour
        out[t] = f
    return out


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory):
    """root/<class>/<video>.{mp4,avi,mkv}: 2 classes x 5 videos of 24 frames, plus one webm."""
    root = tmp_path_factory.mktemp("folder")
    exts = [".mp4", ".avi", ".mkv", ".mp4", ".avi"]
    for c, name in enumerate(["alpha", "beta"]):
        for i, ext in enumerate(exts):
            write_video(root / name / f"v{i}{ext}", moving_square(24, seed=10 * c + i))
    return root
