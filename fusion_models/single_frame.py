"""Single-frame baseline (appearance only): the middle frame through the shared backbone.

    clip [B, T, C, H, W] --I_{T//2}--> [B, C, H, W] --f_theta--> x [B, D] --g_phi--> z [B, K]
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, build_backbone
from .clip import ClipSpec, check_clip
from .layers import ClassifierHead
from .registry import register_model


class SingleFrame(nn.Module):
    """Classifies the middle frame ``I_{T//2}``; the other frames are never read."""

    def __init__(self, backbone: Backbone, head: ClassifierHead, *, channels: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        check_clip(clip, channels=self.channels, min_frames=1, name="single_frame")
        return self.head(self.backbone(clip[:, clip.shape[1] // 2]))


@register_model(
    name="single_frame",
    family="single_frame",
    fusion_point="none",
    order_aware=False,
    reference="notes §1 (single-frame models capture appearance only); Karpathy et al. 2014",
)
def single_frame(
    *,
    clip: ClipSpec,
    num_classes: int,
    backbone: str = "small_cnn",
    pretrained: bool = False,
    width: int = 16,
    dropout: float = 0.0,
) -> SingleFrame:
    """Middle frame -> backbone -> head: the appearance-only baseline."""
    enc = build_backbone(backbone, in_channels=clip.channels, pretrained=pretrained, width=width)
    return SingleFrame(enc, ClassifierHead(enc.out_channels, num_classes, dropout=dropout), channels=clip.channels)
