"""The built-in synthetic motion tasks, generated deterministically from (seed, split, index).

``synthetic``: a sprite of one of S shapes moves over a textured background in one of 4 directions,
class = (shape, direction), K = 4 S. ``synthetic-order``: every class is a permutation of the same T
frames of one moving sprite (forward, backward, out-and-back, back-and-out, two sawtooths), K = 6.

    (seed, split, index) --rng--> ClipParams --render--> uint8 [T, C, H, W]

Why it is built this way (the ceilings in ``ceilings.py`` rest on these facts, tested directly):
- positions are integers on a torus (motion wraps) and the start is uniform, so at every frame the
  sprite position is uniform over the canvas in every class: one frame says nothing about direction;
- reversing a clip of direction d with start p and speed v gives exactly the clip of the opposite
  direction with start p + v (T-1) and the same speed, camera pan negated (``time_reversed``): both
  are equally likely, so an order-invariant model cannot tell the sign of the motion;
- every draw happens in a fixed order whatever the knobs, so turning on noise or camera pan changes
  only that aspect of each clip, and the clip never depends on worker count or machine.
Clips are quantised to uint8 by the generator itself, so a materialised cache and on-the-fly
generation give bit-identical clips.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from fusion_models.clip import ClipSpec

from .spec import DatasetSpec

GENERATOR_VERSION = 2   # bump when rendering changes: it is part of every cache key
# Most distinct at 11 px first: square and disc were confused (59 % top-1 vs 87 % for this order, early
# fusion, 4 epochs), so square comes only with num_shapes >= 5.
SHAPES = ("disc", "cross", "triangle", "ring", "square", "diamond")
DIRECTIONS = ("left", "right", "up", "down")
DIRECTION_VECTORS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (dy, dx)
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
ORDERS = ("forward", "backward", "out_and_back", "back_and_out", "sawtooth_forward", "sawtooth_backward")
# Channel values 0.05/0.95 differ by >= 0.2 from any background value (0.5 +- texture <= 0.75), so the
# sprite contrasts in every channel whatever the colour.
PALETTE = np.array([[r, g, b] for r in (0.05, 0.95) for g in (0.05, 0.95) for b in (0.05, 0.95)], np.float32)
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_TASK_CODE = {"synthetic": 0, "synthetic-order": 1}


@dataclass(frozen=True)
class ClipParams:
    """Everything that determines one synthetic clip; positions are integer px, (y, x) order."""

    label: int
    shape: int                          # index into SHAPES
    direction: int                      # index into DIRECTIONS
    speed: int                          # px/frame
    start: tuple[int, int]              # sprite top-left at frame 0
    colour: int                         # index into PALETTE
    texture_seed: int
    camera_start: tuple[int, int]       # background offset at frame 0
    camera_velocity: tuple[int, int]    # background pan, px/frame (independent of the label)
    noise_seed: int
    distractors: tuple[tuple[int, int, int, int, int], ...] = ()  # (y, x, vy, vx, colour) per dot
    order: int | None = None            # index into ORDERS (synthetic-order only)

    @property
    def velocity(self) -> tuple[int, int]:
        """Sprite velocity ``(dy, dx)`` in px/frame."""
        dy, dx = DIRECTION_VECTORS[DIRECTIONS[self.direction]]
        return dy * self.speed, dx * self.speed


def order_permutation(order: str, frames: int) -> tuple[int, ...]:
    """The frame permutation of a ``synthetic-order`` class: output frame t shows base frame ``perm[t]``.

    out-and-back and back-and-out have the same multiset of steps (so averaged local motion cannot
    separate them), and are not each other's reversal."""
    if frames < 4:
        raise ValueError(f"synthetic-order needs at least 4 frames, got {frames}")
    evens, odds = list(range(0, frames, 2)), list(range(1, frames, 2))
    last, other = (odds, evens) if (frames - 1) % 2 else (evens, odds)  # `last` holds frame T-1
    perms = {
        "forward": list(range(frames)),
        "backward": list(range(frames))[::-1],
        "out_and_back": evens + odds[::-1],
        "back_and_out": other[::-1] + last,
        "sawtooth_forward": evens + odds,
        "sawtooth_backward": (evens + odds)[::-1],
    }
    return tuple(perms[order])


def camel(name: str) -> str:
    """``"disc-left"`` / ``"out_and_back"`` -> ``"DiscLeft"`` / ``"OutAndBack"`` (UCF-style class names)."""
    return "".join(p.capitalize() for p in name.replace("-", "_").split("_"))


