"""Late fusion at the logits (notes §3): every frame classified on its own, the logits averaged.

    clip [B, T, C, H, W] --f_theta per frame--> x_t [B, T, D] --g_phi per frame--> z_t [B, T, K]
        --1/T sum_t--> z [B, K]

A ``PerFrameClassifier`` with ``fuse="logit"``; with T=1 it is ``single_frame`` (same attribute names, so
the two share a state dict). (Feature-level late fusion, ``x_clip = 1/T sum_t x_t``, is ``pool_avg`` in
``pooling.py``.)
"""
from __future__ import annotations

from .clip import ClipSpec
from .layers import TemporalPool
from .encoder import EncoderArgs
from .per_frame import PerFrameClassifier, per_frame_model
from .registry import register_model


@register_model(
    name="late_fusion",
    family="order_invariant",
    fusion_point="logit",
    order_aware=False,
    reference="notes §3 (logit-level fusion); Karpathy et al. 2014",
)
def late_fusion(*, clip: ClipSpec, num_classes: int, **encoder) -> PerFrameClassifier:
    """Per-frame logits averaged over time."""
    return per_frame_model(lambda k: TemporalPool(k, "avg"), clip=clip, num_classes=num_classes,
                           encoder=EncoderArgs.of("late_fusion", **encoder), fuse="logit")
