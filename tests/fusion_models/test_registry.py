"""Registry and input contract: duplicate names, unknown names, wildcards, bad clips."""
from __future__ import annotations

import pytest
import torch

import fusion_models
from fusion_models import ClipSpec, build_model, list_models, model_info, register_model
from fusion_models import registry
from fusion_models.registry import UnknownModelError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

EXPECTED = {
    "single_frame", "early_fusion", "late_fusion", "pool_avg", "pool_max", "pool_attn", "lstm", "conv_lstm",
    "two_stream", "two_stream_conv", "two_stream_gated", "hidden_two_stream", "hidden_two_stream_pooled",
}


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, so a test may register throwaway models without leaking them."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_every_architecture_in_the_notes_is_registered():
    assert EXPECTED <= set(list_models())


def test_package_reexports():
    for name in ("ClipSpec", "build_model", "list_models", "model_info", "register_model", "build_backbone"):
        assert hasattr(fusion_models, name)


def test_families_follow_order_awareness():
    for name in list_models():
        info = model_info(name)
        assert info.family in ("single_frame", "order_invariant", "order_aware")
        assert info.order_aware == (info.family == "order_aware"), name
        assert info.reference and info.description, name
    assert model_info("single_frame").family == "single_frame"
    assert {n for n in list_models() if model_info(n).family == "order_invariant"} >= {
        "late_fusion", "pool_avg", "pool_max", "pool_attn"}
    assert [n for n in list_models() if model_info(n).needs_flow] == ["two_stream", "two_stream_conv", "two_stream_gated"]


def test_duplicate_name_raises(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_model(name="lstm", family="order_aware", fusion_point="feature", order_aware=True, reference="x")(
            lambda **kw: None)
    register_model(name="tmp_model", family="single_frame", fusion_point="none", order_aware=False,
                   reference="test")(lambda **kw: None)
    assert "tmp_model" in list_models()
    with pytest.raises(ValueError, match="tmp_model"):
        register_model(name="tmp_model", family="single_frame", fusion_point="none", order_aware=False,
                       reference="test")(lambda **kw: None)


def test_scratch_registry_does_not_leak():
    assert "tmp_model" not in list_models()


def test_unknown_name_names_close_matches():
    with pytest.raises(UnknownModelError, match="did you mean.*pool_attn"):
        build_model("pool_atn", num_classes=4)
    with pytest.raises(ValueError, match="nope"):  # UnknownModelError is a ValueError
        build_model("nope", num_classes=4)
    with pytest.raises(UnknownModelError, match="did you mean.*conv_lstm"):
        list_models("convlstm")


def test_list_models_wildcards():
    assert list_models("pool_*") == ["pool_avg", "pool_max", "pool_attn"]
    assert set(list_models("two_stream*")) == {"two_stream", "two_stream_conv", "two_stream_gated"}
    assert list_models("all") == list_models("*") == list_models()
    assert list_models("lstm,conv_lstm") == ["lstm", "conv_lstm"]
    assert "pool_max" not in list_models("pool_*", exclude="*max")
    assert list_models(["single_frame", "pool_*"])[0] == "single_frame"


def test_build_model_drops_none_overrides():
    m = build_model("pool_avg", clip=ClipSpec(frames=2), num_classes=3, backbone=None, width=None, dropout=None)
    assert m.backbone.name == "small_cnn" and m.backbone.out_channels == 64
    assert m.model_name == "pool_avg"


def test_build_model_rejects_too_few_frames_and_bad_classes():
    with pytest.raises(ValueError, match="at least 2 frames, got ClipSpec.frames=1"):
        build_model("two_stream", clip=ClipSpec(frames=1), num_classes=4)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("pool_avg", num_classes=0)


@pytest.mark.parametrize("name", ["single_frame", "pool_avg", "lstm", "hidden_two_stream", "early_fusion"])
def test_bad_clips_raise_value_error_naming_expected_and_got(name):
    m = build_model(name, clip=ClipSpec(frames=4, height=16, width=16), num_classes=3)
    with pytest.raises(ValueError, match=r"rank 5.*got rank 4"):
        m(torch.rand(2, 4 * 3, 16, 16))
    with pytest.raises(ValueError, match=r"expected 3 channels.*got 1"):
        m(torch.rand(2, 4, 1, 16, 16))
    with pytest.raises(ValueError, match="float"):
        m(torch.zeros(2, 4, 3, 16, 16, dtype=torch.uint8))


def test_too_few_frames_raises():
    m = build_model("hidden_two_stream", clip=ClipSpec(frames=4, height=16, width=16), num_classes=3)
    with pytest.raises(ValueError, match="at least 2 frames, got T=1"):
        m(torch.rand(2, 1, 3, 16, 16))


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.startswith(("early", "two_stream"))])
def test_fixed_length_models_name_expected_and_got_t(name):
    m = build_model(name, clip=ClipSpec(frames=4, height=16, width=16), num_classes=3)
    with pytest.raises(ValueError, match="built for T=4.*got T=6"):
        m(torch.rand(2, 6, 3, 16, 16))
