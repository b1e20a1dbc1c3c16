"""The shared encoder arguments every builder takes, in one place.

Every registered builder has the signature ``(*, clip, num_classes, <its own options>, **encoder)``; the
``encoder`` keywords are these five, with these defaults, for all 18 models:

    backbone="small_cnn"   the shared per-frame 2D encoder (``build_backbone``): a built-in name,
                           "timm:NAME", "tv:NAME", or a factory returning an nn.Module
    pretrained=False       load its weights from the local cache (never downloads)
    weights=None           or load them from this local state-dict file
    width=16               small_cnn's base width
    dropout=0.0            dropout before the classifier head g_phi
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from torch import nn

from .backbone import DEFAULT_BACKBONE, Backbone, build_backbone
from .layers import ClassifierHead


@dataclass(frozen=True)
class EncoderArgs:
    """``backbone``, ``pretrained``, ``weights``, ``width``, ``dropout`` (see the module docstring)."""

    backbone: "str | Callable[[], nn.Module]" = DEFAULT_BACKBONE
    pretrained: bool = False
    width: int = 16
    dropout: float = 0.0
    weights: str | None = None

    @classmethod
    def of(cls, model: str, **encoder: object) -> "EncoderArgs":
        """From a builder's ``**encoder``; an option neither the model nor the encoder takes is one clear error."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(encoder) - set(known))
        if unknown:
            raise ValueError(f"{model}: unknown option(s) {', '.join(unknown)} (encoder options: {', '.join(known)})")
        return cls(**encoder)  # type: ignore[arg-type]

    def build(self, in_channels: int, *, modality: str = "rgb") -> Backbone:
        """The shared backbone with its first conv taking ``in_channels``."""
        return build_backbone(self.backbone, in_channels=in_channels, pretrained=self.pretrained, width=self.width,
                              modality=modality, weights=self.weights)

    def head(self, in_dim: int, num_classes: int) -> ClassifierHead:
        """The classifier ``g_phi`` on ``in_dim`` features."""
        return ClassifierHead(in_dim, num_classes, dropout=self.dropout)
