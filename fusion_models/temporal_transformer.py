"""Attention over time: per-frame features + learned temporal position embeddings + a small transformer
encoder (pre-norm), classified from a CLS token (as in ViViT's factorised encoder, Arnab et al. 2021).

    clip [B, T, C, H, W] --f_theta + GAP per frame--> x_t [B, T, D]
        --prepend CLS, + p_t (learned, one per position)--> [B, 1+T, D]
        --L x [x + MHA(LN(x)); x + FFN(LN(x))] (H heads, FFN D -> r D -> D)--> LN --> CLS [B, D] --g_phi--> z [B, K]

Without ``p_t`` self-attention is permutation-equivariant and the CLS readout would be order-invariant;
with them the model is order-aware. ``pool="mean"`` reads out the mean of the T frame tokens instead.

MACs per clip and layer, L = T + 1 tokens: ``4 L D^2`` (Q, K, V, out projections) ``+ 2 L^2 D`` (Q K^T and
A V) ``+ 2 r L D^2`` (FFN); ``transformer_macs`` gives the total and the tests check both counters on it.
In eval + no-grad PyTorch runs the layer as one fused kernel (``_transformer_encoder_layer_fwd``) that no FLOP
counter knows; ``bench.measure.count_flops`` turns that fast path off so the decomposed ops are counted.
"""
from __future__ import annotations

import torch
from torch import nn

from .clip import ClipSpec
from .encoder import EncoderArgs
from .per_frame import PerFrameClassifier, per_frame_model
from .registry import register_model

POOLS = ("cls", "mean")


def transformer_macs(tokens: int, dim: int, *, layers: int, mlp_ratio: int) -> int:
    """Multiply-adds of the encoder for one clip of ``tokens`` tokens of width ``dim`` (see module docstring)."""
    per_layer = 4 * tokens * dim * dim + 2 * tokens * tokens * dim + 2 * mlp_ratio * tokens * dim * dim
    return layers * per_layer


class TemporalEncoder(nn.Module):
    """``x_t [B, T, D] -> [B, D]``: CLS + position embeddings -> ``nn.TransformerEncoder`` -> readout."""

    def __init__(
        self, dim: int, *, max_frames: int, layers: int = 2, heads: int = 4, mlp_ratio: int = 2,
        dropout: float = 0.0, pool: str = "cls",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if dim % heads:
            raise ValueError(f"feature width D={dim} is not divisible by heads={heads}")
        self.pool = pool
        self.max_frames = max_frames
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos = nn.Parameter(torch.zeros(1, max_frames + (pool == "cls"), dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=mlp_ratio * dim, dropout=dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )
        # Nested tensors only apply to post-norm layers with padding masks; off to avoid a warning.
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.layers, self.heads, self.mlp_ratio = layers, heads, mlp_ratio
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, D]`` (T <= max_frames)."""
        if x.shape[1] > self.max_frames:
            raise ValueError(
                f"temporal_transformer: built for at most T={self.max_frames} frames (one position embedding "
                f"each), got T={x.shape[1]}; rebuild with ClipSpec(frames={x.shape[1]}) or max_frames="
            )
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        h = self.encoder(x + self.pos[:, : x.shape[1]])
        return h[:, 0] if self.cls is not None else h.mean(dim=1)


@register_model(
    name="temporal_transformer",
    family="order_aware",
    fusion_point="feature",
    order_aware=True,
    reference="Vaswani et al. 2017 (transformer); Arnab et al. 2021, ViViT (factorised encoder: per-frame then temporal)",
    min_frames=2,
)
def temporal_transformer(
    *,
    clip: ClipSpec,
    num_classes: int,
    layers: int = 2,
    heads: int = 4,
    mlp_ratio: int = 2,
    pool: str = "cls",
    max_frames: int | None = None,
    **encoder,
) -> PerFrameClassifier:
    """Per-frame features + learned temporal position embeddings -> 2-layer pre-norm transformer -> CLS -> head."""
    return per_frame_model(
        lambda d: TemporalEncoder(d, max_frames=max_frames or clip.frames, layers=layers, heads=heads,
                                  mlp_ratio=mlp_ratio, pool=pool),
        clip=clip, num_classes=num_classes, encoder=EncoderArgs.of("temporal_transformer", **encoder),
    )
