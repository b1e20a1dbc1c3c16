"""Feature-level temporal pooling (notes §4): per-frame features pooled over time, then classified.

    clip [B, T, C, H, W] --f_theta per frame + GAP--> x_t [B, T, D] --TemporalPool--> x [B, D] --g_phi--> z [B, K]

``pool_avg`` (x = 1/T sum_t x_t) is also the notes' feature-level late fusion; ``pool_max`` takes the
per-feature max over t; ``pool_attn`` weights frames by ``alpha = softmax_t(w^T x_t)``.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, build_backbone
from .clip import ClipSpec, check_clip
from .layers import ClassifierHead, TemporalPool
from .registry import register_model


class TemporalPooling(nn.Module):
    """``[B, T, C, H, W] -> x_t [B, T, D] -> pool -> [B, D] -> head -> [B, K]``."""

    def __init__(self, backbone: Backbone, pool: TemporalPool, head: ClassifierHead, *, channels: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.head = head
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        check_clip(clip, channels=self.channels, min_frames=1, name=f"pool_{self.pool.mode}")
        return self.head(self.pool(self.backbone.per_frame(clip)))


def _pooling(
    mode: str, *, clip: ClipSpec, num_classes: int, backbone: str, pretrained: bool, width: int, dropout: float
) -> TemporalPooling:
    enc = build_backbone(backbone, in_channels=clip.channels, pretrained=pretrained, width=width)
    pool = TemporalPool(enc.out_channels, mode)
    head = ClassifierHead(pool.output_dim, num_classes, dropout=dropout)
    return TemporalPooling(enc, pool, head, channels=clip.channels)


@register_model(
    name="pool_avg",
    family="order_invariant",
    fusion_point="feature",
    order_aware=False,
    reference="notes §3 (feature-level late fusion) and §4 (average pooling); Ng et al. 2015",
)
def pool_avg(
    *, clip: ClipSpec, num_classes: int, backbone: str = "small_cnn", pretrained: bool = False, width: int = 16,
    dropout: float = 0.0,
) -> TemporalPooling:
    """Per-frame features averaged over time (feature-level late fusion)."""
    return _pooling("avg", clip=clip, num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                    width=width, dropout=dropout)


@register_model(
    name="pool_max",
    family="order_invariant",
    fusion_point="feature",
    order_aware=False,
    reference="notes §4 (max pooling); Ng et al. 2015 (conv pooling)",
)
def pool_max(
    *, clip: ClipSpec, num_classes: int, backbone: str = "small_cnn", pretrained: bool = False, width: int = 16,
    dropout: float = 0.0,
) -> TemporalPooling:
    """Per-feature max over time of per-frame features."""
    return _pooling("max", clip=clip, num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                    width=width, dropout=dropout)


@register_model(
    name="pool_attn",
    family="order_invariant",
    fusion_point="feature",
    order_aware=False,
    reference="notes §4 (weighted pooling: s_t = w^T x_t, softmax over t)",
)
def pool_attn(
    *, clip: ClipSpec, num_classes: int, backbone: str = "small_cnn", pretrained: bool = False, width: int = 16,
    dropout: float = 0.0,
) -> TemporalPooling:
    """Attention-weighted sum of per-frame features (softmax over t of w^T x_t)."""
    return _pooling("attn", clip=clip, num_classes=num_classes, backbone=backbone, pretrained=pretrained,
                    width=width, dropout=dropout)
