"""fusion_models: temporal-fusion architectures for video classification on one shared backbone.

Importing the package registers every architecture (each model module decorates its builders), in the
order below, which is the order ``list_models()`` and the model table use.

    from fusion_models import ClipSpec, build_model, list_models
    model = build_model("pool_attn", clip=ClipSpec(frames=8), num_classes=16)
    logits = model(clip)  # [B, T, C, H, W] -> [B, K]
"""
from .backbone import Backbone, backbone_state, build_backbone
from .clip import ClipSpec, check_clip
from .registry import ModelInfo, UnknownModelError, build_model, list_models, model_info, register_model

# Model modules, imported for their @register_model side effect (appearance -> input -> late -> pooled
# -> recurrent -> explicit flow -> learned motion).
from . import single_frame, early_fusion, late_fusion, pooling, recurrent  # noqa: E402,F401  isort: skip
from . import two_stream, hidden_two_stream  # noqa: E402,F401  isort: skip
from . import slow_fusion, tsm, conv3d, temporal_transformer  # noqa: E402,F401  isort: skip

__all__ = [
    "Backbone",
    "ClipSpec",
    "ModelInfo",
    "UnknownModelError",
    "backbone_state",
    "build_backbone",
    "build_model",
    "check_clip",
    "list_models",
    "model_info",
    "register_model",
]
