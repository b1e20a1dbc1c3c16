"""Loader throughput in clips/s: synthetic on the fly vs materialised, and real mp4 decode per decoder.

Run: ``pytest benchmarks/test_loader_benchmark.py --benchmark-only``; clips/s = clips per round / median.
Numbers measured on the 2-core dev machine are in docs/data.md.
"""
from __future__ import annotations

import pytest

from bench.data import DatasetSpec, build_dataset, make_loader, torchcodec_error
from bench.data import synthetic
from bench.data.export import export_ucf101
from fusion_models.clip import ClipSpec

CLIP = ClipSpec()                   # T=8, 32x32: the default training clip
N = 960                             # clips per round


def _epoch(loader) -> int:
    return sum(len(y) for _, y in loader)


def test_synthetic_on_the_fly(benchmark):
    loader = make_loader(DatasetSpec(train_size=N, cache=False), CLIP, "train", batch_size=32)
    n = benchmark.pedantic(_epoch, args=(loader,), rounds=3, warmup_rounds=1)
    benchmark.extra_info["clips_per_round"] = n


def test_synthetic_materialised_epoch(benchmark, tmp_path):
    loader = make_loader(DatasetSpec(train_size=N, cache_dir=str(tmp_path)), CLIP, "train", batch_size=32)
    n = benchmark.pedantic(_epoch, args=(loader,), rounds=10, warmup_rounds=1)
    benchmark.extra_info["clips_per_round"] = n


def test_synthetic_materialise_once(benchmark, tmp_path):
    # The one-off cost of rendering a split (memory cache cleared each round, disk cache off).
    spec = DatasetSpec(train_size=N, cache_dir=str(tmp_path))

    def render_split():
        synthetic._MEMORY.items.clear()
        return len(synthetic.SyntheticClips(spec, CLIP, split="train").materialise(disk=False))

    benchmark.extra_info["clips_per_round"] = benchmark.pedantic(render_split, rounds=3)


def test_synthetic_load_from_disk_cache(benchmark, tmp_path):
    spec = DatasetSpec(train_size=N, cache_dir=str(tmp_path))
    build_dataset(spec, CLIP, "train")

    def load():
        synthetic._MEMORY.items.clear()
        return len(build_dataset(spec, CLIP, "train"))

    benchmark.extra_info["clips_per_round"] = benchmark.pedantic(load, rounds=5)


@pytest.fixture(scope="module")
def mp4_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    export_ucf101(DatasetSpec(), ClipSpec(frames=8, height=128, width=160), root, videos_per_class=4, fmt="mp4",
                  video_frames=48)
    return root


@pytest.mark.parametrize("decoder", ["pyav", "torchcodec"])
def test_real_mp4_decode(benchmark, mp4_root, decoder):
    if decoder == "torchcodec" and torchcodec_error():
        pytest.skip(f"torchcodec unavailable: {torchcodec_error()}")
    spec = DatasetSpec(name="ucf101", root=str(mp4_root), decoder=decoder)
    loader = make_loader(spec, CLIP, "train", batch_size=16)    # random clip per video, resize + crop
    n = benchmark.pedantic(_epoch, args=(loader,), rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(clips_per_round=n, decoder=loader.dataset.decoder, video="160x128, 48 frames, h264")
