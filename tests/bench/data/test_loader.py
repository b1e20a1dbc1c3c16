"""One loader for every model: same seed, same batches; workers do not change the data."""
from __future__ import annotations

import pytest
import torch

from bench.data import DatasetSpec, build_dataset, make_loader
from fusion_models.clip import ClipSpec

CLIP = ClipSpec()
SPEC = DatasetSpec(train_size=100, val_size=40, cache=False)


def _batches(loader, epochs=2):
    return [(x.clone(), y.clone()) for _ in range(epochs) for x, y in loader]


def test_two_models_loaders_with_the_same_seed_give_identical_batches_every_epoch():
    a = _batches(make_loader(SPEC, CLIP, "train", seed=7, batch_size=16))
    b = _batches(make_loader(SPEC, CLIP, "train", seed=7, batch_size=16))
    assert len(a) == 2 * 7
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(a[0][1], a[7][1])      # epoch 2 is reshuffled
    c = _batches(make_loader(SPEC, CLIP, "train", seed=8, batch_size=16), epochs=1)
    assert not torch.equal(a[0][1], c[0][1])


def test_batches_have_the_contract_shapes_and_dtypes():
    x, y = next(iter(make_loader(SPEC, CLIP, "val", batch_size=8)))
    assert x.shape == (8, 8, 3, 32, 32) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert y.dtype == torch.int64 and y.tolist() == [i % 16 for i in range(8)]  # val is not shuffled
    u, _ = next(iter(make_loader(SPEC, CLIP, "val", batch_size=8, dtype=torch.uint8)))
    assert u.dtype == torch.uint8 and torch.equal(u.float() / 255, x)
    loader = make_loader(SPEC, CLIP, "train", batch_size=32, drop_last=True)
    assert len(loader) == 3 and all(len(y) == 32 for _, y in loader)
    assert loader.dataset.num_classes == 16 and len(loader.dataset) == 100


def test_cached_and_on_the_fly_loaders_agree(tmp_path):
    fly = _batches(make_loader(SPEC, CLIP, "train", seed=1, batch_size=25), epochs=1)
    cached_spec = DatasetSpec(train_size=100, val_size=40, cache=True, cache_dir=str(tmp_path))
    cached = _batches(make_loader(cached_spec, CLIP, "train", seed=1, batch_size=25), epochs=1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(fly, cached))


@pytest.mark.slow
def test_worker_count_does_not_change_the_batches():
    one = _batches(make_loader(SPEC, CLIP, "train", seed=3, batch_size=20, num_workers=0), epochs=1)
    two = _batches(make_loader(SPEC, CLIP, "train", seed=3, batch_size=20, num_workers=2), epochs=1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two))


def test_build_dataset_rejects_unknown_split_and_dataset():
    with pytest.raises(ValueError, match="split"):
        build_dataset(SPEC, CLIP, "dev")
    with pytest.raises(ValueError, match="unknown dataset"):
        DatasetSpec(name="kinetics")
    with pytest.raises(ValueError, match="root"):
        DatasetSpec(name="ucf101")
    with pytest.raises(ValueError, match="speed"):
        DatasetSpec(speed=(0, 2))
