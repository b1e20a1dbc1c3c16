"""weights=PATH holding an encoder's features (what a pre-training saves, ``backbone_state``): small_cnn and
library backbones load it, and early fusion's 3T-channel first conv is inflated from the 3-channel one."""
import pytest
import torch
from torch import nn

from fusion_models import ClipSpec, backbone_state, build_backbone, build_model
from fusion_models.backbone import model_backbone

T = 4


def _pretrained_file(tmp_path, backbone="small_cnn", width=8):
    """A single_frame model with non-trivial encoder weights (random, BN statistics moved), saved as a pre-training
    does."""
    torch.manual_seed(7)
    src = build_model("single_frame", clip=ClipSpec(frames=T, height=16, width=16), num_classes=5, backbone=backbone,
                      width=width)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for m in src.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "pretrained.pt"
    torch.save(backbone_state(src), path)
    return src, path


def test_a_clip_of_identical_frames_gets_the_2d_response_through_the_inflated_first_conv(tmp_path):
    src, path = _pretrained_file(tmp_path)
    clip = ClipSpec(frames=T, height=16, width=16)
    ef = build_model("early_fusion", clip=clip, num_classes=5, width=8, weights=str(path)).eval()
    sf = build_model("single_frame", clip=clip, num_classes=5, width=8, weights=str(path)).eval()
    w2d = src.backbone.first_conv.weight.detach()
    # I3D inflation: the 3-channel kernel repeated over the T frames (frame-major channels) and divided by T
    torch.testing.assert_close(ef.backbone.first_conv.weight.detach(), w2d.repeat(1, T, 1, 1) / T)
    torch.testing.assert_close(sf.backbone.first_conv.weight.detach(), w2d)  # the single-frame conv is loaded as is
    frame = torch.randn(2, 3, 16, 16)
    static = frame.unsqueeze(1).expand(-1, T, -1, -1, -1)  # [B, T, 3, H, W], T identical frames
    with torch.no_grad():
        # sum_t (W / T) * I = W * I: the inflated conv's output equals the 2D conv's on one frame
        torch.testing.assert_close(ef.backbone.first_conv(static.flatten(1, 2)), src.backbone.first_conv(frame))
        # and the whole encoder after it is the pre-trained one: early fusion sees the single-frame features
        torch.testing.assert_close(ef.backbone(static.flatten(1, 2)), src.eval().backbone(frame))
        torch.testing.assert_close(sf.backbone(frame), src.backbone(frame))


def test_every_per_frame_strategy_starts_from_the_same_encoder(tmp_path):
    src, path = _pretrained_file(tmp_path)
    clip = ClipSpec(frames=T, height=16, width=16)
    want = backbone_state(src)
    for name in ("late_fusion", "pool_avg", "lstm", "conv_lstm"):
        got = backbone_state(build_model(name, clip=clip, num_classes=5, width=8, weights=str(path)))
        assert got.keys() == want.keys(), name
        for k in want:
            torch.testing.assert_close(got[k], want[k], msg=f"{name}: {k}")
    fresh = backbone_state(build_model("late_fusion", clip=clip, num_classes=5, width=8))
    assert not torch.equal(fresh["0.0.weight"], want["0.0.weight"])  # without the file: the seed's own init


def test_library_backbone_takes_its_feature_extractors_state_dict(tmp_path):
    src, path = _pretrained_file(tmp_path, backbone="tv:mobilenet_v3_small")
    enc = build_backbone("tv:mobilenet_v3_small", in_channels=3 * T, weights=str(path))
    w2d = model_backbone(src).first_conv.weight.detach()
    torch.testing.assert_close(enc.first_conv.weight.detach(), w2d.repeat(1, T, 1, 1) / T)


def test_a_file_that_fits_nothing_or_no_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ValueError, match="no tensor"):
        build_backbone("small_cnn", weights=str(bad))
    torch.save([1, 2], bad)
    with pytest.raises(ValueError, match="not a state dict"):
        build_backbone("small_cnn", weights=str(bad))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("small_cnn", weights=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="not one"):
        backbone_state(build_model("two_stream", clip=ClipSpec(frames=T, height=16, width=16), num_classes=5))
