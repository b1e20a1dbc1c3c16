"""Single-frame baseline (appearance only): the middle frame through the shared backbone.

    clip [B, T, C, H, W] --I_{T//2}--> [B, C, H, W] --f_theta--> x [B, D] --g_phi--> z [B, K]

A ``PerFrameClassifier`` that selects the middle frame; it has ``late_fusion``'s attribute names (backbone,
head), so the two share a state dict and agree at T = 1.
"""
from __future__ import annotations

from .clip import ClipSpec
from .encoder import EncoderArgs
from .per_frame import MiddleFrame, OnlyFrame, PerFrameClassifier, per_frame_model
from .registry import register_model


@register_model(
    name="single_frame",
    family="single_frame",
    fusion_point="none",
    order_aware=False,
    reference="notes §1 (single-frame models capture appearance only); Karpathy et al. 2014",
)
def single_frame(*, clip: ClipSpec, num_classes: int, **encoder) -> PerFrameClassifier:
    """Middle frame -> backbone -> head: the appearance-only baseline."""
    return per_frame_model(OnlyFrame, clip=clip, num_classes=num_classes,
                           encoder=EncoderArgs.of("single_frame", **encoder), select=MiddleFrame())
