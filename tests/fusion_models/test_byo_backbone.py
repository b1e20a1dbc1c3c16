"""Backbones beyond the built-in three: ``timm:NAME``, ``tv:NAME``, factories and modules, adapted from their
module structure (``fusion_models.adapter``): the contract over every registered model, TSM and slow fusion
sites, local weights, and the one-line errors."""
from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from fusion_models import ClipSpec, build_backbone, build_model, list_models, model_info
from fusion_models.adapter import AdaptError, fusion_stages, shift_sites

pytest.importorskip("timm")
pytestmark = pytest.mark.usefixtures("one_thread")

TIMM = "timm:test_resnet"  # timm's own 0.47M-parameter test ResNet (deep stem, avg-pool shortcuts)
TV = "tv:resnet50"          # 23.5M parameters: built and run on the meta device
B, K = 2, 5


@pytest.mark.parametrize("name", list_models())
def test_contract_with_a_timm_backbone(name):
    torch.manual_seed(0)
    clip = ClipSpec(frames=max(4, model_info(name).min_frames), height=32, width=32)
    model = build_model(name, clip=clip, num_classes=K, backbone=TIMM).train()
    x = clip.dummy(B).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (B, K) and torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"


@pytest.mark.parametrize("name", list_models())
def test_contract_with_a_torchvision_backbone_on_meta(name):
    clip = ClipSpec(frames=max(4, model_info(name).min_frames), height=32, width=32)
    with torch.device("meta"):
        model = build_model(name, clip=clip, num_classes=K, backbone=TV).train()
        if model_info(name).needs_flow:  # flow estimation reads values (.item()), which meta tensors lack
            assert any(m.name == TV for m in model.modules() if hasattr(m, "first_conv"))
            return
        logits = model(torch.empty(B, *clip.shape))
        logits.sum().backward()
    assert logits.shape == (B, K)
    assert all(p.grad is not None for p in model.parameters()), name


def test_timm_and_tv_backbones_read_their_width_and_inflate():
    import timm

    for name, dim in ((TIMM, timm.create_model(TIMM[5:]).num_features), ("tv:shufflenet_v2_x0_5", 1024)):
        enc = build_backbone(name, in_channels=6, modality="flow")
        assert enc.out_channels == dim and enc.in_channels == 6 and enc.name == name
        assert enc.per_frame(torch.zeros(2, 3, 6, 32, 32)).shape == (2, 3, dim)
    early = build_model("early_fusion", clip=ClipSpec(frames=4), num_classes=K, backbone=TIMM)
    assert early.backbone.in_channels == 12  # 3T


