"""Hidden two-stream (notes §9): appearance x_t and a motion-like latent dx_t = x_t - x_{t-1}, no flow.

    difference="maps" (default):
      clip --f_theta per frame--> X_t [B, T, D, h, w] --GAP, mean_t--> a [B, D]
                                       \\--dX_t = X_t - X_{t-1}--> [B, T-1, D, h, w] --conv3x3+BN+ReLU-->
                                           --GAP, mean_t--> m [B, D]
      concat[a, m] [B, 2D] --g_phi--> z [B, K]
    difference="pooled" (the notes' literal form, registered as ``hidden_two_stream_pooled``):
      x_t [B, T, D] --dx_t--> [B, T-1, D] --Linear+ReLU--> mean_t --> m [B, D]

Why both: a global-average-pooled vector barely changes when a sprite only translates, so the pooled
difference can be blind to motion that the map difference sees. The suite shows this rather than hides it.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone
from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import ClassifierHead, TemporalDifference
from .registry import register_model

DIFFERENCES = ("maps", "pooled")


def _motion_block(dim: int, difference: str) -> nn.Module:
    """The small learned layer applied to every dx_t (maps: ``[N, D, h, w]``; pooled: ``[N, D]``)."""
    if difference == "maps":
        return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))


class HiddenTwoStream(nn.Module):
    """Appearance ``a = mean_t x_t`` and motion ``m = mean_t phi(dx_t)`` concatenated and classified."""

    def __init__(
        self, backbone: Backbone, motion: nn.Module, head: ClassifierHead, *, difference: str = "maps",
        channels: int = 3,
    ) -> None:
        super().__init__()
        if difference not in DIFFERENCES:
            raise ValueError(f"difference must be one of {DIFFERENCES}, got {difference!r}")
        self.backbone = backbone
        self.diff = TemporalDifference()
        self.motion = motion
        self.head = head
        self.difference = difference
        self.channels = channels
        self.output_dim = 2 * backbone.out_channels  # width of concat[a, m]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]`` (T >= 2)."""
        maps = self.backbone.per_frame_maps(clip)  # [B, T, D, h, w]
        x = maps.mean(dim=(3, 4))  # x_t                        [B, T, D]
        a = x.mean(dim=1)  # appearance                          [B, D]
        if self.difference == "maps":
            d = self.diff(maps)  # dX_t                          [B, T-1, D, h, w]
            m = self.motion(d.flatten(0, 1)).mean(dim=(2, 3)).unflatten(0, d.shape[:2])  # [B, T-1, D]
        else:
            m = self.motion(self.diff(x))  # phi(dx_t)           [B, T-1, D]
        return self.head(torch.cat([a, m.mean(dim=1)], dim=1))


def _hidden(difference: str, *, clip: ClipSpec, num_classes: int, encoder: EncoderArgs) -> HiddenTwoStream:
    enc = encoder.build(clip.channels)
    d = enc.out_channels
    head = encoder.head(2 * d, num_classes)  # built before the motion block: same RNG order, same init as before
    return HiddenTwoStream(enc, _motion_block(d, difference), head, difference=difference, channels=clip.channels)


@register_model(
    name="hidden_two_stream",
    family="order_aware",
    fusion_point="feature_map",
    order_aware=True,
    reference="notes §9 (dx_t = x_t - x_{t-1}) taken on feature maps; Zhu et al. 2017 (hidden two-stream)",
    min_frames=2,
)
def hidden_two_stream(*, clip: ClipSpec, num_classes: int, difference: str = "maps", **encoder) -> HiddenTwoStream:
    """Appearance + learned motion from feature-map differences X_t - X_{t-1}; no optical flow."""
    return _hidden(difference, clip=clip, num_classes=num_classes, encoder=EncoderArgs.of("hidden_two_stream", **encoder))


@register_model(
    name="hidden_two_stream_pooled",
    family="order_aware",
    fusion_point="feature",
    order_aware=True,
    reference="notes §9 literal form: dx_t = x_t - x_{t-1} on pooled vectors",
    min_frames=2,
)
def hidden_two_stream_pooled(*, clip: ClipSpec, num_classes: int, **encoder) -> HiddenTwoStream:
    """Appearance + motion from differences of globally pooled vectors x_t - x_{t-1} (notes' literal form)."""
    return _hidden("pooled", clip=clip, num_classes=num_classes,
                   encoder=EncoderArgs.of("hidden_two_stream_pooled", **encoder))
