"""Two-stream networks (notes §7-§8): an RGB spatial stream and a stacked-optical-flow temporal stream.

    clip [B, T, C, H, W] --I_{T//2}--> f_theta_s -------------------------------> Fs [B, D, h, w]
                         --HornSchunck--> flow [B, T-1, 2, H, W] --stack--> [B, 2L, H, W]
                                              --f_theta_t (first conv inflated to 2L)--> Ft [B, D, h, w]

    two_stream:        z = (g_s(GAP Fs) + g_t(GAP Ft)) / 2                       (logit-level)
    two_stream_conv:   F_mix = W_1x1 * concat(Fs, Ft) --GAP--> g --> z            (notes §8)
    two_stream_gated:  G = sigma(Conv([Fs, Ft])), F = G*Fs + (1-G)*Ft --GAP--> g --> z

The flow is computed inside ``forward`` by ``self.flow`` so its cost is part of every FLOP, latency and
memory figure (the runner times ``self.flow`` separately to report the flow share). Two streams are two
``Backbone`` instances with separate weights theta_s, theta_t; sharing the architecture makes Fs and Ft
the same size. L = T-1 flow fields, so T is fixed at build time.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .backbone import Backbone
from .clip import ClipSpec
from .encoder import EncoderArgs
from .flow import HornSchunck, stack_flow
from .layers import ClassifierHead, ConvFusion, GatedFusion
from .registry import register_model


class _TwoStreamBase(nn.Module):
    """The two streams up to their feature maps; subclasses fuse them."""

    def __init__(self, spatial: Backbone, temporal: Backbone, flow: nn.Module, *, frames: int, channels: int,
                 name: str) -> None:
        super().__init__()
        self.name = name
        if temporal.in_channels != 2 * (frames - 1):
            raise ValueError(f"{self.name}: temporal stream takes {temporal.in_channels} channels, "
                             f"expected 2L = {2 * (frames - 1)}")
        self.spatial = spatial
        self.temporal = temporal
        self.flow = flow
        self.frames = frames
        self.channels = channels

    def streams(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, C, H, W] -> (Fs, Ft)``, each ``[B, D, h, w]``."""
        if clip.shape[1] != self.frames:
            raise ValueError(
                f"{self.name}: built for T={self.frames} frames (2L={2 * (self.frames - 1)} flow channels), "
                f"got T={clip.shape[1]} (shape {tuple(clip.shape)}); rebuild with ClipSpec(frames={clip.shape[1]})"
            )
        fs = self.spatial.maps(clip[:, clip.shape[1] // 2])
        flow = stack_flow(self.flow(clip))  # [B, T-1, 2, H, W] -> [B, 2L, H, W]
        ft = self.temporal.maps(flow)
        return fs, ft


class TwoStreamLogits(_TwoStreamBase):
    """Logit-level fusion: ``z = (g_s(GAP Fs) + g_t(GAP Ft)) / 2``."""

    def __init__(self, spatial: Backbone, temporal: Backbone, flow: nn.Module, head_s: ClassifierHead,
                 head_t: ClassifierHead, *, frames: int, channels: int = 3) -> None:
        super().__init__(spatial, temporal, flow, frames=frames, channels=channels, name="two_stream")
        self.head_s = head_s
        self.head_t = head_t

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        fs, ft = self.streams(clip)
        return (self.head_s(fs.mean(dim=(2, 3))) + self.head_t(ft.mean(dim=(2, 3)))) / 2


class TwoStreamFeatureMaps(_TwoStreamBase):
    """Feature-map fusion: ``F = fusion(Fs, Ft) [B, D', h, w] --GAP--> g --> z`` (ConvFusion or GatedFusion)."""

    def __init__(self, spatial: Backbone, temporal: Backbone, flow: nn.Module, fusion: nn.Module,
                 head: ClassifierHead, *, frames: int, channels: int = 3, name: str = "two_stream_conv") -> None:
        super().__init__(spatial, temporal, flow, frames=frames, channels=channels, name=name)
        self.fusion = fusion
        self.head = head

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        fs, ft = self.streams(clip)
        return self.head(self.fusion(fs, ft).mean(dim=(2, 3)))


def _streams(clip: ClipSpec, encoder: EncoderArgs) -> tuple[Backbone, Backbone]:
    """theta_s on the RGB frame, theta_t on the 2L = 2(T-1) stacked flow channels (separate weights)."""
    return encoder.build(clip.channels), encoder.build(2 * (clip.frames - 1), modality="flow")


def _feature_map_fusion(
    name: str, fusion: Callable[[int, int], nn.Module], *, clip: ClipSpec, num_classes: int, encoder: EncoderArgs
) -> "TwoStreamFeatureMaps":
    spatial, temporal = _streams(clip, encoder)
    mix = fusion(spatial.out_channels, temporal.out_channels)
    return TwoStreamFeatureMaps(spatial, temporal, HornSchunck(), mix, encoder.head(mix.output_dim, num_classes),
                                frames=clip.frames, channels=clip.channels, name=name)


@register_model(
    name="two_stream",
    family="order_aware",
    fusion_point="logit",
    needs_flow=True,
    order_aware=True,
    reference="notes §7; Simonyan & Zisserman 2014",
    min_frames=2,
)
def two_stream(*, clip: ClipSpec, num_classes: int, **encoder) -> TwoStreamLogits:
    """RGB middle frame + stacked Horn-Schunck flow, two backbones, logits averaged."""
    e = EncoderArgs.of("two_stream", **encoder)
    spatial, temporal = _streams(clip, e)
    d = spatial.out_channels
    return TwoStreamLogits(spatial, temporal, HornSchunck(), e.head(d, num_classes), e.head(d, num_classes),
                           frames=clip.frames, channels=clip.channels)


@register_model(
    name="two_stream_conv",
    family="order_aware",
    fusion_point="feature_map",
    needs_flow=True,
    order_aware=True,
    reference="notes §8 (concat + 1x1 conv); Feichtenhofer et al. 2016",
    min_frames=2,
)
def two_stream_conv(*, clip: ClipSpec, num_classes: int, **encoder) -> TwoStreamFeatureMaps:
    """Two streams fused on feature maps: concat(Fs, Ft) mixed by a 1x1 conv (2D -> D)."""
    return _feature_map_fusion("two_stream_conv", lambda cs, ct: ConvFusion(cs, ct, cs), clip=clip,
                               num_classes=num_classes, encoder=EncoderArgs.of("two_stream_conv", **encoder))


@register_model(
    name="two_stream_gated",
    family="order_aware",
    fusion_point="feature_map",
    needs_flow=True,
    order_aware=True,
    reference="notes §8 (gated fusion G = sigma(Conv([Fs, Ft])))",
    min_frames=2,
)
def two_stream_gated(*, clip: ClipSpec, num_classes: int, gate_kernel: int = 1, **encoder) -> TwoStreamFeatureMaps:
    """Two streams fused on feature maps by a learned per-position, per-channel gate G*Fs + (1-G)*Ft."""
    return _feature_map_fusion("two_stream_gated", lambda cs, ct: GatedFusion(cs, gate_kernel), clip=clip,
                               num_classes=num_classes, encoder=EncoderArgs.of("two_stream_gated", **encoder))
