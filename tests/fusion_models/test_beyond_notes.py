"""Models beyond the notes: slow fusion, TSM, R3D / R(2+1)D and the temporal transformer.

The shared contract and order tests (test_models.py, test_order.py) already cover them; these pin what each
design claims: TSM costs what late fusion costs, slow fusion's receptive field grows as stated, the 3D nets
keep the backbone's widths, the transformer's MACs follow the formula and no counter silently drops them.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from bench.measure import count_flops, count_params
from fusion_models import ClipSpec, build_model, model_info
from fusion_models.conv3d import convert_to_3d, r2plus1d_mid_channels
from fusion_models.slow_fusion import SlowFusion
from fusion_models.temporal_transformer import transformer_macs
from fusion_models.tsm import TemporalShift, temporal_shift

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

NEW = ("slow_fusion", "tsm", "r3d", "r2plus1d", "temporal_transformer")
CLIP = ClipSpec(frames=8, height=32, width=32)


@pytest.mark.parametrize("name", NEW)
def test_registry_info(name):
    info = model_info(name)
    assert info.family == "order_aware" and info.order_aware and not info.needs_flow
    assert info.fusion_point in ("feature_map", "feature") and "20" in info.reference  # a dated paper
    too_few = CLIP.with_(frames=info.min_frames - 1).dummy(1)
    with pytest.raises(ValueError, match=f"at least {info.min_frames} frames, got T={info.min_frames - 1}"):
        build_model(name, clip=CLIP, num_classes=3)(too_few)


# ------------------------------------------------------------------------------------------------ TSM


def test_temporal_shift_matches_hand_computation():
    x = torch.arange(2 * 3 * 4, dtype=torch.float).reshape(2, 3, 4, 1, 1)  # [B=2, T=3, C=4, 1, 1]
    y = temporal_shift(x, fold=1)
    for b in range(2):
        for t in range(3):
            assert y[b, t, 0] == (x[b, t + 1, 0] if t < 2 else 0)  # channel 0 reads the next frame
            assert y[b, t, 1] == (x[b, t - 1, 1] if t > 0 else 0)  # channel 1 reads the previous frame
            torch.testing.assert_close(y[b, t, 2:], x[b, t, 2:])  # the rest stay


@pytest.mark.parametrize("backbone,sites", [("small_cnn", 3), ("resnet18", 8), ("mobilenet_v3_small", 6)])
def test_tsm_has_late_fusions_parameters_and_one_shift_per_block(backbone, sites):
    clip = ClipSpec(frames=4)
    tsm = build_model("tsm", clip=clip, num_classes=7, backbone=backbone)
    late = build_model("late_fusion", clip=clip, num_classes=7, backbone=backbone)
    assert count_params(tsm).total == count_params(late).total
    assert [p.shape for p in tsm.parameters()] == [p.shape for p in late.parameters()]
    assert sum(isinstance(m, TemporalShift) for m in tsm.modules()) == sites


def test_tsm_adds_no_macs():
    """Lin et al.'s claim, in MACs: the shift is data movement (its zero padding is a copy, not a MAC)."""
    tsm, late = (build_model(n, clip=CLIP, num_classes=16) for n in ("tsm", "late_fusion"))
    a, b = count_flops(tsm, CLIP.dummy(2)), count_flops(late, CLIP.dummy(2))
    assert a.counters_agree() and a.unexplained_ops == ()
    assert a.gmacs == pytest.approx(b.gmacs, rel=1e-9)


def test_tsm_without_shifted_channels_is_late_fusion():
    """Parity: with fold 0 (fold_div larger than any width) nothing moves and the weights are late fusion's."""
    torch.manual_seed(0)
    late = build_model("late_fusion", clip=CLIP, num_classes=5).eval()
    tsm = build_model("tsm", clip=CLIP, num_classes=5, fold_div=10_000).eval()
    tsm.load_state_dict(dict(zip(tsm.state_dict(), late.state_dict().values())))
    x = CLIP.dummy(2)
    with torch.no_grad():
        torch.testing.assert_close(tsm(x), late(x))


# ---------------------------------------------------------------------------------------- slow fusion


def test_slow_fusion_params_are_the_backbone_plus_doubled_entry_convs():
    late = count_params(build_model("late_fusion", clip=CLIP, num_classes=16)).total
    slow = count_params(build_model("slow_fusion", clip=CLIP, num_classes=16)).total
    w = 16  # each fused stage's entry conv reads 2 C_in channels: one extra k^2 C_in C_out per stage
    assert slow - late == 9 * (w * 2 * w + 2 * w * 4 * w + 4 * w * 4 * w)


