"""One per-frame classifier for every model that runs the shared 2D backbone frame by frame and fuses
time after it (in the spirit of PyTorchVideo's ``Net(blocks)`` and torchvision's ``VideoResNet``):

    clip [B, T, C, H, W] --select (optional)--> [B, T', C, H, W]
        --f_theta per frame--> x_t [B, T', D] (features="pooled") | X_t [B, T', D, h, w] (features="maps")
        fuse="feature": --aggregator--> [B, D'] --g_phi--> z [B, K]
        fuse="logit":   --g_phi per frame--> z_t [B, T', K] --aggregator--> z [B, K]

``single_frame`` (select the middle frame, T' = 1), ``late_fusion`` (logit fusion), the three temporal
poolings, ``lstm``, ``conv_lstm`` and ``temporal_transformer`` are this class with different parts; a model
differs from another only in the part it swaps. Clip checks live in the registry (one forward pre-hook
built from ``ModelInfo``), not in ``forward``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .backbone import Backbone
from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import ClassifierHead

FEATURES = ("pooled", "maps")
FUSE_AT = ("feature", "logit")


class MiddleFrame(nn.Module):
    """``[B, T, C, H, W] -> [B, 1, C, H, W]``: frame ``I_{T//2}`` only (the others are never read)."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        mid = clip.shape[1] // 2
        return clip[:, mid : mid + 1]


class OnlyFrame(nn.Module):
    """``[B, 1, ...] -> [B, ...]``: the aggregator of a one-frame input (no arithmetic, no FLOPs)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(1)


class SpatialMean(nn.Module):
    """``[B, D, h, w] -> [B, D]``: global average pool after a map aggregator (ConvLSTM's ``H_T``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class PerFrameClassifier(nn.Module):
    """``backbone`` per frame -> ``aggregator`` -> ``head`` (or ``head`` -> ``aggregator`` with
    ``fuse="logit"``); see the module docstring. ``select`` picks frames before the backbone runs."""

    def __init__(
        self,
        backbone: Backbone,
        aggregator: nn.Module,
        head: ClassifierHead,
        *,
        features: str = "pooled",
        fuse: str = "feature",
        select: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if fuse not in FUSE_AT:
            raise ValueError(f"fuse must be one of {FUSE_AT}, got {fuse!r}")
        if fuse == "logit" and features != "pooled":
            raise ValueError("logit fusion classifies pooled per-frame features; use features='pooled'")
        self.select = select
        self.backbone = backbone
        self.aggregator = aggregator
        self.head = head
        self.features = features
        self.fuse = fuse

    def frame_features(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, T', D]`` or ``[B, T', D, h, w]``: what the aggregator (or the per-frame
        head) reads."""
        if self.select is not None:
            clip = self.select(clip)
        return self.backbone.per_frame(clip) if self.features == "pooled" else self.backbone.per_frame_maps(clip)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        x = self.frame_features(clip)
        if self.fuse == "logit":
            return self.aggregator(self.head(x))
        return self.head(self.aggregator(x))


def per_frame_model(
    aggregator: Callable[[int], nn.Module],
    *,
    clip: ClipSpec,
    num_classes: int,
    encoder: EncoderArgs,
    features: str = "pooled",
    fuse: str = "feature",
    select: nn.Module | None = None,
) -> PerFrameClassifier:
    """Build the shared backbone, size ``aggregator(dim)`` and the head from it. ``aggregator`` gets D (feature
    fusion) or K (logit fusion) and returns a module exposing ``output_dim``."""
    enc = encoder.build(clip.channels)
    if fuse == "logit":
        head = encoder.head(enc.out_channels, num_classes)
        agg = aggregator(num_classes)
    else:
        agg = aggregator(enc.out_channels)
        head = encoder.head(agg.output_dim, num_classes)
    return PerFrameClassifier(enc, agg, head, features=features, fuse=fuse, select=select)
