"""Training flow cache: identical training with and without it, settings in the key, bounded, failure-tolerant."""
from __future__ import annotations

import warnings

import pytest
import torch

from bench.config import TrainSpec
from bench.data import DatasetSpec, make_loader
from bench.flow_cache import CachedFlow, FlowCache, flow_cache_installed
from bench.train import train_and_evaluate
from fusion_models import build_model
from fusion_models.clip import ClipSpec
from fusion_models.flow import HornSchunck

CLIP = ClipSpec(frames=4, height=16, width=16)
DS = DatasetSpec(train_size=24, val_size=8, cache=False)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(cache_mib: float, name: str = "two_stream", **spec):
    torch.manual_seed(0)
    model = build_model(name, clip=CLIP, num_classes=16)
    res = train_and_evaluate(
        model, make_loader(DS, CLIP, split="train", seed=0, batch_size=8),
        make_loader(DS, CLIP, split="val", seed=0, batch_size=8, shuffle=False),
        spec=TrainSpec(epochs=3, batch_size=8, flow_cache_mib=cache_mib, **spec), seed=0,
    )
    return res, model


def test_identical_losses_and_weights_with_and_without_the_cache():
    off, m_off = _train(0)
    on, m_on = _train(64)
    assert off.flow_cache is None and isinstance(m_on.flow, HornSchunck)  # the model got its flow stage back
    assert [h["train_loss"] for h in on.history] == [h["train_loss"] for h in off.history]
    assert on.eval.val_loss == off.eval.val_loss and on.eval.correct == off.eval.correct
    for a, b in zip(m_on.parameters(), m_off.parameters()):
        assert torch.equal(a, b)
    # 24 training clips (3 batches) over 3 epochs: computed in epoch 1, reused in epochs 2 and 3; + 8 val clips
    assert on.flow_cache["flow_cache_misses"] == 24 + 8
    assert on.flow_cache["flow_cache_hits"] == 2 * 24
    assert on.flow_cache["flow_cache_note"] is None
    # the 8 validation clips are seen once: computed, not stored (they filled the bound of every default run)
    assert on.flow_cache["flow_cache_mib"] * 2 ** 20 == 24 * 3 * 2 * 16 * 16 * 4


def test_a_frozen_cache_serves_but_stores_nothing():
    cache = FlowCache(64)
    hs = HornSchunck()
    seen, new = torch.rand(2, 4, 3, 16, 16), torch.rand(1, 4, 3, 16, 16)
    cache.flow(hs, seen)
    cache.frozen = True
    assert torch.equal(cache.flow(hs, torch.cat([seen, new])), hs(torch.cat([seen, new])))
    assert (cache.hits, cache.misses, len(cache._mem)) == (2, 3, 2)


def test_models_without_a_flow_stage_are_left_alone():
    res, _ = _train(64, name="pool_avg")
    assert res.flow_cache is None


def test_an_entry_from_other_flow_settings_is_never_used():
    cache = FlowCache(64)
    clip = torch.rand(3, 4, 3, 16, 16)
    a, b = HornSchunck(iterations=12), HornSchunck(iterations=3)
    torch.testing.assert_close(cache.flow(a, clip), a(clip), rtol=0, atol=0)
    got = cache.flow(b, clip)                       # same pixels, other settings: a miss, b's own flow
    assert torch.equal(got, b(clip)) and not torch.equal(got, a(clip))
    assert (cache.hits, cache.misses) == (0, 6)
    assert torch.equal(cache.flow(a, clip), a(clip)) and cache.hits == 3
    # the disk layer checks the settings stored in the entry too, not only the file name
    key = next(iter(cache._mem))
    cache._mem[key] = ("other settings", cache._mem[key][1] + 1)
    assert cache._get(cache._mem[key][0].replace("other", "x"), key) is None


def test_a_changed_clip_is_a_miss_and_batches_mix_hits_and_misses():
    cache, hs = FlowCache(64), HornSchunck()
    clip = torch.rand(4, 4, 3, 16, 16)
    cache.flow(hs, clip[:2])
    mixed = cache.flow(hs, clip)                   # two hits, two misses, in one batch
    assert torch.equal(mixed, hs(clip)) and (cache.hits, cache.misses) == (2, 4)
    changed = clip.clone()
    changed[0, 0, 0, 0, 0] += 1e-3
    assert torch.equal(cache.flow(hs, changed), hs(changed)) and cache.misses == 5


def test_full_memory_goes_on_without_storing_and_says_so_once():
    hs = HornSchunck()
    clip = torch.rand(4, 4, 3, 16, 16)
    one = 3 * 2 * 16 * 16 * 4 / 2**20               # MiB of one clip's flow
    cache = FlowCache(max_mib=1.5 * one)
    with pytest.warns(RuntimeWarning, match="flow cache full"):
        first = cache.flow(hs, clip)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # a second warning would raise
        second = cache.flow(hs, clip)
    assert torch.equal(first, hs(clip)) and torch.equal(second, first)
    assert len(cache._mem) == 1 and cache.hits == 1 and len(cache.notes) == 1


def test_unwritable_or_full_disk_turns_disk_off_once_and_the_run_goes_on(tmp_path, monkeypatch):
    hs = HornSchunck()
    clip = torch.rand(2, 4, 3, 16, 16)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    cache = FlowCache(64, directory=blocker / "cache")
    with pytest.warns(RuntimeWarning, match="not writable"):
        assert torch.equal(cache.flow(hs, clip), hs(clip))
    assert cache.directory is None and len(cache.notes) == 1
    assert torch.equal(cache.flow(hs, clip), hs(clip)) and cache.hits == 2  # memory still serves

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full)
    cache = FlowCache(64, directory=tmp_path / "cache")
    with pytest.warns(RuntimeWarning, match="No space left"):
        assert torch.equal(cache.flow(hs, clip), hs(clip))
    assert not list((tmp_path / "cache").glob("*")) and len(cache.notes) == 1


def test_training_goes_on_when_the_cache_directory_is_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(RuntimeWarning, match="not writable"):
        res, _ = _train(64, flow_cache_dir=str(blocker / "cache"))
    assert res.status == "ok" and "not writable" in res.flow_cache["flow_cache_note"]
    assert res.flow_cache["flow_cache_hits"] == 2 * 24


def test_disk_entries_warm_a_later_run(tmp_path):
    hs = HornSchunck()
    clip = torch.rand(2, 4, 3, 16, 16)
    FlowCache(64, directory=tmp_path).flow(hs, clip)
    assert len(list(tmp_path.glob("*.pt"))) == 2
    later = FlowCache(64, directory=tmp_path)
    assert torch.equal(later.flow(hs, clip), hs(clip)) and (later.hits, later.misses) == (2, 0)
    assert torch.equal(later.flow(HornSchunck(warps=1), clip), HornSchunck(warps=1)(clip)) and later.misses == 2


def test_installed_only_inside_the_block_and_gradients_bypass_it():
    model = build_model("two_stream", clip=CLIP, num_classes=4)
    flow = model.flow
    with pytest.raises(RuntimeError, match="boom"), flow_cache_installed(model, FlowCache(8)) as on:
        assert on and isinstance(model.flow, CachedFlow)
        raise RuntimeError("boom")
    assert model.flow is flow
    cache = FlowCache(8)
    clip = torch.rand(1, 4, 3, 16, 16, requires_grad=True)
    CachedFlow(flow, cache)(clip).sum().backward()
    assert clip.grad is not None and cache.misses == 0
