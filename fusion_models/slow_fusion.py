"""Slow fusion (Karpathy et al. 2014): the temporal extent grows gradually through the shared backbone.

Three stages of the backbone each see *two* adjacent time steps of the stage below, stacked on channels
(a temporal convolution of extent 2, "valid" in time, realised as the stage's first conv inflated to 2C
inputs exactly as early fusion inflates the first conv to 3T):

    clip [B, T, C, H, W] --stage 1 per frame--> [B, T, c1, h, w]
        --pair (x_t, x_{t+s})--> [B, T1, 2 c1, h, w] --stage 2--> ... --pair--> stage 3 --pair--> stage 4
        --> [B, T3, D, h, w] --mean over t, h, w--> [B, D] --g_phi--> z [B, K]

    temporal_stride=1 (default): T1 = T-1, T2 = T-2, T3 = T-3; a top unit sees 4 frames; T >= 4.
    temporal_stride=2 (the paper's strided form): T1 = T/2, T2 = T/4, T3 = T/8; a top unit sees 8 frames;
    T must be a multiple of 8.

Why stride 1 by default: it takes any T >= 4 (the smoke profile and the shared tests use T = 4 and 5),
whereas the paper's stride 2 drops frames unless T is a multiple of 8. Karpathy et al. used extents
4 -> 2 -> 2 with stride 2 on 10 frames; here every fusing stage has extent 2 so the stages are the
backbone's own (only their entry convs get 2C inputs), keeping the width budget of the shared encoder.

Where the three fusing stages are is the backbone's to say (``Backbone.fusion_stages``; the built-in and
adapted ones read it off their structure, ``adapter.fusion_stages``, no table per name): the last three units (nested ``Sequential``s expanded) that lower the spatial resolution,
after the stem; each one's entry convs (those reading its input, through parameter-free layers) get 2C
inputs. For the built-in three this gives (none has an identity path):
- ``small_cnn``: blocks 2, 3, 4;
- ``resnet18``: ``layer2``, ``layer3``, ``layer4`` (their first BasicBlock's ``conv1`` and ``downsample``);
- ``mobilenet_v3_small``: ``features[2]``, ``[4]``, ``[9]`` (the stride-2 blocks' 1x1 expansion convs).
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, _set_submodule, inflate_conv
from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import ClassifierHead
from .registry import register_model

STAGES = 3  # fusing stages, each of temporal extent 2

def frames_ok(frames: int, temporal_stride: int) -> bool:
    """Whether every fusing stage gets whole pairs of time steps from a clip of ``frames``."""
    if temporal_stride == 1:
        return frames >= STAGES + 1
    return frames % (2**STAGES) == 0 and frames > 0


def _takes(temporal_stride: int) -> str:
    return "T >= 4" if temporal_stride == 1 else f"T a multiple of {2**STAGES} (8, 16, 24, ...)"


def pair_frames(x: torch.Tensor, stride: int) -> torch.Tensor:
    """``[B, T, C, h, w] -> [B, T', 2C, h, w]``: adjacent steps stacked on channels, ``(x_t, x_{t+1})``;
    stride 1 gives ``T' = T-1`` overlapping pairs, stride 2 ``T' = T/2`` disjoint ones."""
    if stride == 1:
        return torch.cat([x[:, :-1], x[:, 1:]], dim=2)
    return torch.cat([x[:, 0::2], x[:, 1::2]], dim=2)


class SlowFusion(nn.Module):
    """The shared backbone's stages run on time-step pairs of the stage below (see module docstring)."""

    def __init__(self, backbone: Backbone, head: ClassifierHead, *, temporal_stride: int = 1, channels: int = 3) -> None:
        super().__init__()
        if temporal_stride not in (1, 2):
            raise ValueError(f"slow_fusion: temporal_stride must be 1 or 2, got {temporal_stride!r}")
        stages = backbone.fusion_stages(STAGES)
        if len(stages) != STAGES:
            raise ValueError(f"slow_fusion: backbone {backbone.name} declares {len(stages)} fusing stage(s) "
                             f"(Backbone.fusion_stages); {STAGES} are needed")
        self.fuse_at = tuple(i for i, _ in stages)
        for _, paths in stages:
            for path in paths:
                conv = backbone.features.get_submodule(path)
                new = inflate_conv(conv, 2 * conv.in_channels, from_weights=backbone.pretrained)
                _set_submodule(backbone.features, path, new)
        self.units = [m for _, m in backbone.units()]  # plain list: the modules live in backbone
        self.backbone = backbone
        self.head = head
        self.temporal_stride = temporal_stride
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        if not frames_ok(clip.shape[1], self.temporal_stride):
            raise ValueError(
                f"slow_fusion (temporal_stride={self.temporal_stride}) takes {_takes(self.temporal_stride)}, "
                f"got T={clip.shape[1]} (shape {tuple(clip.shape)})"
            )
        return self.head(self.top_maps(clip).mean(dim=(1, 3, 4)))

    def top_maps(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, T3, D, h, w]``: the last stage's maps, one per fused time window."""
        x = clip
        for i, stage in enumerate(self.units):
            if i in self.fuse_at:
                x = pair_frames(x, self.temporal_stride)
            x = stage(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return x


@register_model(
    name="slow_fusion",
    family="order_aware",
    fusion_point="feature_map",
    order_aware=True,
    reference="Karpathy et al. 2014, Large-scale Video Classification with Convolutional Neural Networks (CVPR), slow fusion",
    min_frames=STAGES + 1,
)
def slow_fusion(*, clip: ClipSpec, num_classes: int, temporal_stride: int = 1, **encoder) -> SlowFusion:
    """Three backbone stages each fuse 2 time steps of the stage below (extent 2 -> 3 -> 4 frames)."""
    if not frames_ok(clip.frames, temporal_stride):
        raise ValueError(
            f"slow_fusion (temporal_stride={temporal_stride}) takes {_takes(temporal_stride)}, "
            f"got ClipSpec.frames={clip.frames}"
        )
    e = EncoderArgs.of("slow_fusion", **encoder)
    enc = e.build(clip.channels)
    return SlowFusion(enc, e.head(enc.out_channels, num_classes), temporal_stride=temporal_stride, channels=clip.channels)