def class_table(spec: DatasetSpec) -> tuple[list[str], list[dict[str, str]]]:
    """``(class_names, class_attributes)`` of a synthetic task; label = shape * 4 + direction."""
    if spec.name == "synthetic-order":
        return list(ORDERS), [{"order": o} for o in ORDERS]
    attrs = [{"shape": s, "direction": d} for s in SHAPES[: spec.num_shapes] for d in DIRECTIONS]
    return [f"{a['shape']}-{a['direction']}" for a in attrs], attrs


def sample_params(spec: DatasetSpec, clip: ClipSpec, *, seed: int, split: str, index: int) -> ClipParams:
    """The parameters of clip ``index`` of ``split``; a pure function of its arguments."""
    k = 6 if spec.name == "synthetic-order" else 4 * spec.num_shapes
    label = index % k   # balanced classes; the loader shuffles
    rng = np.random.default_rng([GENERATOR_VERSION, _TASK_CODE[spec.name], _SPLIT_CODE[split], seed, index])
    h, w = clip.height, clip.width
    # Fixed draw order, whatever the knobs (see module docstring).
    shape, direction = int(rng.integers(spec.num_shapes)), int(rng.integers(4))
    speed = int(rng.integers(spec.speed[0], spec.speed[1] + 1))
    start = (int(rng.integers(h)), int(rng.integers(w)))
    colour = int(rng.integers(len(PALETTE)))
    texture_seed, noise_seed = int(rng.integers(2**31)), int(rng.integers(2**31))
    camera_start = (int(rng.integers(h)), int(rng.integers(w)))
    u = rng.random(2)
    c = spec.camera
    camera_velocity = (int(np.floor(u[0] * (2 * c + 1))) - c, int(np.floor(u[1] * (2 * c + 1))) - c)
    dots = []
    for _ in range(spec.distractors):
        dd, ds = DIRECTION_VECTORS[DIRECTIONS[int(rng.integers(4))]], int(rng.integers(spec.speed[0], spec.speed[1] + 1))
        dots.append((int(rng.integers(h)), int(rng.integers(w)), dd[0] * ds, dd[1] * ds, int(rng.integers(len(PALETTE)))))
    order = None
    if spec.name == "synthetic-order":
        order = label
    else:
        shape, direction = divmod(label, 4)
    return ClipParams(label, shape, direction, speed, start, colour, texture_seed, camera_start,
                      camera_velocity, noise_seed, tuple(dots), order)


def time_reversed(p: ClipParams, frames: int, clip: ClipSpec) -> ClipParams:
    """The ``synthetic`` parameters whose clip (without noise) is ``p``'s clip played backwards."""
    h, w = clip.height, clip.width
    t = frames - 1
    vy, vx = p.velocity
    cy, cx = p.camera_velocity
    opposite = DIRECTIONS.index(OPPOSITE[DIRECTIONS[p.direction]])
    dots = tuple(((y + dy * t) % h, (x + dx * t) % w, -dy, -dx, col) for y, x, dy, dx, col in p.distractors)
    return replace(
        p, label=p.shape * 4 + opposite, direction=opposite,
        start=((p.start[0] + vy * t) % h, (p.start[1] + vx * t) % w),
        camera_start=((p.camera_start[0] + cy * t) % h, (p.camera_start[1] + cx * t) % w),
        camera_velocity=(-cy, -cx), distractors=dots,
    )


def sprite_px(spec: DatasetSpec, clip: ClipSpec) -> int:
    """Sprite side in px."""
    return max(3, round(spec.sprite_size * min(clip.height, clip.width)))


@functools.lru_cache(maxsize=64)
def _mask(shape: str, side: int, h: int, w: int) -> np.ndarray:
    # 4x4 supersampled coverage of the shape in its side x side box, placed at the canvas origin [H, W].
    n = 4 * side
    v, u = np.meshgrid((np.arange(n) + 0.5) / n * 2 - 1, (np.arange(n) + 0.5) / n * 2 - 1, indexing="ij")
    r = np.hypot(u, v)
    inside = {
        "square": (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85),
        "disc": r <= 1.0,
        "triangle": (v >= -0.9) & (v <= 0.9) & (np.abs(u) <= (v + 0.9) / 1.8),
        "cross": ((np.abs(u) <= 0.3) | (np.abs(v) <= 0.3)) & (np.abs(u) <= 1) & (np.abs(v) <= 1),
        "ring": (r <= 1.0) & (r >= 0.5),
        "diamond": np.abs(u) + np.abs(v) <= 1.0,
    }[shape]
    small = inside.reshape(side, 4, side, 4).mean(axis=(1, 3)).astype(np.float32)
    canvas = np.zeros((h, w), np.float32)
    canvas[: min(side, h), : min(side, w)] = small[:h, :w]
    return canvas


