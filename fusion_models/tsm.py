"""Temporal Shift Module (Lin et al. 2019): the shared backbone with a fraction of its channels shifted
one step along time before the convolutions of its blocks; logits averaged over frames (TSN consensus).

    clip [B, T, C, H, W] --fold frames into the batch--> [B*T, C, H, W] --backbone, where each wrapped conv
    first sees shift_t(x):  channels [0, C/8)     <- x_{t+1}   (zero at t = T-1)
                            channels [C/8, 2C/8)  <- x_{t-1}   (zero at t = 0)
                            channels [2C/8, C)    <- x_t
    --> x_t [B, T, D] --g_phi per frame--> z_t [B, T, K] --1/T sum_t--> z [B, K]

The shift is data movement: no parameter and no multiply-add, so ``tsm`` has exactly ``late_fusion``'s
parameters and (up to the zero-padding copies) its MACs; the only thing that differs is that neighbouring
frames exchange a quarter of their channels inside every block.

Where the shift goes is the backbone's to say (``Backbone.shift_sites``; the built-in and adapted ones read it
off their structure, ``adapter.shift_sites``, no table per name): before the first conv of every outermost *residual* module (one whose forward adds two tensors that both
depend on its input: the paper's "residual shift", so the identity path keeps each frame's own features);
a backbone with no residual module gets the in-place shift before every conv but the first (which sees
pixels). For the built-in three this gives:
- ``small_cnn``: before the conv of every block after the first;
- ``resnet18``: before ``conv1`` of every BasicBlock;
- ``mobilenet_v3_small``: before the first conv of every inverted-residual block that has a residual.

The shift is zero-padded, not cyclic: a cyclic shift would let the last frame read the first one, so a
reversed clip would differ from the original only at the seams; with zero padding the model is
order-aware in the same way as a temporal convolution of extent 3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone
from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import ClassifierHead, TemporalPool
from .per_frame import PerFrameClassifier
from .registry import register_model


def temporal_shift(x: torch.Tensor, fold: int) -> torch.Tensor:
    """``[B, T, C, ...] -> [B, T, C, ...]``: channels ``[0, fold)`` take frame t+1's values, ``[fold, 2 fold)``
    frame t-1's, the rest stay; the missing neighbour at either end is zero."""
    if fold == 0:
        return x
    rest = (0, 0) * (x.dim() - 2)  # F.pad lists dims last-first: nothing on C, H, W, then (before, after) on t
    fwd = F.pad(x[:, 1:, :fold], (*rest, 0, 1))  # t <- t+1, zero after the last frame
    bwd = F.pad(x[:, :-1, fold : 2 * fold], (*rest, 1, 0))  # t <- t-1, zero before the first
    return torch.cat([fwd, bwd, x[:, :, 2 * fold :]], dim=2)


class TemporalShift(nn.Module):
    """Wraps a frame-level module ``net``: ``[B*T, C, H, W] --shift over t--> net``.

    ``frames`` (T) is set by the owning model before every forward pass, so one model takes any T; a
    shift needs to know where one clip ends and the next begins inside the folded batch.
    """

    def __init__(self, net: nn.Module, channels: int, *, fold_div: int = 8) -> None:
        super().__init__()
        if fold_div < 2:
            raise ValueError(f"fold_div must be >= 2 (two shifted folds must fit), got {fold_div}")
        self.net = net
        self.fold = channels // fold_div
        self.frames = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B*T, C, H, W] -> net(shifted)``."""
        x = temporal_shift(x.unflatten(0, (-1, self.frames)), self.fold).flatten(0, 1)
        return self.net(x)


def insert_temporal_shift(enc: Backbone, *, fold_div: int = 8) -> list[TemporalShift]:
    """Wrap the modules ``enc.shift_sites()`` names in ``TemporalShift`` (in place); returns the wrappers.
    A backbone that names none is a ``ValueError`` (a TSM without shifts would be late fusion)."""
    sites = enc.shift_sites()
    if not sites:
        raise ValueError(f"tsm: backbone {enc.name} declares no temporal-shift site (Backbone.shift_sites is empty: "
                         f"no residual block and no conv after its first)")
    shifts = []
    for path, channels in sites:
        parent_path, _, leaf = path.rpartition(".")
        parent = enc.features.get_submodule(parent_path)
        shift = TemporalShift(getattr(parent, leaf), channels, fold_div=fold_div)
        setattr(parent, leaf, shift)
        shifts.append(shift)
    return shifts


class TSM(PerFrameClassifier):
    """Shifted backbone per frame, per-frame logits averaged: ``z = 1/T sum_t g(f_shift(I)_t)`` (late fusion's
    ``PerFrameClassifier`` with the shifts inserted in its backbone)."""

    def __init__(self, backbone: Backbone, head: ClassifierHead, *, fold_div: int = 8) -> None:
        super().__init__(backbone, TemporalPool(head.output_dim, "avg"), head, fuse="logit")
        self.shifts = insert_temporal_shift(backbone, fold_div=fold_div)  # plain list: modules live in backbone
        self.fold_div = fold_div

    def frame_features(self, clip: torch.Tensor) -> torch.Tensor:
        """The shifts learn T (where one clip ends in the folded batch), then the backbone runs per frame."""
        for s in self.shifts:
            s.frames = clip.shape[1]
        return super().frame_features(clip)


@register_model(
    name="tsm",
    family="order_aware",
    fusion_point="feature_map",
    order_aware=True,
    reference="Lin, Gan, Han 2019, TSM: Temporal Shift Module for Efficient Video Understanding (ICCV)",
    min_frames=2,
)
def tsm(*, clip: ClipSpec, num_classes: int, fold_div: int = 8, **encoder) -> TSM:
    """Shared backbone with 1/8 channels shifted forward and 1/8 backward in time in every block."""
    e = EncoderArgs.of("tsm", **encoder)
    enc = e.build(clip.channels)
    return TSM(enc, e.head(enc.out_channels, num_classes), fold_div=fold_div)
