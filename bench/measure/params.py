"""Parameter counts: total, trainable, per top-level module, and the first convolution on its own.

The first conv is a column of its own because early fusion's input stack makes it grow as
``k^2 * C_in * T * C_out``: it is where stacking frames spends parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._common import to_json


@dataclass(frozen=True)
class ParamsResult:
    """Parameter counts (number of scalars). A weight shared by several modules is counted once,
    in ``by_module`` under the first top-level child (in module order) that owns it."""

    total: int
    trainable: int
    first_conv: int | None  # params of the first nn.Conv2d/nn.Conv3d in module order (weight + bias)
    first_conv_name: str | None  # its qualified name, e.g. "backbone.features.0.0"
    by_module: dict[str, int] = field(default_factory=dict)  # top-level child -> params; "" = root's own

    def as_dict(self) -> dict[str, Any]:
        """Flat record fields (``by_module`` as a compact JSON string)."""
        return {
            "params": self.total,
            "params_trainable": self.trainable,
            "first_conv_params": self.first_conv,
            "first_conv_name": self.first_conv_name,
            "params_by_module": to_json(self.by_module),
        }


def count_params(model: nn.Module) -> ParamsResult:
    """Count ``model``'s parameters; shared (tied) tensors once. Buffers (BN running stats) excluded."""
    seen: set[int] = set()
    total = trainable = 0
    by_module: dict[str, int] = {}
    owners = [(name, child) for name, child in model.named_children()]
    # Root-level parameters (registered directly on ``model``) go under "".
    groups = [("", [p for _, p in model.named_parameters(recurse=False)])]
    groups += [(name, list(child.parameters())) for name, child in owners]
    for name, params in groups:
        n = 0
        for p in params:
            if id(p) in seen:
                continue
            seen.add(id(p))
            n += p.numel()
            if p.requires_grad:
                trainable += p.numel()
        total += n
        if name or n:
            by_module[name] = n

    first_conv = first_name = None
    for name, sub in model.named_modules():
        if isinstance(sub, (nn.Conv2d, nn.Conv3d)):
            first_name = name
            first_conv = sum(p.numel() for p in sub.parameters(recurse=False))
            break
    return ParamsResult(total=total, trainable=trainable, first_conv=first_conv, first_conv_name=first_name, by_module=by_module)
