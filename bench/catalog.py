"""The model catalogue behind ``bench list``: registry facts plus params/MACs at the default clip."""
from __future__ import annotations

from typing import Any

import torch

from fusion_models import build_model, list_models, model_info
from fusion_models.clip import ClipSpec

DEFAULT_CLASSES = 16  # the synthetic set's default: 4 shapes x 4 directions


def model_table(pattern: str | None = None, *, with_macs: bool = True, clip: ClipSpec | None = None,
                num_classes: int = DEFAULT_CLASSES) -> list[dict[str, Any]]:
    """One dict per registered model matching ``pattern`` (raises ``ValueError`` if none match)."""
    from .measure import count_flops, count_params

    clip = clip or ClipSpec()
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        torch.manual_seed(0)
        model = build_model(name, clip=clip, num_classes=num_classes).eval()
        pr = count_params(model)
        row: dict[str, Any] = {
            "model": name, "family": info.family, "fuses time at": info.fusion_point,
            "order-aware": info.order_aware, "needs flow": info.needs_flow,
            "params": pr.total, "first conv params": pr.first_conv,
        }
        if with_macs:
            row["GMACs"] = count_flops(model, clip.dummy(1)).gmacs
        rows.append(row)
    return rows