@functools.lru_cache(maxsize=16)
def _interp(size: int, grid: int) -> np.ndarray:
    # Periodic linear interpolation matrix [size, grid]: the texture wraps, so a pan shows no seam.
    m = np.zeros((size, grid), np.float32)
    f = np.arange(size) * grid / size
    i0 = np.floor(f).astype(int)
    m[np.arange(size), i0 % grid] += 1 - (f - i0)
    m[np.arange(size), (i0 + 1) % grid] += f - i0
    return m


def _texture(seed: int, c: int, h: int, w: int, strength: float) -> np.ndarray:
    # Low-frequency blobs plus fine grain, mean 0.5, amplitude `strength`: [C, H, W].
    rng = np.random.default_rng(seed)
    coarse = rng.random((c, 4, 4), dtype=np.float32)
    low = np.einsum("hi,cij,wj->chw", _interp(h, 4), coarse, _interp(w, 4))
    tex = 0.7 * low + 0.3 * rng.random((c, h, w), dtype=np.float32)
    return 0.5 + strength * (2 * tex - 1)


def _rolled(img: np.ndarray, y0: int, x0: int, vy: int, vx: int, frames: int) -> np.ndarray:
    # img [..., H, W] translated by (y0 + vy t, x0 + vx t) with wrap, for t < frames: [T, ..., H, W].
    h, w = img.shape[-2:]
    t = np.arange(frames)
    rows = (np.arange(h)[None, :] - (y0 + vy * t)[:, None]) % h
    cols = (np.arange(w)[None, :] - (x0 + vx * t)[:, None]) % w
    out = img[..., rows[:, :, None], cols[:, None, :]]       # [..., T, H, W]
    return np.moveaxis(out, -3, 0) if img.ndim == 3 else out


