"""Two-stream models (notes §7-§8) against hand computations with the shared Horn–Schunck module."""
from __future__ import annotations

import pytest
import torch

from fusion_models import ClipSpec, build_model
from fusion_models.backbone import Backbone
from fusion_models.flow import HornSchunck, stack_flow

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

close = torch.testing.assert_close
CLIP = ClipSpec(frames=4, height=32, width=32)
NAMES = ["two_stream", "two_stream_conv", "two_stream_gated"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def hand_streams(model, clip):
    """Fs = f_theta_s(I_{T//2}), Ft = f_theta_t(stack(HornSchunck(clip))): both [B, D, h, w]."""
    fs = model.spatial.maps(clip[:, clip.shape[1] // 2])
    ft = model.temporal.maps(stack_flow(HornSchunck()(clip)))
    return fs, ft


@pytest.mark.parametrize("name", NAMES)
def test_two_separate_backbones_and_the_shared_flow_module(name):
    model = build_model(name, clip=CLIP, num_classes=3)
    assert isinstance(model.spatial, Backbone) and isinstance(model.temporal, Backbone)
    assert isinstance(model.flow, HornSchunck)
    assert model.spatial.in_channels == 3
    assert model.temporal.in_channels == 2 * (CLIP.frames - 1)  # 2L stacked flow channels
    ids_s = {id(p) for p in model.spatial.parameters()}
    assert not ids_s & {id(p) for p in model.temporal.parameters()}  # theta_s and theta_t are separate
    assert not list(model.flow.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_flow_is_computed_inside_forward(name):
    model = build_model(name, clip=CLIP, num_classes=3).eval()
    calls = []
    model.flow.register_forward_hook(lambda mod, inp, out: calls.append(out.shape))
    with torch.no_grad():
        model(CLIP.dummy(2))
    assert calls == [(2, CLIP.frames - 1, 2, 32, 32)]


def test_two_stream_averages_the_two_streams_logits():
    model = build_model("two_stream", clip=CLIP, num_classes=5).eval()
    clip = CLIP.dummy(2)
    with torch.no_grad():
        fs, ft = hand_streams(model, clip)
        z = (model.head_s(fs.mean(dim=(2, 3))) + model.head_t(ft.mean(dim=(2, 3)))) / 2
        close(model(clip), z)


def test_two_stream_conv_mixes_the_concatenation_with_a_1x1_conv():
    model = build_model("two_stream_conv", clip=CLIP, num_classes=5).eval()
    clip = CLIP.dummy(2)
    W = model.fusion.mix.weight.detach()
    d = model.spatial.out_channels
    assert W.shape == (d, 2 * d, 1, 1)
    with torch.no_grad():
        fs, ft = hand_streams(model, clip)
        f_mix = torch.einsum("oc,bchw->bohw", W[:, :, 0, 0], torch.cat([fs, ft], 1))
        f_mix = f_mix + model.fusion.mix.bias.view(1, -1, 1, 1)
        close(model(clip), model.head(f_mix.mean(dim=(2, 3))))


def test_two_stream_gated_matches_the_formula():
    model = build_model("two_stream_gated", clip=CLIP, num_classes=5).eval()
    clip = CLIP.dummy(2)
    with torch.no_grad():
        fs, ft = hand_streams(model, clip)
        g = torch.sigmoid(model.fusion.gate(torch.cat([fs, ft], dim=1)))
        close(model(clip), model.head((g * fs + (1 - g) * ft).mean(dim=(2, 3))))


@pytest.mark.parametrize("bias,stream", [(100.0, "spatial"), (-100.0, "temporal")])
def test_gated_fusion_with_a_saturated_gate_is_one_stream_alone(bias, stream):
    """G = 1 gives head(GAP(Fs)) of the spatial stream alone (and G = 0 the temporal stream)."""
    model = build_model("two_stream_gated", clip=CLIP, num_classes=5).eval()
    with torch.no_grad():
        model.fusion.gate.weight.zero_()
        model.fusion.gate.bias.fill_(bias)  # sigma(+-100) is exactly 1 / 0 in float32
    clip = CLIP.dummy(2)
    with torch.no_grad():
        fs, ft = hand_streams(model, clip)
        alone = fs if stream == "spatial" else ft
        close(model(clip), model.head(alone.mean(dim=(2, 3))), rtol=1e-6, atol=1e-6)


def test_gate_kernel_option():
    model = build_model("two_stream_gated", clip=CLIP, num_classes=5, gate_kernel=3)
    assert model.fusion.gate.kernel_size == (3, 3)
    assert model(CLIP.dummy(2)).shape == (2, 5)


def test_a_static_clip_gives_the_temporal_stream_zero_flow():
    model = build_model("two_stream", clip=CLIP, num_classes=5).eval()
    frame = torch.rand(2, 1, 3, 32, 32)
    clip = frame.expand(-1, CLIP.frames, -1, -1, -1).contiguous()
    with torch.no_grad():
        ft = model.temporal.maps(torch.zeros(2, 2 * (CLIP.frames - 1), 32, 32))
        fs = model.spatial.maps(frame[:, 0])
        z = (model.head_s(fs.mean(dim=(2, 3))) + model.head_t(ft.mean(dim=(2, 3)))) / 2
        close(model(clip), z, rtol=1e-5, atol=1e-5)
