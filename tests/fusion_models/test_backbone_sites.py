"""Where TSM and slow fusion act is the backbone's to say (``Backbone.shift_sites`` / ``fusion_stages``): the
models ask it, a subclass may declare its own, a backbone that declares none is one clear error at build time;
and every registered model keeps the parameters, state-dict keys and MACs it had before the sites moved."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.measure import count_flops
from fusion_models import ClipSpec, build_backbone, build_model, list_models
from fusion_models.backbone import Backbone, small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")

# (params, sha256 of the state dict's "key:shape" lines, GMACs at batch 1) of each model, measured at main
# 0603df6 before the sites moved onto the backbone (T8 32x32, 10 classes; torchvision backbones: the two
# models with sites and late fusion, whose MACs are not pinned).
PINS = json.loads((Path(__file__).parent / "structure_pins.json").read_text())
CLIP = ClipSpec(frames=8, height=32, width=32)


def _fingerprint(model: nn.Module) -> tuple[int, str]:
    keys = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return sum(p.numel() for p in model.parameters()), hashlib.sha256(keys.encode()).hexdigest()[:16]


def test_pins_cover_every_registered_model():
    assert sorted(k.split("/")[1] for k in PINS if k.startswith("small_cnn/")) == sorted(list_models())


@pytest.mark.parametrize("key", sorted(PINS))
def test_params_state_dict_keys_and_macs_are_unchanged(key):
    backbone, name = key.split("/")
    params, keys, gmacs = PINS[key]
    torch.manual_seed(0)
    model = build_model(name, clip=CLIP, num_classes=10, backbone=backbone)
    assert _fingerprint(model) == (params, keys)
    if gmacs is not None:
        assert count_flops(model, CLIP.dummy(1)).as_dict()["gmacs"] == gmacs


class _Declared(Backbone):
    """small_cnn declaring its own sites: one shift (before block 3's conv), and stages 1, 2, 3."""

    def __init__(self, shift=(("2.0", 32),), stages=((3, ["1.0"]), (6, ["2.0"]), (9, ["3.0"]))):
        super().__init__(small_cnn(16), 64, name="declared", pretrained=False)
        self._shift, self._stages = list(shift), list(stages)

    def shift_sites(self):
        return self._shift

    def fusion_stages(self, count):
        return self._stages[-count:]


def test_tsm_and_slow_fusion_ask_the_backbone():
    clip = ClipSpec(frames=4, height=32, width=32)
    tsm = build_model("tsm", clip=clip, num_classes=5, backbone=_Declared)
    shifted = [n for n, m in tsm.backbone.features.named_modules() if type(m).__name__ == "TemporalShift"]
    assert shifted == ["2.0"] and len(tsm.shifts) == 1 and tsm.shifts[0].fold == 32 // 8
    slow = build_model("slow_fusion", clip=clip, num_classes=5, backbone=lambda: _Declared(stages=[
        (0, ["0.0"]), (3, ["1.0"]), (6, ["2.0"])]))  # the first three units instead of the last three
    assert slow.fuse_at == (0, 3, 6)
    assert slow.backbone.features[0][0].in_channels == 2 * 3  # the declared entry conv takes two time steps
    assert slow(clip.dummy(2)).shape == (2, 5)


def test_the_built_in_backbones_answer_from_their_structure():
    enc = build_backbone("small_cnn")
    assert [p for p, _ in enc.shift_sites()] == ["1.0", "2.0", "3.0"]
    assert [i for i, _ in enc.fusion_stages(3)] == [3, 6, 9]
    assert [p for p, _ in enc.units()][:4] == ["0.0", "0.1", "0.2", "1.0"]


def test_a_backbone_that_declares_no_sites_is_one_clear_error_at_build_time():
    def one_conv():  # conv -> ReLU -> head: no residual block, no conv after the first, one conv unit
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    clip = ClipSpec(frames=4, height=32, width=32)
    with pytest.raises(ValueError, match=r"tsm: backbone .*one_conv declares no temporal-shift site") as e:
        build_model("tsm", clip=clip, num_classes=5, backbone=one_conv)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"slow_fusion: backbone declared declares 1 fusing stage\(s\)"):
        build_model("slow_fusion", clip=clip, num_classes=5, backbone=lambda: _Declared(stages=[(3, ["1.0"])]))
    with pytest.raises(ValueError, match="tsm: backbone declared declares no temporal-shift site"):
        build_model("tsm", clip=clip, num_classes=5, backbone=lambda: _Declared(shift=()))
