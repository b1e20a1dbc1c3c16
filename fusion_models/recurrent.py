"""Recurrent aggregation (notes §6): an LSTM over per-frame vectors, a ConvLSTM over per-frame maps.

    lstm:      clip --f_theta + GAP per frame--> x_t [B, T, D] --LSTM (hidden D)--> h_T [B, D] --g_phi--> [B, K]
    conv_lstm: clip --f_theta per frame--> X_t [B, T, D, h, w] --ConvLSTM 3x3 (C_h = D)--> H_T [B, D, h, w]
               --GAP--> [B, D] --g_phi--> [B, K]

Both are ``PerFrameClassifier``s: they differ in the aggregator and in whether it reads pooled vectors
(fusion after spatial pooling) or maps (before it).
"""
from __future__ import annotations

from torch import nn

from .clip import ClipSpec
from .layers import ConvLSTM, LSTMAggregator
from .encoder import EncoderArgs
from .per_frame import PerFrameClassifier, SpatialMean, per_frame_model
from .registry import register_model


@register_model(
    name="lstm",
    family="order_aware",
    fusion_point="feature",
    order_aware=True,
    reference="notes §6 (standard LSTM); Donahue et al. 2015 (LRCN), Ng et al. 2015",
)
def lstm(*, clip: ClipSpec, num_classes: int, hidden: int | None = None, **encoder) -> PerFrameClassifier:
    """LSTM over per-frame pooled features; the last hidden state is classified."""
    return per_frame_model(lambda d: LSTMAggregator(d, hidden or d), clip=clip, num_classes=num_classes,
                           encoder=EncoderArgs.of("lstm", **encoder))


def _conv_lstm_then_pool(dim: int, hidden: int, kernel_size: int) -> nn.Sequential:
    rnn = ConvLSTM(dim, hidden, kernel_size)
    agg = nn.Sequential(rnn, SpatialMean(rnn.output_dim))
    agg.output_dim = rnn.output_dim  # type: ignore[attr-defined]
    return agg


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
    hidden: int | None = None,
    kernel_size: int = 3,
    **encoder,
) -> PerFrameClassifier:
    """ConvLSTM (one fused 3x3 conv for the four gates) over per-frame feature maps."""
    return per_frame_model(lambda d: _conv_lstm_then_pool(d, hidden or d, kernel_size), clip=clip,
                           num_classes=num_classes, encoder=EncoderArgs.of("conv_lstm", **encoder), features="maps")