def test_tsm_with_timm_shifts_every_residual_block_and_is_order_aware():
    torch.manual_seed(0)
    clip = ClipSpec(frames=4, height=32, width=32)
    model = build_model("tsm", clip=clip, num_classes=K, backbone=TIMM).eval()
    blocks = [n for n, m in model.backbone.features.named_modules() if type(m).__name__ in ("BasicBlock", "Bottleneck")]
    assert len(model.shifts) == len(blocks) > 0
    for m in model.modules():  # timm zero-inits each block's last BN gamma: residual branches start at 0
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    x = clip.dummy(B)
    with torch.no_grad():
        out, rev = model(x), model(x.flip(1))
    assert (out - rev).abs().max() > 1e-3 * out.abs().max()
    # without the shifts the same weights are late fusion: order-invariant
    for s in model.shifts:
        s.fold = 0
    with torch.no_grad():
        torch.testing.assert_close(model(x.flip(1)), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frames", [4, 5])
def test_slow_fusion_with_timm_fuses_at_the_last_three_downsampling_stages(frames):
    torch.manual_seed(0)
    clip = ClipSpec(frames=frames, height=32, width=32)
    model = build_model("slow_fusion", clip=clip, num_classes=K, backbone=TIMM).eval()
    assert len(model.fuse_at) == 3
    maps = model.top_maps(clip.dummy(B))
    assert maps.shape[1] == frames - 3  # three extent-2 stages, stride 1
    assert model(clip.dummy(B)).shape == (B, K)


def test_builtin_sites_are_what_the_structure_gives():
    """The docstrings' lists for the built-in three (formerly tables) are what the adapter derives."""
    f = build_backbone("small_cnn").features
    assert [p for p, _ in shift_sites(f)] == ["1.0", "2.0", "3.0"]
    assert [i for i, _ in fusion_stages(f, 3, count=3, label="small_cnn")] == [3, 6, 9]
    r = build_backbone("resnet18").features
    assert [p for p, _ in shift_sites(r)] == [f"{i}.{j}.conv1" for i in (4, 5, 6, 7) for j in (0, 1)]
    assert [e for _, e in fusion_stages(r, 3, count=3, label="resnet18")] == [
        [f"{i}.0.conv1", f"{i}.0.downsample.0"] for i in (5, 6, 7)]
    m = build_backbone("mobilenet_v3_small").features
    assert [e for _, e in fusion_stages(m, 3, count=3, label="m")] == [[f"{i}.block.0.0"] for i in (2, 4, 9)]


def test_factory_and_module_backbones():
    enc = build_backbone(lambda: tvm.resnet18(), in_channels=3)
    assert enc.out_channels == 512
    mod = tvm.resnet18()
    a, b = build_backbone(mod), build_backbone(mod)
    assert a.features[0] is not b.features[0]  # each model gets its own copy
    m = build_model("late_fusion", clip=ClipSpec(frames=2), num_classes=K, backbone=tvm.resnet18)
    assert m(ClipSpec(frames=2).dummy(1)).shape == (1, K)
    with pytest.raises(TypeError, match="returned int"):
        build_backbone(lambda: 3)


def test_local_weights_load_and_missing_file_is_clear(tmp_path):
    torch.manual_seed(1)
    src = tvm.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    enc = build_backbone("tv:resnet18", weights=str(path))
    torch.testing.assert_close(enc.features[0].weight, src.conv1.weight)
    assert enc.pretrained  # so inflation uses the weights
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("tv:resnet18", weights=str(tmp_path / "missing.pth"))
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no tensor"):
        build_backbone("tv:resnet18", weights=str(tmp_path / "bad.pth"))


def test_pretrained_never_downloads(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_backbone("tv:resnet34", pretrained=True)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_backbone("timm:test_efficientnet", pretrained=True)


@pytest.mark.parametrize("name, hint", [
    ("timm:resnet1t", "did you mean timm:"), ("tv:resnet5", "did you mean tv:resnet50"),
    ("resnet19", "did you mean resnet18"), ("keras:resnet18", "timm:NAME, tv:NAME"),
])
def test_unknown_names_are_one_line_with_close_matches(name, hint):
    with pytest.raises(ValueError) as e:
        build_backbone(name)
    assert hint in str(e.value) and "\n" not in str(e.value)


def test_a_classifier_that_cannot_be_adapted_says_what_is_missing():
    with pytest.raises(AdaptError, match="not per-frame maps|fails on the maps") as e:
        build_backbone("tv:vit_b_16")
    assert "\n" not in str(e.value)

    class NoHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.body(x)

    with pytest.raises(AdaptError, match="no global pool"):
        build_backbone(NoHead)
    with pytest.raises(AdaptError, match="cat before a conv"):
        build_model("slow_fusion", clip=ClipSpec(frames=4), num_classes=K, backbone="tv:densenet121")


def test_plan_accepts_library_names_and_rejects_unknown_ones():
    from bench.plan import RunOptions, build_run_spec

    spec = build_run_spec(RunOptions(models="tsm", profile="smoke", backbone=TIMM), resolved_device="cpu")
    assert spec.backbone == TIMM
    with pytest.raises(ValueError, match="did you mean"):
        build_run_spec(RunOptions(models="tsm", profile="smoke", backbone="tv:resnet5"), resolved_device="cpu")
