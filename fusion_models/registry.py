"""Model registry: ``register_model`` / ``list_models`` / ``build_model`` / ``model_info``.

A builder is a keyword-only function ``(*, clip, num_classes, backbone, **overrides) -> nn.Module``;
the decorator stores it with the facts a report needs (family, where time is fused, flow, order).
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .clip import ClipCheck, ClipSpec


@dataclass(frozen=True)
class ModelInfo:
    """What the report needs to know about a registered model without building it."""

    name: str
    family: str            # ceiling family: "single_frame" | "order_invariant" | "order_aware"
    fusion_point: str      # where time is fused: "none" | "input" | "feature_map" | "feature" | "logit" | ...
    needs_flow: bool       # computes optical flow inside forward (its cost is counted)
    order_aware: bool      # output changes when the frames are reversed
    reference: str
    description: str = ""
    min_frames: int = 1
    builder: Callable[..., nn.Module] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


_REGISTRY: dict[str, ModelInfo] = {}


class UnknownModelError(ValueError):
    """A model name or pattern that matches nothing registered."""


def register_model(
    *,
    name: str,
    family: str,
    fusion_point: str,
    needs_flow: bool = False,
    order_aware: bool,
    reference: str,
    description: str = "",
    min_frames: int = 1,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder under ``name``; a duplicate name is an error."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        @functools.wraps(builder)
        def build(*, clip: ClipSpec, num_classes: int, **kwargs) -> nn.Module:
            model = builder(clip=clip, num_classes=num_classes, **kwargs)
            model.model_name = name  # type: ignore[attr-defined]
            model.register_forward_pre_hook(
                ClipCheck(name, channels=clip.channels, min_frames=min_frames), with_kwargs=True
            )
            return model

        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__})")
        _REGISTRY[name] = ModelInfo(
            name=name,
            family=family,
            fusion_point=fusion_point,
            needs_flow=needs_flow,
            order_aware=order_aware,
            reference=reference,
            description=description or (inspect.getdoc(builder) or "").split("\n")[0],
            min_frames=min_frames,
            builder=build,
        )
        return build

    return deco


def _close(name: str) -> str:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_REGISTRY))}"


def list_models(pattern: str | list[str] | None = None, *, exclude: str | list[str] | None = None) -> list[str]:
    """Registered names matching any wildcard ``pattern`` ("*", "pool_*", "a,b"), minus ``exclude``; sorted
    in registration order. A pattern that matches nothing raises ``UnknownModelError``."""
    names = list(_REGISTRY)
    pats = _split(pattern) or ["*"]
    chosen: list[str] = []
    for pat in pats:
        pat = "*" if pat == "all" else pat
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise UnknownModelError(f"no model matches {pat!r}{_close(pat)}")
        chosen += [h for h in hits if h not in chosen]
    for pat in _split(exclude):
        chosen = [n for n in chosen if not fnmatch.fnmatchcase(n, pat)]
    return chosen


def _split(pattern: str | list[str] | None) -> list[str]:
    if pattern is None:
        return []
    if isinstance(pattern, str):
        pattern = pattern.split(",")
    return [p.strip() for p in pattern if p.strip()]


def model_info(name: str) -> ModelInfo:
    """The registered ``ModelInfo`` for ``name``."""
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}{_close(name)}")
    return _REGISTRY[name]


def build_model(
    name: str,
    *,
    clip: ClipSpec | None = None,
    num_classes: int,
    backbone: str | None = None,
    **overrides,
) -> nn.Module:
    """Build ``name`` for clips of shape ``clip`` with ``num_classes`` logits.

    ``backbone=None`` and ``None``-valued overrides mean "the model's default" (as in timm's create_model).
    """
    info = model_info(name)
    clip = clip or ClipSpec()
    if clip.frames < info.min_frames:
        raise ValueError(f"{name} needs at least {info.min_frames} frames, got ClipSpec.frames={clip.frames}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    if backbone is not None:
        kwargs["backbone"] = backbone
    return info.builder(clip=clip, num_classes=num_classes, **kwargs)
