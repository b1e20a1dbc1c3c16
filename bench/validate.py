"""Checks a run's values once, where they enter (``plan.build_run_spec``), so nothing silently wrong runs.

    RunOptions --check_options--> build --RunSpec--> check_run_spec: finite numbers, seeds in range,
                                                      clip batches that fit in memory (estimated before allocating)

Each check raises ``ValueError`` with one line naming the flag or field and the accepted range.
"""
from __future__ import annotations

import math
import os
from typing import Any

SEED_MAX = 2**32 - 1  # numpy's and torch's seeding both accept this range; larger seeds made every record an error


def check_options(opts: Any) -> None:
    """User options that would otherwise be silently ignored or widened (``bench.plan.RunOptions``)."""
    if not str(opts.models).replace(",", " ").split():
        raise ValueError(f"--models selects no model: {opts.models!r}; give NAME,NAME, a wildcard or 'all'")
    from .data.spec import SYNTHETIC

    if opts.dataset in SYNTHETIC and opts.root is not None:
        raise ValueError(f"--root is for real videos (folder, ucf101, hmdb51); the {opts.dataset} dataset is "
                         "generated and has no root")


def check_finite(d: Any, where: str = "") -> None:
    """Every float in a nested spec dict is finite (``inf``/``nan`` for lr, noise, ... are refused)."""
    if isinstance(d, dict):
        for k, v in d.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            check_finite(v, f"{where}[{i}]")
    elif isinstance(d, float) and not math.isfinite(d):
        flag = FLAGS.get(where)
        raise ValueError(f"{flag + ' (' + where + ')' if flag else where} must be a finite number, got {d}")


FLAGS = {"train.lr": "--lr", "dataset.noise": "--noise", "train.weight_decay": "weight decay",
         "dataset.texture": "texture"}


def check_seeds(seeds: Any) -> None:
    bad = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if bad:
        raise ValueError(f"--seeds must be between 0 and {SEED_MAX}, got {bad[0]}")


def available_memory_bytes() -> int | None:
    """Memory this process could still allocate: MemAvailable (Linux), else free physical pages; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def clip_batches(spec: Any) -> list[tuple[str, int, Any, int]]:
    """``(what, clips, ClipSpec, bytes per element)`` of the largest clip tensors a run allocates."""
    out = [("training batch", spec.train.batch_size, spec.clip, 4),
           ("evaluation batch", max(spec.train.batch_size, 64), spec.clip, 4)]
    if spec.dataset.is_synthetic and spec.dataset.cache:
        out.append(("rendered training set (uint8)", spec.dataset.train_size, spec.clip, 1))
    out += [("latency batch", b, spec.clip, 4) for b in spec.measure.latency_batches]
    if spec.cost.enabled:
        out += [("deployment-clip batch", b, spec.cost.clip, 4) for b in spec.cost.latency_batches]
    return out


def check_clip_memory(spec: Any, available: int | None = None) -> None:
    """Refuse a run whose clip batches alone exceed the available memory, with the estimate (nothing allocated)."""
    available = available_memory_bytes() if available is None else available
    if not available:
        return
    for what, n, clip, elem in clip_batches(spec):
        need = n * clip.frames * clip.channels * clip.height * clip.width * elem
        if need > available:
            raise ValueError(
                f"the {what} of {n} clip(s) of {clip.frames}x{clip.channels}x{clip.height}x{clip.width} "
                f"(T x C x H x W) needs {_gib(need)}, more than the {_gib(available)} of memory available; "
                "lower --frames, --size or --batch-size")


def check_dataset(dataset: Any) -> None:
    """A real-video layout lists (split files, class list, manifest rows) before a run directory exists;
    only listing, no decoding: unreadable videos are skipped and named by the loader."""

    if dataset.is_synthetic or dataset.is_user:  # a user dataset checks each item's shape
        return
    from .data.video import list_videos

    for split in ("train", "val"):
        list_videos(dataset, split)


def check_stopping_split(spec: Any) -> None:
    """The plateau protocol carves a stopping split from the training data: refuse a training set too
    small for it (``--stop-fraction`` / ``--train-size``) before a run directory exists."""
    if spec.train.fixed_length or "accuracy" not in spec.measurements:
        return
    from .data.stopping import stopping_indices

    if spec.dataset.is_user:  # its size is known once built: the carve itself says the same then
        return

    if spec.dataset.is_synthetic:
        n = spec.dataset.train_size
    else:
        from .data.video import list_videos

        n = len(list_videos(spec.dataset, "train")[0])
    stopping_indices(n, spec.train.stop_fraction, 0)


def check_run_spec(spec: Any) -> None:
    """All checks of a built ``RunSpec`` (see the module doc)."""
    check_finite(spec.to_dict())
    check_seeds(spec.seeds)
    check_clip_memory(spec)
    check_dataset(spec.dataset)
    check_stopping_split(spec)