@pytest.mark.parametrize("stride,extent,top_t", [(1, 4, 5), (2, 8, 1)])
def test_slow_fusion_temporal_extent_grows_as_stated(stride, extent, top_t):
    """A top unit's receptive field in time: 4 frames with stride 1 (2 -> 3 -> 4), all 8 with stride 2."""
    torch.manual_seed(0)
    model = build_model("slow_fusion", clip=CLIP, num_classes=3, temporal_stride=stride).eval()
    x = CLIP.dummy(1).requires_grad_(True)
    top = model.top_maps(x)
    assert top.shape[1] == top_t
    top[:, 0].sum().backward()
    seen = x.grad.abs().sum(dim=(0, 2, 3, 4)) > 0
    assert seen.tolist() == [t < extent for t in range(CLIP.frames)]


def test_slow_fusion_first_fused_stage_is_a_temporal_conv_of_extent_2():
    """Stacking (x_t, x_{t+1}) on channels and convolving = a Conv3d of temporal kernel 2 (valid)."""
    torch.manual_seed(0)
    model: SlowFusion = build_model("slow_fusion", clip=CLIP, num_classes=3).eval()
    conv2d = model.backbone.features[1][0]  # [2w, 2*w, 3, 3]: first w input channels act on x_t
    x = torch.randn(2, 5, 16, 8, 8)  # stage-1 maps [B, T, c1, h, w]
    w3d = torch.stack(conv2d.weight.chunk(2, dim=1), dim=2)  # [C_out, c1, 2, 3, 3]
    ref = nn.functional.conv3d(x.transpose(1, 2), w3d, stride=(1, 2, 2), padding=(0, 1, 1)).transpose(1, 2)
    from fusion_models.slow_fusion import pair_frames

    got = conv2d(pair_frames(x, 1).flatten(0, 1)).unflatten(0, (2, 4))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stride,frames,match", [(1, 3, "at least 4 frames"), (2, 12, "multiple of 8"), (2, 4, "multiple of 8")])
def test_slow_fusion_says_which_clips_it_takes(stride, frames, match):
    with pytest.raises(ValueError, match=match):
        build_model("slow_fusion", clip=CLIP.with_(frames=frames), num_classes=3, temporal_stride=stride)
    model = build_model("slow_fusion", clip=CLIP, num_classes=3, temporal_stride=stride)
    with pytest.raises(ValueError, match="T="):
        model(CLIP.with_(frames=frames).dummy(1))


# ------------------------------------------------------------------------------------- R3D / R(2+1)D


@pytest.mark.parametrize("name", ["r3d", "r2plus1d"])
def test_3d_nets_keep_the_backbones_widths_and_strides(name):
    model = build_model(name, clip=CLIP, num_classes=16)
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv3d)]
    outs = [c.out_channels for c in convs if c.kernel_size[0] == 3]  # the temporal (or full 3D) convs
    assert outs == [16, 32, 64, 64]
    maps = model.features(CLIP.dummy(2).transpose(1, 2))
    assert maps.shape == (2, 64, 2, 8, 8)  # T 8 -> 8, 4, 2, 2; space 32 -> 32, 16, 8, 8 (strides 1-2-2-1)


def test_r2plus1d_pairs_have_the_3d_convs_parameter_count():
    """Tran et al.'s M keeps each factorised pair within a few % of its 3 x k x k conv."""
    r3d = build_model("r3d", clip=CLIP, num_classes=16)
    r21 = build_model("r2plus1d", clip=CLIP, num_classes=16)
    full = [m.weight.numel() for m in r3d.features.modules() if isinstance(m, nn.Conv3d)]
    pairs = [m for m in r21.features.modules() if isinstance(m, nn.Sequential) and isinstance(m[0], nn.Conv3d)]
    for f, p in zip(full, pairs):
        assert abs(p[0].weight.numel() + p[3].weight.numel() - f) <= 0.05 * f
    assert r2plus1d_mid_channels(64, 64, 3) == 144  # torchvision's formula at its layer1 width


def test_i3d_inflation_gives_the_2d_response_on_a_static_clip():
    conv = nn.Conv2d(4, 6, 3, padding=1)
    net3d = convert_to_3d(nn.Sequential(nn.Conv2d(3, 4, 1), conv), factorized=False, from_weights=True)
    x = torch.randn(2, 4, 9, 9)
    static = x.unsqueeze(2).expand(-1, -1, 5, -1, -1)  # [B, C, T=5, H, W]
    out = net3d[1](static)
    for t in range(1, 4):  # interior steps (the temporal zero padding changes the two ends)
        torch.testing.assert_close(out[:, :, t], conv(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("r3d", {"tv": True, "width": 32}, "torchvision's fixed"),
        ("r2plus1d", {"pretrained": True, "backbone": "resnet18"}, "factorisation"),
    ],
)
def test_3d_nets_refuse_what_they_cannot_build(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, clip=CLIP, num_classes=3, **kwargs)


