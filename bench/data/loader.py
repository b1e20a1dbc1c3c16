"""One DataLoader factory for every model: (DatasetSpec, ClipSpec, split, seed) -> batches.

    sampler (seed, epoch) --[(index, epoch), ...]--> dataset.batch_uint8 --> clips [B, T, C, H, W], labels [B]

The sampler hands out whole batches of ``(index, epoch)`` keys and every random choice (clip start,
crop, flip) is drawn from ``(seed, index, epoch)``, so the same seed gives the same order and the same
augmentation for every model, whatever the number of workers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fusion_models.clip import ClipSpec

from .user import UserClips
from .spec import SPLITS, DatasetSpec
from .synthetic import SyntheticClips
from .video import VideoClips

ClipDataset = SyntheticClips | VideoClips


def build_dataset(spec: DatasetSpec, clip: ClipSpec | None = None, split: str = "train", seed: int = 0) -> ClipDataset:
    """The ``split`` of ``spec``: ``ds[i] -> (clip float32 [T, C, H, W] in [0, 1], label int)``.

    Synthetic splits are rendered once when ``spec.cache`` (faster than per item: docs/data.md)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    clip = clip or ClipSpec()
    if spec.is_user:
        return UserClips(spec.name, clip, split=split, seed=seed)  # type: ignore[return-value]
    if spec.is_synthetic:
        ds = SyntheticClips(spec, clip, split=split, seed=seed)
        return ds.materialise() if spec.cache else ds
    return VideoClips(spec, clip, split=split, seed=seed)


def _order_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0])


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, epoch)`` keys; each full pass is the next epoch, shuffled from (seed, epoch)."""

    def __init__(self, n: int, *, batch_size: int, shuffle: bool, drop_last: bool, seed: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.drop_last, self.seed = n, batch_size, shuffle, drop_last, seed
        self.epoch = 0

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_order_seed(self.seed, epoch))).tolist()
        else:
            order = list(range(self.n))
        for b in range(0, self.n, self.batch_size):
            chunk = order[b: b + self.batch_size]
            if len(chunk) < self.batch_size and self.drop_last:
                return
            yield [(i, epoch) for i in chunk]

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class BatchView(Dataset):
    """``view[[(index, epoch), ...]] -> (clips [B, T, C, H, W], labels int64 [B])``; other attributes
    (``num_classes``, ``video_index``, ``skipped``, ...) are the wrapped dataset's."""

    def __init__(self, ds: ClipDataset, dtype: torch.dtype, video_index: bool = False) -> None:
        if dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"dtype must be torch.uint8 or torch.float32, got {dtype}")
        self.ds, self.dtype, self.with_video = ds, dtype, video_index

    def __getitem__(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
        if hasattr(self.ds, "batch_float"):  # a user dataset (bench/data/user.py): float clips as given
            clips, labels = self.ds.batch_float(keys)
            if self.dtype == torch.uint8:
                raise ValueError(f"dataset {self.ds.name!r} yields float clips; uint8 batches are not available")
        elif hasattr(self.ds, "batch_kept"):  # real video: a clip that fails to decode is left out, and named
            clips, labels, keys = self.ds.batch_kept(keys)
        else:
            clips, labels = self.ds.batch_uint8(keys)
        if not hasattr(self.ds, "batch_float"):
            clips = clips if self.dtype == torch.uint8 else clips.float().div_(255)
        if self.with_video:
            return clips, labels, torch.tensor([self.ds.video_index[i] for i, _ in keys], dtype=torch.int64)
        return clips, labels

    def __len__(self) -> int:
        return len(self.ds)

    def __getattr__(self, name: str):
        if name in ("ds", "dtype", "with_video"):  # not yet set (unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.ds, name)


def _worker_init(_: int) -> None:
    # Parallelism comes from workers; intra-op threads inside each would oversubscribe 2 cores.
    torch.set_num_threads(1)


def make_loader(
    spec: DatasetSpec,
    clip: ClipSpec | None = None,
    split: str = "train",
    seed: int = 0,
    batch_size: int = 32,
    shuffle: bool | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
    *,
    dtype: torch.dtype = torch.float32,
    pin_memory: bool | None = None,
    dataset: ClipDataset | None = None,
    video_index: bool = False,
) -> DataLoader:
    """Batches ``(clips [B, T, C, H, W] float32 in [0, 1] (or uint8), labels int64 [B])`` of ``split``.

    ``shuffle=None`` shuffles only the train split; ``dataset`` reuses an already built split;
    ``pin_memory=None`` pins when CUDA is available. ``loader.dataset`` exposes the dataset's attributes.
    ``video_index=True`` adds a third element, the video of each clip (int64 ``[B]``), so an evaluator can
    average the logits of a video's ``clips_per_video`` clips (real data; one clip per video on synthetic)."""
    ds = dataset if dataset is not None else build_dataset(spec, clip, split, seed)
    sampler = EpochBatchSampler(len(ds), batch_size=batch_size, shuffle=split == "train" if shuffle is None else shuffle,
                                drop_last=drop_last, seed=seed)
    return DataLoader(
        BatchView(ds, dtype, video_index), batch_size=None, sampler=sampler, num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        worker_init_fn=_worker_init if num_workers > 0 else None,
    )
