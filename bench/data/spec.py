"""DatasetSpec: which clips a run trains and evaluates on, as one frozen, hashable value.

The same spec + ClipSpec + split + seed gives the same clips in the same order for every model.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

DATASETS = ("synthetic", "synthetic-order", "folder", "ucf101", "hmdb51")
SYNTHETIC = ("synthetic", "synthetic-order")
DECODERS = ("auto", "pyav", "torchcodec")
SAMPLINGS = ("dense", "segments")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset and its knobs. Synthetic knobs are ignored for real video and vice versa."""

    name: str = "synthetic"            # one of DATASETS
    root: str | None = None            # real data: folder, CSV manifest, or UCF-101/HMDB-51 root
    split_id: int = 1                  # official split 1..3 (UCF-101 / HMDB-51)
    decoder: str = "auto"              # auto: torchcodec when it loads, else PyAV

    # --- synthetic motion set -------------------------------------------------------------------
    num_shapes: int = 4                # S shapes -> K = 4 * S classes (synthetic)
    speed: tuple[int, int] = (1, 3)    # px/frame, inclusive; >= 1 so direction is visible in 2 frames
    sprite_size: float = 0.45          # side as a fraction of min(H, W): 14 px at 32x32 (11 px: shape only 83 %)
    texture: float = 0.25              # background texture amplitude around grey 0.5 (0 = flat)
    noise: float = 0.0                 # additive Gaussian noise sigma, per pixel and frame
    camera: int = 0                    # max global background pan in px/frame, independent of class (0 = off)
    distractors: int = 0               # small dots moving in random directions, not part of the label
    # 2400/800 = the "quick" profile: order-aware models learn direction in ~4 epochs, and 12 models
    # still train in minutes on 2 cores (see docs/data.md for the measurements).
    train_size: int = 2400
    val_size: int = 800
    test_size: int | None = None       # None: same as val_size
    cache: bool = True                 # materialise the synthetic split once (memory + disk) instead of per item
    cache_dir: str | None = None       # None: $FUSIONBENCH_CACHE or ~/.cache/fusionbench

    # --- clip sampling and augmentation (real video) ---------------------------------------------
    sampling: str = "dense"            # dense: T frames `frame_stride` apart; segments: TSN, one per segment
    frame_stride: int = 1              # frames between sampled frames (dense)
    clips_per_video: int = 3           # K evenly spaced clips per video on val/test; logits averaged per video
    resize_ratio: float = 1.15         # short side resized to ratio * max(H, W) before the crop
    hflip: bool = False                # random horizontal flip (train; refused on synthetic: swaps left/right)
    time_reverse: bool = False         # random temporal reversal (train; refused on synthetic: swaps classes)

    def __post_init__(self) -> None:
        from .user import user_datasets  # registered with bench.data.register_dataset

        if self.name not in DATASETS and self.name not in user_datasets():
            raise ValueError(f"unknown dataset {self.name!r}; choose from {', '.join([*DATASETS, *user_datasets()])}")
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; choose from {', '.join(DECODERS)}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {self.sampling!r}; choose from {', '.join(SAMPLINGS)}")
        object.__setattr__(self, "speed", tuple(int(s) for s in self.speed))
        lo, hi = self.speed if len(self.speed) == 2 else (0, -1)
        if not 1 <= lo <= hi:
            raise ValueError(f"speed must be (min, max) px/frame with 1 <= min <= max, got {self.speed!r}")
        checks = {
            "num_shapes": 1 <= self.num_shapes <= 6,
            "sprite_size": 0.05 <= self.sprite_size <= 0.9,
            "texture": 0.0 <= self.texture <= 0.5,
            "noise": self.noise >= 0,
            "camera": self.camera >= 0,
            "distractors": self.distractors >= 0,
            "train_size": self.train_size >= 1,
            "val_size": self.val_size >= 1,
            "test_size": self.test_size is None or self.test_size >= 1,
            "split_id": self.split_id >= 1,
            "frame_stride": self.frame_stride >= 1,
            "clips_per_video": self.clips_per_video >= 1,
            "resize_ratio": self.resize_ratio >= 1.0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"DatasetSpec: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        if self.is_synthetic:
            # These augmentations change the label on the synthetic tasks: a flip swaps left/right, a
            # reversal swaps left/right (and forward/backward), a stride breaks the order permutations.
            refused = [n for n, on in (("hflip", self.hflip), ("time_reverse", self.time_reverse),
                                       ("frame_stride", self.frame_stride != 1)) if on]
            if refused:
                raise ValueError(
                    f"{self.name}: {', '.join(refused)} would change labels on a synthetic task "
                    "(flip swaps left/right, reversal swaps directions/orders, stride breaks permutations); "
                    "turn them off"
                )
        elif self.root is None and not self.is_user:
            raise ValueError(f"dataset {self.name!r} needs root= (a folder, CSV manifest or dataset root)")

    @property
    def is_synthetic(self) -> bool:
        """True for the built-in generated tasks."""
        return self.name in SYNTHETIC

    @property
    def is_user(self) -> bool:
        """True for a dataset registered with ``bench.data.register_dataset``."""
        from .user import user_datasets

        return self.name in user_datasets()

    def size(self, split: str) -> int:
        """Number of generated clips in ``split`` (synthetic only)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return {"train": self.train_size, "val": self.val_size,
                "test": self.test_size if self.test_size is not None else self.val_size}[split]

    def to_dict(self) -> dict:
        """A JSON-able dict of every field (for run records)."""
        d = asdict(self)
        d["speed"] = list(self.speed)
        return d

    def config_hash(self, *extra: object) -> str:
        """A short stable hash of the fields plus ``extra`` (cache keys)."""
        payload = json.dumps([self.to_dict(), [str(e) for e in extra]], sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]
