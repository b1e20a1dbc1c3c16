"""PerFrameClassifier: the one class behind the per-frame models, and the registry's clip check."""
import pytest
import torch
from torch import nn

import fusion_models as fm
from fusion_models.per_frame import FEATURES, FUSE_AT, PerFrameClassifier
from fusion_models.registry import _REGISTRY

CLIP = fm.ClipSpec(frames=4)
PER_FRAME = ["single_frame", "late_fusion", "pool_avg", "pool_max", "pool_attn", "lstm", "conv_lstm",
             "temporal_transformer", "tsm"]


@pytest.mark.parametrize("name", PER_FRAME)
def test_per_frame_models_are_one_class(name):
    model = fm.build_model(name, clip=CLIP, num_classes=3)
    assert isinstance(model, PerFrameClassifier) and model.features in FEATURES and model.fuse in FUSE_AT


def test_logit_fusion_is_the_mean_of_per_frame_logits():
    torch.manual_seed(0)
    model = fm.build_model("late_fusion", clip=CLIP, num_classes=3).eval()
    clip = torch.rand(2, *CLIP.shape)
    per_frame = torch.stack([model.head(model.backbone(clip[:, t])) for t in range(CLIP.frames)], dim=1)
    torch.testing.assert_close(model(clip), per_frame.mean(dim=1))


def test_single_frame_reads_only_the_middle_frame():
    model = fm.build_model("single_frame", clip=CLIP, num_classes=3).eval()
    clip = torch.rand(2, *CLIP.shape)
    other = clip.clone()
    other[:, [0, 1, 3]] = torch.rand_like(other[:, [0, 1, 3]])  # T//2 = 2 kept
    torch.testing.assert_close(model(clip), model(other))


def test_bad_parts_are_refused():
    enc = fm.build_backbone("small_cnn")
    with pytest.raises(ValueError, match="features must be one of"):
        PerFrameClassifier(enc, nn.Identity(), nn.Identity(), features="tokens")
    with pytest.raises(ValueError, match="logit fusion"):
        PerFrameClassifier(enc, nn.Identity(), nn.Identity(), features="maps", fuse="logit")


@pytest.mark.parametrize("name", fm.list_models())
def test_registry_checks_every_models_clip_with_its_own_name(name):
    info = fm.model_info(name)
    model = fm.build_model(name, clip=fm.ClipSpec(frames=max(4, info.min_frames)), num_classes=3)
    assert model.model_name == name
    with pytest.raises(ValueError, match=rf"^{name}: expected 3 channels"):
        model(torch.rand(1, max(4, info.min_frames), 1, 32, 32))
    if info.min_frames > 1:
        with pytest.raises(ValueError, match=rf"^{name}: needs at least {info.min_frames} frames"):
            model(torch.rand(1, info.min_frames - 1, 3, 32, 32))


def test_a_user_registered_model_gets_the_check_too():
    @fm.register_model(name="_test_user_model", family="order_invariant", fusion_point="feature",
                       order_aware=False, reference="test", min_frames=3)
    def _user(*, clip, num_classes, **_):
        return nn.Sequential(nn.Flatten(1), nn.LazyLinear(num_classes))

    try:
        model = fm.build_model("_test_user_model", clip=fm.ClipSpec(frames=3), num_classes=2)
        assert model(torch.rand(1, 3, 3, 8, 8)).shape == (1, 2)
        with pytest.raises(ValueError, match="_test_user_model: needs at least 3 frames"):
            model(torch.rand(1, 2, 3, 8, 8))
    finally:
        _REGISTRY.pop("_test_user_model")
