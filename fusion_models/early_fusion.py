"""Early fusion (notes §2): frames stacked on channels and fused by the backbone's first conv.

    clip [B, T, C, H, W] --concat_channel(I_1..I_T)--> X [B, T*C, H, W] --f_theta (first conv inflated
    to T*C inputs: #W = k^2 * 3T * C_out)--> h [B, D] --g_phi--> z [B, K]

Channels are frame-major (I_1 RGB, I_2 RGB, ...), so the clip length T is fixed at build time.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone
from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import ClassifierHead
from .registry import register_model


class EarlyFusion(nn.Module):
    """Channel stacking: ``[B, T, C, H, W] -> [B, T*C, H, W] -> backbone -> head``."""

    def __init__(self, backbone: Backbone, head: ClassifierHead, *, frames: int, channels: int = 3) -> None:
        super().__init__()
        if backbone.in_channels != frames * channels:
            raise ValueError(f"early_fusion: backbone takes {backbone.in_channels} channels, expected {frames * channels}")
        self.backbone = backbone
        self.head = head
        self.frames = frames
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]`` (T must equal the T it was built for)."""
        if clip.shape[1] != self.frames:
            raise ValueError(
                f"early_fusion: built for T={self.frames} frames ({self.frames * self.channels} input channels), "
                f"got T={clip.shape[1]} (shape {tuple(clip.shape)}); rebuild with ClipSpec(frames={clip.shape[1]})"
            )
        x = clip.flatten(1, 2)  # [B, T*C, H, W], channel index t*C + c
        return self.head(self.backbone(x))


@register_model(
    name="early_fusion",
    family="order_aware",
    fusion_point="input",
    order_aware=True,
    reference="notes §2; Karpathy et al. 2014 (early fusion)",
)
def early_fusion(*, clip: ClipSpec, num_classes: int, **encoder) -> EarlyFusion:
    """Frames stacked on channels (3T) into one inflated backbone; fixed T."""
    e = EncoderArgs.of("early_fusion", **encoder)
    enc = e.build(clip.frames * clip.channels)
    return EarlyFusion(enc, e.head(enc.out_channels, num_classes), frames=clip.frames, channels=clip.channels)
