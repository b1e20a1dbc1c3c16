"""Late fusion at the logits (notes §3): every frame classified on its own, the logits averaged.

    clip [B, T, C, H, W] --f_theta per frame--> x_t [B, T, D] --g_phi per frame--> z_t [B, T, K]
        --1/T sum_t--> z [B, K]

(Feature-level late fusion, ``x_clip = 1/T sum_t x_t``, is ``pool_avg`` in ``pooling.py``.)
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, build_backbone
from .clip import ClipSpec, check_clip
from .layers import ClassifierHead
from .registry import register_model


class LateFusion(nn.Module):
    """``z = 1/T sum_t g_phi(f_theta(I_t))``; with T=1 it is ``SingleFrame`` (same attribute names, so
    the two share a state dict)."""

    def __init__(self, backbone: Backbone, head: ClassifierHead, *, channels: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        check_clip(clip, channels=self.channels, min_frames=1, name="late_fusion")
        z_t = self.head(self.backbone.per_frame(clip))  # [B, T, K]
        return z_t.mean(dim=1)


@register_model(
    name="late_fusion",
    family="order_invariant",
    fusion_point="logit",
    order_aware=False,
    reference="notes §3 (logit-level fusion); Karpathy et al. 2014",
)
def late_fusion(
    *,
    clip: ClipSpec,
    num_classes: int,
    backbone: str = "small_cnn",
    pretrained: bool = False,
    width: int = 16,
    dropout: float = 0.0,
) -> LateFusion:
    """Per-frame logits averaged over time."""
    enc = build_backbone(backbone, in_channels=clip.channels, pretrained=pretrained, width=width)
    return LateFusion(enc, ClassifierHead(enc.out_channels, num_classes, dropout=dropout), channels=clip.channels)
