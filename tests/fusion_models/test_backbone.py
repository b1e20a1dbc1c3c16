"""The shared backbone: the three encoders, first-conv inflation, the pretrained rules."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fusion_models import build_backbone
from fusion_models.backbone import Backbone, inflate_conv, small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_small_cnn_shapes():
    bb = build_backbone("small_cnn", width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    assert bb.maps(x).shape == (2, 32, 8, 8)
    assert bb(x).shape == (2, 32) and bb.out_channels == bb.output_dim == 32
    clip = torch.rand(2, 5, 3, 32, 32)
    assert bb.per_frame_maps(clip).shape == (2, 5, 32, 8, 8)
    # per_frame is x_t = f(I_t) for every t, the same weights on every frame
    torch.testing.assert_close(bb.per_frame(clip)[:, 3], bb(clip[:, 3]))


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("mobilenet_v3_small", 576)])
def test_torchvision_backbones_build_inflate_and_run(name, dim):
    bb = build_backbone(name, in_channels=24).eval()  # 3T with T=8
    assert bb.out_channels == dim and bb.in_channels == 24
    k = bb.first_conv.kernel_size
    assert bb.first_conv.weight.shape == (bb.first_conv.out_channels, 24, *k)
    with torch.no_grad():
        assert bb(torch.rand(1, 24, 32, 32)).shape == (1, dim)
    flow = build_backbone(name, in_channels=14, modality="flow").eval()  # 2L with L=7
    with torch.no_grad():
        assert flow(torch.rand(1, 14, 32, 32)).shape == (1, dim)


def test_unknown_backbone_names_close_match():
    with pytest.raises(ValueError, match="did you mean resnet18"):
        build_backbone("resnet_18")


def test_small_cnn_has_no_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_backbone("small_cnn", pretrained=True)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_pretrained_without_cached_weights_fails_clearly(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch cache; nothing may be downloaded
    with pytest.raises(FileNotFoundError, match=r"pretrained=True needs .*\.pth.*never downloads"):
        build_backbone(name, pretrained=True)


def _pretrained_like_conv(cin: int = 3, cout: int = 6, bias: bool = True) -> nn.Conv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=bias)
    nn.init.normal_(conv.weight)
    return conv


@pytest.mark.parametrize("in_channels,modality", [(24, "rgb"), (6, "rgb"), (14, "flow"), (6, "flow"), (5, "rgb")])
def test_cross_modality_inflation_keeps_the_response_to_a_uniform_input(in_channels, modality):
    conv = _pretrained_like_conv()
    new = inflate_conv(conv, in_channels, from_weights=True, modality=modality)
    assert new.weight.shape == (6, in_channels, 3, 3)
    c = 0.37
    with torch.no_grad():
        ref = conv(torch.full((1, 3, 8, 8), c))
        out = new(torch.full((1, in_channels, 8, 8), c))
    torch.testing.assert_close(out, ref)


def test_cross_modality_rule_rgb_tiles_flow_averages():
    conv = _pretrained_like_conv()
    w = conv.weight.detach()
    rgb = inflate_conv(conv, 6, from_weights=True, modality="rgb").weight.detach()
    torch.testing.assert_close(rgb, torch.cat([w, w], dim=1) / 2)  # I_1 RGB, I_2 RGB: RGB kernel / T
    flow = inflate_conv(conv, 6, from_weights=True, modality="flow").weight.detach()
    torch.testing.assert_close(flow, w.mean(dim=1, keepdim=True).expand(-1, 6, -1, -1) * 3 / 6)
    with pytest.raises(ValueError, match="modality"):
        inflate_conv(conv, 6, from_weights=True, modality="depth")


def test_inflation_without_weights_is_fresh_init():
    conv = _pretrained_like_conv()
    new = inflate_conv(conv, 24, from_weights=False)
    assert new.weight.shape == (6, 24, 3, 3) and not torch.equal(new.weight[:, :3], conv.weight / 8)


def test_pretrained_backbone_inflation_end_to_end():
    """A Backbone marked pretrained inflates from its weights: a uniform clip gives the same maps."""
    torch.manual_seed(0)
    rgb = Backbone(small_cnn(8), 32, name="small_cnn", pretrained=True).eval()
    stacked = Backbone(small_cnn(8), 32, name="small_cnn", pretrained=True).eval()
    stacked.load_state_dict(rgb.state_dict())
    stacked.inflate(12)
    with torch.no_grad():
        torch.testing.assert_close(stacked(torch.full((1, 12, 16, 16), 0.5)), rgb(torch.full((1, 3, 16, 16), 0.5)))


def test_inflate_only_touches_the_first_conv():
    a = build_backbone("small_cnn", in_channels=3)
    b = build_backbone("small_cnn", in_channels=48)
    sa, sb = a.state_dict(), b.state_dict()
    first = "features.0.0.weight"
    assert sb[first].shape[1] == 48 and sa[first].shape[1] == 3
    assert {k: v.shape for k, v in sa.items() if k != first} == {k: v.shape for k, v in sb.items() if k != first}
