"""Recurrent aggregation (notes §6): an LSTM over per-frame vectors, a ConvLSTM over per-frame maps.

    lstm:      clip --f_theta + GAP per frame--> x_t [B, T, D] --LSTM (hidden D)--> h_T [B, D] --g_phi--> [B, K]
    conv_lstm: clip --f_theta per frame--> X_t [B, T, D, h, w] --ConvLSTM 3x3 (C_h = D)--> H_T [B, D, h, w]
               --GAP--> [B, D] --g_phi--> [B, K]
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, build_backbone
from .clip import ClipSpec, check_clip
from .layers import ClassifierHead, ConvLSTM, LSTMAggregator
from .registry import register_model


class LSTMClassifier(nn.Module):
    """Per-frame features -> ``nn.LSTM`` -> last hidden state -> head."""

    def __init__(self, backbone: Backbone, rnn: LSTMAggregator, head: ClassifierHead, *, channels: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        self.rnn = rnn
        self.head = head
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        check_clip(clip, channels=self.channels, min_frames=1, name="lstm")
        return self.head(self.rnn(self.backbone.per_frame(clip)))


class ConvLSTMClassifier(nn.Module):
    """Per-frame maps -> ConvLSTM -> ``H_T`` -> global average pool -> head."""

    def __init__(self, backbone: Backbone, rnn: ConvLSTM, head: ClassifierHead, *, channels: int = 3) -> None:
        super().__init__()
        self.backbone = backbone
        self.rnn = rnn
        self.head = head
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        check_clip(clip, channels=self.channels, min_frames=1, name="conv_lstm")
        return self.head(self.rnn(self.backbone.per_frame_maps(clip)).mean(dim=(2, 3)))


@register_model(
    name="lstm",
    family="order_aware",
    fusion_point="feature",
    order_aware=True,
    reference="notes §6 (standard LSTM); Donahue et al. 2015 (LRCN), Ng et al. 2015",
)
def lstm(
    *,
    clip: ClipSpec,
    num_classes: int,
    backbone: str = "small_cnn",
    pretrained: bool = False,
    width: int = 16,
    dropout: float = 0.0,
    hidden: int | None = None,
) -> LSTMClassifier:
    """LSTM over per-frame pooled features; the last hidden state is classified."""
    enc = build_backbone(backbone, in_channels=clip.channels, pretrained=pretrained, width=width)
    rnn = LSTMAggregator(enc.out_channels, hidden or enc.out_channels)
    return LSTMClassifier(enc, rnn, ClassifierHead(rnn.output_dim, num_classes, dropout=dropout), channels=clip.channels)


@register_model(
    name="conv_lstm",
    family="order_aware",
    fusion_point="feature_map",
    order_aware=True,
    reference="notes §6 (ConvLSTM equations); Shi et al. 2015",
)
def conv_lstm(
    *,
    clip: ClipSpec,
    num_classes: int,
    backbone: str = "small_cnn",
    pretrained: bool = False,
    width: int = 16,
    dropout: float = 0.0,
    hidden: int | None = None,
    kernel_size: int = 3,
) -> ConvLSTMClassifier:
    """ConvLSTM (one fused 3x3 conv for the four gates) over per-frame feature maps."""
    enc = build_backbone(backbone, in_channels=clip.channels, pretrained=pretrained, width=width)
    rnn = ConvLSTM(enc.out_channels, hidden or enc.out_channels, kernel_size)
    head = ClassifierHead(rnn.output_dim, num_classes, dropout=dropout)
    return ConvLSTMClassifier(enc, rnn, head, channels=clip.channels)
