"""The synthetic tasks: determinism, and the symmetry facts the ceilings rest on, tested directly."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import CEILINGS, DatasetSpec, build_dataset, ceiling_for
from bench.data.synthetic import (
    DIRECTIONS, ORDERS, SyntheticClips, class_table, order_permutation, render, sample_params, time_reversed,
)
from fusion_models.clip import ClipSpec

CLIP = ClipSpec()


def _ds(**knobs) -> SyntheticClips:
    return SyntheticClips(DatasetSpec(**{"train_size": 256, "cache": False, **knobs}), CLIP, split="train", seed=3)


def test_same_seed_and_index_give_the_same_clip_and_other_seeds_do_not():
    a, b = _ds(), _ds()
    assert torch.equal(a.clip_uint8(5), b.clip_uint8(5))
    other = SyntheticClips(DatasetSpec(train_size=256, cache=False), CLIP, split="train", seed=4)
    assert not torch.equal(a.clip_uint8(5), other.clip_uint8(5))
    val = SyntheticClips(DatasetSpec(cache=False), CLIP, split="val", seed=3)
    assert not torch.equal(a.clip_uint8(5), val.clip_uint8(5))


def test_item_is_float_in_unit_range_with_int_label_and_classes_are_balanced():
    ds = _ds()
    x, y = ds[17]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert isinstance(y, int) and y == ds.params(17).label
    assert ds.num_classes == 16 and ds.class_attributes[y] == {"shape": ds.class_names[y].split("-")[0],
                                                              "direction": ds.class_names[y].split("-")[1]}
    assert set(Counter(ds.label(i) for i in range(len(ds))).values()) == {16}
    assert ds.skipped == [] and ds.clips_per_video == 1


def test_every_frame_position_is_uniform_in_every_class_by_construction():
    # Start uniform on the torus + a fixed velocity: frame t's position is a bijection of the start.
    spec = DatasetSpec()
    h, w = CLIP.height, CLIP.width
    for t in range(CLIP.frames):
        for d in range(4):
            for speed in range(spec.speed[0], spec.speed[1] + 1):
                p = sample_params(spec, CLIP, seed=0, split="train", index=d)
                p = replace(p, speed=speed)
                vy, vx = p.velocity
                seen = {((y + vy * t) % h, (x + vx * t) % w) for y in range(h) for x in range(w)}
                assert len(seen) == h * w


def test_start_position_and_nuisances_are_drawn_independently_of_the_class():
    spec = DatasetSpec()
    params = [sample_params(spec, CLIP, seed=0, split="train", index=i) for i in range(4 * 16 * 40)]
    # Chi-square of start-x histogram (8 bins) per direction class against uniform: loose bound, no flakiness.
    for d in range(4):
        xs = np.array([p.start[1] for p in params if p.direction == d])
        counts = np.bincount(xs * 8 // CLIP.width, minlength=8)
        expected = len(xs) / 8
        assert ((counts - expected) ** 2 / expected).sum() < 40
    speeds = {d: Counter(p.speed for p in params if p.direction == d) for d in range(4)}
    assert all(set(c) == {1, 2, 3} for c in speeds.values())


@pytest.mark.parametrize("knobs", [{}, {"camera": 2, "distractors": 2}, {"num_shapes": 6, "texture": 0.5}])
def test_reversing_a_clip_gives_exactly_the_opposite_class_clip(knobs):
    spec = DatasetSpec(**knobs)
    for index in range(0, 64, 5):
        p = sample_params(spec, CLIP, seed=1, split="train", index=index)
        r = time_reversed(p, CLIP.frames, CLIP)
        assert torch.equal(render(r, spec, CLIP), render(p, spec, CLIP).flip(0))
        opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}[DIRECTIONS[p.direction]]
        names, attrs = class_table(spec)
        assert attrs[r.label] == {"shape": attrs[p.label]["shape"], "direction": opposite}
        # r is in the generator's support: same speed range, start on the canvas, camera pan within bounds.
        assert spec.speed[0] <= r.speed <= spec.speed[1]
        assert 0 <= r.start[0] < CLIP.height and 0 <= r.start[1] < CLIP.width
        assert all(abs(v) <= spec.camera for v in r.camera_velocity)


def test_noise_and_camera_change_clips_deterministically_and_only_their_own_aspect():
    base, noisy, panned = _ds(), _ds(noise=0.1), _ds(camera=2)
    assert not torch.equal(base.clip_uint8(3), noisy.clip_uint8(3))
    assert torch.equal(noisy.clip_uint8(3), _ds(noise=0.1).clip_uint8(3))
    diff = (noisy.clip_uint8(3).float() - base.clip_uint8(3).float()) / 255
    assert 0.05 < diff.std() < 0.15
    p0, p1 = base.params(3), panned.params(3)
    assert replace(p1, camera_velocity=p0.camera_velocity) == p0
    moving = [i for i in range(40) if panned.params(i).camera_velocity != (0, 0)]
    assert moving and not torch.equal(base.clip_uint8(moving[0]), panned.clip_uint8(moving[0]))
    assert torch.equal(panned.clip_uint8(moving[0]), _ds(camera=2).clip_uint8(moving[0]))


def test_label_changing_augmentations_are_refused_on_synthetic_tasks():
    for name in ("synthetic", "synthetic-order"):
        for bad in ({"hflip": True}, {"time_reverse": True}, {"frame_stride": 2}):
            with pytest.raises(ValueError, match="change labels"):
                DatasetSpec(name=name, **bad)


def _steps(perm):
    return Counter(b - a for a, b in zip(perm, perm[1:]))


@pytest.mark.parametrize("frames", range(4, 13))
def test_order_permutations_are_distinct_and_only_the_out_and_back_pair_shares_local_motion(frames):
    perms = {o: order_permutation(o, frames) for o in ORDERS}
    assert all(sorted(p) == list(range(frames)) for p in perms.values())
    assert len(set(perms.values())) == 6
    assert _steps(perms["out_and_back"]) == _steps(perms["back_and_out"])
    others = [_steps(perms[o]) for o in ORDERS if o != "back_and_out"]
    assert all(a != b for i, a in enumerate(others) for b in others[i + 1:])
    assert perms["back_and_out"] != perms["out_and_back"][::-1]


def test_every_order_class_shows_the_same_multiset_of_frames():
    spec = DatasetSpec(name="synthetic-order", camera=1, distractors=1)
    ds = SyntheticClips(spec, CLIP, split="train", seed=0)
    assert ds.num_classes == 6 and ds.class_attributes[2] == {"order": "out_and_back"}
    p = ds.params(7)
    clips = [render(replace(p, order=o), spec, CLIP) for o in range(6)]
    key = lambda c: sorted(f.numpy().tobytes() for f in c)  # noqa: E731
    assert all(key(c) == key(clips[0]) for c in clips)
    assert len({c.numpy().tobytes() for c in clips}) == 6
    with pytest.raises(ValueError, match="frames >= 4"):
        SyntheticClips(spec, CLIP.with_(frames=3))


def test_materialised_cache_matches_on_the_fly_and_round_trips_through_disk(tmp_path):
    spec = DatasetSpec(train_size=40, val_size=24, cache_dir=str(tmp_path))
    cached = build_dataset(spec, CLIP, "val", seed=2)
    fly = SyntheticClips(replace(spec, cache=False), CLIP, split="val", seed=2)
    assert all(torch.equal(cached.clip_uint8(i), fly.clip_uint8(i)) for i in range(24))
    assert cached.cache_path is not None and cached.cache_path.is_file()
    from bench.data import synthetic
    synthetic._MEMORY.items.clear()
    again = build_dataset(spec, CLIP, "val", seed=2)
    assert torch.equal(again._clips, cached._clips) and again.describe()["cache"] == str(cached.cache_path)
    cached.cache_path.write_bytes(b"garbage")   # a corrupt cache file is regenerated, not trusted
    synthetic._MEMORY.items.clear()
    assert torch.equal(build_dataset(spec, CLIP, "val", seed=2)._clips, cached._clips)


def test_ceilings_are_data_per_dataset_and_family():
    assert ceiling_for("synthetic", "single_frame") == {"top1": 0.25, "shape": 1.0, "direction": 0.25}
    assert ceiling_for("synthetic", "order_invariant")["top1"] == 0.5
    assert ceiling_for("synthetic", "order_aware")["top1"] == 1.0
    assert ceiling_for("synthetic-order", "local_motion")["top1"] == pytest.approx(5 / 6)
    assert ceiling_for("synthetic-order", "order_invariant")["top1"] == pytest.approx(1 / 6)
    assert ceiling_for("ucf101", "order_aware") == {}
    assert set(CEILINGS) == {"synthetic", "synthetic-order"}
    with pytest.raises(ValueError, match="family"):
        ceiling_for("synthetic", "magic")
    with pytest.raises(ValueError, match="dataset"):
        ceiling_for("kinetics", "order_aware")