def render(p: ClipParams, spec: DatasetSpec, clip: ClipSpec) -> torch.Tensor:
    """The clip of ``p``: uint8 ``[T, C, H, W]``."""
    t, c, h, w = clip.frames, clip.channels, clip.height, clip.width
    side = sprite_px(spec, clip)
    bg = _texture(p.texture_seed, c, h, w, spec.texture)
    frames = _rolled(bg, *p.camera_start, *p.camera_velocity, t)                   # [T, C, H, W]
    layers = [(_mask("disc", max(2, side // 3), h, w), y, x, vy, vx, col) for y, x, vy, vx, col in p.distractors]
    layers.append((_mask(SHAPES[p.shape], side, h, w), *p.start, *p.velocity, p.colour))
    for mask, y, x, vy, vx, col in layers:
        m = _rolled(mask, y, x, vy, vx, t)[:, None]                                 # [T, 1, H, W]
        colour = PALETTE[col][:c, None, None] if c <= 3 else np.full((c, 1, 1), PALETTE[col].mean(), np.float32)
        frames = frames * (1 - m) + colour * m
    if spec.noise > 0:
        frames = frames + spec.noise * np.random.default_rng(p.noise_seed).standard_normal(frames.shape, np.float32)
    if p.order is not None:
        frames = frames[list(order_permutation(ORDERS[p.order], t))]
    return torch.from_numpy(np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8))


def cache_root(spec: DatasetSpec) -> Path:
    """Where materialised splits are stored: ``spec.cache_dir``, ``$FUSIONBENCH_CACHE`` or ~/.cache/fusionbench."""
    if spec.cache_dir:
        return Path(spec.cache_dir)
    env = os.environ.get("FUSIONBENCH_CACHE")
    return Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fusionbench"


def generation_key(spec: DatasetSpec, clip: ClipSpec, split: str, seed: int) -> str:
    """A hash of exactly what determines a split's clips (not the cache or sampling fields)."""
    knobs = replace(spec, cache=True, cache_dir=None, sampling="dense", frame_stride=1, clips_per_video=3,
                    resize_ratio=1.15, root=None, split_id=1, decoder="auto")
    return knobs.config_hash(GENERATOR_VERSION, clip.shape, split, seed, spec.size(split))


class SyntheticClips(torch.utils.data.Dataset):
    """A split of a synthetic task: ``ds[i] -> (clip float32 [T, C, H, W] in [0, 1], label int)``.

    With ``spec.cache`` the whole split is rendered once into a uint8 tensor ``[N, T, C, H, W]``
    (kept in memory and saved under ``cache_root(spec)`` keyed by ``generation_key``).
    """

    decoder = None
    clips_per_video = 1

    def __init__(self, spec: DatasetSpec, clip: ClipSpec, *, split: str = "train", seed: int = 0) -> None:
        if spec.name == "synthetic-order" and clip.frames < 4:
            raise ValueError(f"synthetic-order needs ClipSpec.frames >= 4, got {clip.frames}")
        self.spec, self.clip, self.split, self.seed = spec, clip, split, seed
        self.class_names, self.class_attributes = class_table(spec)
        self.num_classes = len(self.class_names)
        self.skipped: list[tuple[str, str]] = []
        self._n = spec.size(split)
        self.video_index = range(self._n)      # one clip per "video"
        self._clips: torch.Tensor | None = None
        self.cache_path: Path | None = None

    def __len__(self) -> int:
        return self._n

    def params(self, index: int) -> ClipParams:
        """The parameters of clip ``index``."""
        if not 0 <= index < self._n:
            raise IndexError(f"index {index} out of range for {self._n} clips")
        return sample_params(self.spec, self.clip, seed=self.seed, split=self.split, index=index)

    def label(self, index: int) -> int:
        """Label of clip ``index`` without rendering it."""
        return index % self.num_classes

    def clip_uint8(self, index: int, epoch: int = 0) -> torch.Tensor:
        """Clip ``index`` as uint8 ``[T, C, H, W]`` (synthetic clips do not change with ``epoch``)."""
        if self._clips is not None:
            return self._clips[index]
        return render(self.params(index), self.spec, self.clip)

    def batch_uint8(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips uint8 [B, T, C, H, W], labels int64 [B])`` for ``(index, epoch)`` keys."""
        idx = [i for i, _ in keys]
        labels = torch.tensor([self.label(i) for i in idx], dtype=torch.int64)
        if self._clips is not None:
            return self._clips[torch.tensor(idx, dtype=torch.long)], labels
        return torch.stack([self.clip_uint8(i) for i in idx]), labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.clip_uint8(index).float().div_(255), self.label(index)

    def materialise(self, *, disk: bool = True) -> "SyntheticClips":
        """Render every clip once into memory (and load/save the disk cache when ``disk``); returns self."""
        if self._clips is not None:
            return self
        key = generation_key(self.spec, self.clip, self.split, self.seed)
        self._clips = _MEMORY.get(key)
        if self._clips is not None:
            return self
        path = cache_root(self.spec) / f"{self.spec.name}-{key}.pt"
        if disk and path.is_file():
            try:
                clips = torch.load(path, weights_only=True)
                if tuple(clips.shape) == (self._n, *self.clip.shape) and clips.dtype == torch.uint8:
                    self._clips = clips
            except Exception:  # a truncated or foreign file: regenerate and overwrite it
                self._clips = None
        if self._clips is None:
            self._clips = torch.stack([render(self.params(i), self.spec, self.clip) for i in range(self._n)])
            if disk:
                _save_atomic(self._clips, path)
        self.cache_path = path if disk else None
        _MEMORY.put(key, self._clips)
        return self

    def describe(self) -> dict:
        """Facts for a run record."""
        return {"dataset": self.spec.name, "split": self.split, "clips": self._n, "videos": self._n,
                "num_classes": self.num_classes, "decoder": None, "skipped": 0,
                "cache": str(self.cache_path) if self.cache_path else ("memory" if self._clips is not None else None),
                "generation_key": generation_key(self.spec, self.clip, self.split, self.seed)}


def _save_atomic(t: torch.Tensor, path: Path) -> None:
    # Another process may read or write the same key at the same time: write aside, then rename.
    from ..weights import save_atomic

    try:
        save_atomic(t, path)
    except OSError:
        pass  # a read-only cache directory only costs a regeneration next time


class _LRU:
    # Splits rendered in this process, so twelve models in one run generate the data once.
    def __init__(self, size: int) -> None:
        self.size, self.items = size, {}

    def get(self, key: str) -> torch.Tensor | None:
        if key in self.items:
            self.items[key] = self.items.pop(key)
        return self.items.get(key)

    def put(self, key: str, value: torch.Tensor) -> None:
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.pop(next(iter(self.items)))


_MEMORY = _LRU(4)
