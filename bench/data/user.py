"""User datasets: any torch ``Dataset`` yielding ``(clip float [T, C, H, W], label int)``, by name.

    from bench.data import register_dataset

    @register_dataset("my_clips", num_classes=10)
    def my_clips(split, clip, seed):          # split: "train" | "val" | "test"; clip: the run's ClipSpec
        return MyDataset(split, frames=clip.frames, size=(clip.height, clip.width))

    bench --plugin my_data.py run --dataset my_clips ...     (or DatasetSpec(name="my_clips") in Python)

``num_classes`` may instead be an attribute of the returned dataset. Every item is checked against the
run's ``ClipSpec``: a clip of another shape is a ``ValueError`` naming the expected and received shapes.
Real-data ceilings are unknown, so user datasets have none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import Dataset

from fusion_models import ClipSpec

_USER: dict[str, "UserDataset"] = {}


@dataclass(frozen=True)
class UserDataset:
    name: str
    factory: Callable[[str, ClipSpec, int], Dataset]
    num_classes: int | None = None


def register_dataset(name: str, *, num_classes: int | None = None) -> Callable:
    """Decorator registering ``factory(split, clip, seed) -> Dataset`` under ``name``; a taken name is an error."""
    from .spec import DATASETS

    def deco(factory: Callable[[str, ClipSpec, int], Dataset]) -> Callable:
        if name in DATASETS or name in _USER:
            raise ValueError(f"dataset {name!r} is already registered")
        _USER[name] = UserDataset(name, factory, num_classes)
        return factory

    return deco


def user_datasets() -> list[str]:
    return list(_USER)


class UserClips:
    """A user ``Dataset`` behind the loader's batch interface (``batch_float(keys)``), shape-checked."""

    def __init__(self, name: str, clip: ClipSpec, *, split: str, seed: int) -> None:
        entry = _USER[name]
        self.name, self.clip, self.split = name, clip, split
        self.ds = entry.factory(split, clip, seed)
        k = entry.num_classes if entry.num_classes is not None else getattr(self.ds, "num_classes", None)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"dataset {name!r}: give num_classes to register_dataset or as a dataset attribute")
        self.num_classes = k
        self.skipped: list[str] = []
        self.video_index = list(range(len(self.ds)))  # one clip per item

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        clip, label = self.ds[index]
        expected = tuple(self.clip.shape)
        if not isinstance(clip, torch.Tensor) or tuple(clip.shape) != expected or not clip.is_floating_point():
            got = (f"{tuple(clip.shape)} {clip.dtype}" if isinstance(clip, torch.Tensor) else type(clip).__name__)
            raise ValueError(f"dataset {self.name!r} ({self.split}) item {index}: expected a float clip of shape "
                             f"[T, C, H, W] = {expected}, got {got}")
        label = int(label)
        if not 0 <= label < self.num_classes:
            raise ValueError(f"dataset {self.name!r} ({self.split}) item {index}: label {label} outside "
                             f"[0, {self.num_classes})")
        return clip.float(), label

    def batch_float(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self[i] for i, _ in keys]
        return torch.stack([c for c, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)
