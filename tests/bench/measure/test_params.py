"""Parameter counts: totals, trainable, shared weights once, the first conv's growth under early fusion."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.measure import count_params


def test_totals_trainable_and_by_module():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 4))
    m[1].weight.requires_grad_(False)
    pr = count_params(m)
    conv, bn, fc = 8 * 3 * 9 + 8, 8 + 8, 8 * 4 + 4
    assert pr.total == conv + bn + fc
    assert pr.trainable == conv + bn + fc - 8
    assert pr.by_module == {"0": conv, "1": bn, "2": 0, "3": fc}
    assert pr.first_conv == conv and pr.first_conv_name == "0"


def test_shared_weights_counted_once():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Linear(5, 5, bias=False)
            self.dec = nn.Linear(5, 5, bias=False)
            self.dec.weight = self.enc.weight  # tied
            self.scale = nn.Parameter(torch.ones(()))  # root-level parameter

    pr = count_params(Tied())
    assert pr.total == 25 + 1
    assert pr.by_module == {"": 1, "enc": 25, "dec": 0}  # first owner in module order gets it
    assert sum(pr.by_module.values()) == pr.total


def test_first_conv_none_and_conv3d():
    assert count_params(nn.Linear(2, 2)).first_conv is None
    pr = count_params(nn.Sequential(nn.Linear(2, 2), nn.Conv3d(3, 4, 3, bias=False)))
    assert pr.first_conv == 4 * 3 * 27 and pr.first_conv_name == "1"


@pytest.mark.parametrize("frames", [2, 8])
def test_early_fusion_first_conv_grows_exactly_times_t(frames):
    from fusion_models import ClipSpec, build_model

    single = count_params(build_model("single_frame", clip=ClipSpec(frames=frames), num_classes=5))
    early = count_params(build_model("early_fusion", clip=ClipSpec(frames=frames), num_classes=5))
    # Weight k^2 * 3T * C_out grows xT; the bias (if any) does not: compare weights via the difference.
    first = dict(build_model("early_fusion", clip=ClipSpec(frames=frames), num_classes=5).named_modules())[early.first_conv_name]
    bias = 0 if first.bias is None else first.bias.numel()
    assert early.first_conv - bias == frames * (single.first_conv - bias)


def test_as_dict_keys():
    d = count_params(nn.Conv2d(1, 1, 1)).as_dict()
    assert d == {"params": 2, "params_trainable": 2, "first_conv_params": 2, "first_conv_name": "", "params_by_module": '{"":2}'}
