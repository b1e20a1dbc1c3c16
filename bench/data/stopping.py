"""The stopping split: a fixed share of the *training* items held out to decide when training ends.

    train split (N items) --seeded permutation--> stop: first round(f N)   fit: the rest

The reported split (val/test) is never touched, so the accuracy a record reports never chose its own
stopping point. Real datasets have one training item per video, so the carve is by video: no video
lends clips to both sides. The stopping side always reads epoch 0 of its items (no per-epoch
augmentation), so every evaluation of it sees the same clips.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

MIN_STOP_ITEMS = 8   # fewer stopping clips than this cannot tell a plateau from noise
MIN_FIT_ITEMS = 8


class SplitView:
    """Items ``indices`` of ``ds`` as a dataset of their own (``batch_uint8``, ``label``, ``video_index``);
    other attributes are the wrapped dataset's. ``fixed_epoch``: read every item at that epoch."""

    def __init__(self, ds: Any, indices: Sequence[int], *, name: str, fixed_epoch: int | None = None) -> None:
        self.ds, self.indices, self.name, self.fixed_epoch = ds, [int(i) for i in indices], name, fixed_epoch
        self.video_index = list(range(len(self.indices)))

    def __len__(self) -> int:
        return len(self.indices)

    def label(self, index: int) -> int:
        """Label of item ``index`` of the view."""
        return self.ds.label(self.indices[index])

    def batch_uint8(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips uint8 [B, T, C, H, W], labels int64 [B])`` for ``(index, epoch)`` keys of the view."""
        return self.ds.batch_uint8([(self.indices[i], e if self.fixed_epoch is None else self.fixed_epoch)
                                    for i, e in keys])

    def describe(self) -> dict:
        """The wrapped split's facts, with this side's name and size."""
        d = dict(self.ds.describe()) if hasattr(self.ds, "describe") else {}
        d.update(part=self.name, clips=len(self.indices))
        return d

    def __getattr__(self, name: str):
        if name in ("ds", "indices", "name", "fixed_epoch", "video_index"):
            raise AttributeError(name)
        return getattr(self.ds, name)


def stopping_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(fit, stop)`` item indices of a training split of ``n`` items; disjoint, together ``range(n)``.

    Raises ``ValueError`` (naming ``--stop-fraction``) when either side would be too small."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--stop-fraction must lie strictly between 0 and 1, got {fraction}")
    n_stop = int(round(fraction * n))
    if n_stop < MIN_STOP_ITEMS or n - n_stop < MIN_FIT_ITEMS:
        raise ValueError(
            f"--stop-fraction {fraction} of {n} training items leaves {n_stop} stopping and {n - n_stop} training "
            f"items; both need at least {MIN_STOP_ITEMS} (use more training data (--train-size) or another fraction)")
    order = np.random.default_rng([seed, 0x5709]).permutation(n)  # fixed per seed: same carve for every model
    stop = sorted(int(i) for i in order[:n_stop])
    fit = sorted(int(i) for i in order[n_stop:])
    return fit, stop


def carve_stopping_split(ds: Any, fraction: float, seed: int) -> tuple[SplitView, SplitView]:
    """``(fit, stop)`` views of the training split ``ds`` (see module docstring)."""
    fit, stop = stopping_indices(len(ds), fraction, seed)
    return SplitView(ds, fit, name="fit"), SplitView(ds, stop, name="stop", fixed_epoch=0)