@pytest.mark.parametrize("name,tv", [("r3d", "R3D_18_Weights"), ("r2plus1d", "R2Plus1D_18_Weights")])
def test_tv_option_is_torchvisions_network(name, tv):
    import torchvision.models.video as tvv

    model = build_model(name, clip=CLIP, num_classes=400, tv=True)
    assert count_params(model).total == getattr(tvv, tv).DEFAULT.meta["num_params"]


@pytest.mark.slow
@pytest.mark.parametrize("name,tv", [("r3d", "R3D_18_Weights"), ("r2plus1d", "R2Plus1D_18_Weights")])
def test_counter_matches_torchvisions_published_macs(name, tv):
    """1-2 s each here when the box is quiet, 10-30 s under load. ``meta["_ops"]``: GMACs at 1x3x16x112x112, 3 decimals."""
    import torchvision.models.video as tvv

    clip = ClipSpec(frames=16, height=112, width=112)
    fr = count_flops(build_model(name, clip=clip, num_classes=400, tv=True), clip.dummy(1))
    assert round(fr.gmacs, 3) == getattr(tvv, tv).DEFAULT.meta["_ops"]  # r3d_18 40.697, r2plus1d_18 40.519
    assert fr.counters_agree() and fr.unexplained_ops == ()


# ---------------------------------------------------------------------------------- temporal transformer


@pytest.mark.parametrize("pool,frames", [("cls", 8), ("mean", 5)])
def test_transformer_macs_follow_the_formula(pool, frames):
    """QKV + out projections (4 L D^2) + Q K^T and A V (2 L^2 D) + FFN (2 r L D^2), L tokens, both counters."""
    clip = CLIP.with_(frames=frames)
    model = build_model("temporal_transformer", clip=clip, num_classes=16, pool=pool)
    b, d = 2, model.aggregator.output_dim
    tokens = frames + (pool == "cls")
    expected = b * transformer_macs(tokens, d, layers=2, mlp_ratio=2)
    fr = count_flops(model.aggregator, torch.randn(b, frames, d))
    assert fr.gmacs * 1e9 == pytest.approx(expected, rel=1e-9)
    assert fr.counters_agree() and fr.unexplained_ops == ()
    assert fr.by_operator_gmacs["scaled_dot_product_attention"] * 1e9 == pytest.approx(b * 2 * 2 * tokens**2 * d)
    # Whole model = per-frame backbone + encoder + one head call.
    whole = count_flops(model, clip.dummy(b)).gmacs * 1e9
    backbone = count_flops(model.backbone, clip.dummy(b).flatten(0, 1)).gmacs * 1e9
    assert whole == pytest.approx(backbone + expected + b * d * 16, rel=1e-9)


def test_fused_attention_fast_path_is_never_a_silent_zero(monkeypatch):
    """In eval + no-grad torch runs ``_transformer_encoder_layer_fwd``: no counter has a formula for it.
    count_flops disables the fast path; were it left on, the ops would be reported, not counted as 0."""
    import bench.measure.flops as flops

    model = build_model("temporal_transformer", clip=CLIP, num_classes=16)
    honest = count_flops(model, CLIP.dummy(1))
    monkeypatch.setattr(flops, "mha_fastpath_disabled", contextlib.nullcontext)
    fast = flops.count_flops(model, CLIP.dummy(1))
    assert fast.gflops_torch < honest.gflops_torch
    assert "aten::_transformer_encoder_layer_fwd" in fast.unexplained_ops


def test_transformer_without_positions_is_order_invariant():
    """Self-attention is permutation-equivariant: the position embeddings are what make it order-aware."""
    torch.manual_seed(0)
    model = build_model("temporal_transformer", clip=CLIP, num_classes=4, pool="mean").eval()
    x = CLIP.dummy(2)
    perm = [3, 0, 7, 5, 1, 6, 2, 4]
    with torch.no_grad():
        assert (model(x) - model(x[:, perm])).abs().max() > 1e-4
        model.aggregator.pos.zero_()
        torch.testing.assert_close(model(x[:, perm]), model(x), rtol=1e-5, atol=1e-6)


def test_transformer_refuses_more_frames_than_positions():
    model = build_model("temporal_transformer", clip=CLIP, num_classes=4)
    with pytest.raises(ValueError, match="at most T=8"):
        model(CLIP.with_(frames=9).dummy(1))
    assert build_model("temporal_transformer", clip=CLIP, num_classes=4, max_frames=16)(CLIP.with_(frames=9).dummy(1)).shape == (1, 4)
