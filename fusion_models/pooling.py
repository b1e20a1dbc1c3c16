"""Feature-level temporal pooling (notes §4): per-frame features pooled over time, then classified.

    clip [B, T, C, H, W] --f_theta per frame + GAP--> x_t [B, T, D] --TemporalPool--> x [B, D] --g_phi--> z [B, K]

``pool_avg`` (x = 1/T sum_t x_t) is also the notes' feature-level late fusion; ``pool_max`` takes the
per-feature max over t; ``pool_attn`` weights frames by ``alpha = softmax_t(w^T x_t)``. Each is a
``PerFrameClassifier`` whose aggregator is ``TemporalPool(D, mode)``.
"""
from __future__ import annotations

from typing import Callable

from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import TemporalPool
from .per_frame import PerFrameClassifier, per_frame_model
from .registry import register_model

# (mode, reference, description): one registered model ``pool_<mode>`` each.
POOLINGS = (
    ("avg", "notes §3 (feature-level late fusion) and §4 (average pooling); Ng et al. 2015",
     "Per-frame features averaged over time (feature-level late fusion)."),
    ("max", "notes §4 (max pooling); Ng et al. 2015 (conv pooling)",
     "Per-feature max over time of per-frame features."),
    ("attn", "notes §4 (weighted pooling: s_t = w^T x_t, softmax over t)",
     "Attention-weighted sum of per-frame features (softmax over t of w^T x_t)."),
)


def _pooling(mode: str, doc: str) -> Callable[..., PerFrameClassifier]:
    def builder(*, clip: ClipSpec, num_classes: int, **encoder) -> PerFrameClassifier:
        return per_frame_model(lambda d: TemporalPool(d, mode), clip=clip, num_classes=num_classes,
                               encoder=EncoderArgs.of(f"pool_{mode}", **encoder))

    builder.__name__ = builder.__qualname__ = f"pool_{mode}"
    builder.__doc__ = doc
    return builder


for _mode, _reference, _doc in POOLINGS:
    register_model(
        name=f"pool_{_mode}", family="order_invariant", fusion_point="feature", order_aware=False, reference=_reference,
    )(_pooling(_mode, _doc))
