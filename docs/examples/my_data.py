"""A user dataset in one file: bright blobs drifting left (label 0) or right (label 1).

    bench --plugin docs/examples/my_data.py run --dataset drift --models pool_avg,tsm --profile smoke
"""
import torch
from torch.utils.data import Dataset

from bench.data import register_dataset


class Drift(Dataset):
    def __init__(self, n: int, frames: int, height: int, width: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.starts = torch.randint(0, width // 2, (n,), generator=g)
        self.shape = (frames, 3, height, width)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        t, c, h, w = self.shape
        clip = torch.zeros(self.shape)
        for f in range(t):
            x = int(self.starts[i]) + (f if self.labels[i] == 1 else -f) % (w // 2)
            clip[f, :, h // 3: 2 * h // 3, x % w: x % w + 3] = 1.0
        return clip, int(self.labels[i])


@register_dataset("drift", num_classes=2)
def drift(split, clip, seed):
    """``split`` is "train" / "val" / "test"; the clips must have the run's shape ``clip.shape``."""
    n = {"train": 64, "val": 32, "test": 32}[split]
    return Drift(n, clip.frames, clip.height, clip.width, seed=seed + {"train": 0, "val": 1, "test": 2}[split])
