"""Clip sampling: dense (random / K evenly spaced) and TSN segments."""
from __future__ import annotations

import numpy as np
import pytest

from bench.data.sampling import clip_indices, dense_even, segments_even, segments_random


def test_dense_even_spreads_k_clips_from_start_to_end():
    assert [dense_even(20, 4, 2, k, 3)[0] for k in range(3)] == [0, 7, 13]
    assert dense_even(20, 4, 2, 2, 3) == [13, 15, 17, 19]
    assert dense_even(20, 4, 1, 0, 1) == [8, 9, 10, 11]


def test_random_dense_clips_stay_inside_and_keep_the_stride():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = clip_indices(30, 8, sampling="dense", stride=3, train=True, rng=rng)
        assert idx[0] >= 0 and idx[-1] < 30 and np.all(np.diff(idx) == 3)


def test_segments_take_one_frame_per_segment():
    rng = np.random.default_rng(0)
    idx = segments_random(40, 8, rng)
    assert all(5 * i <= j < 5 * (i + 1) for i, j in enumerate(idx))
    assert segments_even(40, 8, 0, 1) == [2, 7, 12, 17, 22, 27, 32, 37]


def test_too_short_video_is_a_clear_error():
    with pytest.raises(ValueError, match="needs 15"):
        clip_indices(10, 8, sampling="dense", stride=2, train=False)
