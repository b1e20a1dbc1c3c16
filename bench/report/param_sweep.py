"""Parameters against clip length T: from an ablation over ``frames`` when the runs hold one, otherwise by
building every model of the run at T in {1, 2, 4, 8, 16} on the meta device (shapes only, nothing allocated).

Why a separate file: it is the one place the report touches the models themselves (``fusion_models``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import pandas as pd

from .tables import SCALES, model_order, varied_knobs

PARAM_FRAMES = (1, 2, 4, 8, 16)


def params_vs_frames(
    df: pd.DataFrame,
    *,
    frames: Iterable[int] = PARAM_FRAMES,
    build: Callable[..., Any] | None = None,
) -> tuple[pd.DataFrame, str]:
    """``(table, source)``: params and first-conv params per model and T.

    From an ablation over ``frames`` when the runs hold one (``source="ablation"``); otherwise by building
    each model at every T with the run's backbone and classes (``source="built"``; params only, no forward).
    Columns: ``model, family, scale, frames, params, first_conv_params``.
    """
    ok = df[(df["measurement"] == "params") & (df["status"] == "ok")]
    if "frames" in varied_knobs(df) and not ok.empty:
        cols = ["model", "family", "scale", "frames"]
        t = (ok.sort_values("_model_sort").groupby(cols, sort=False)[["params", "first_conv_params"]]
             .median().reset_index())
        t["scale"] = t["scale"].map(lambda s: SCALES.get(s, s))
        return t.sort_values(["scale", "frames"], kind="stable").reset_index(drop=True), "ablation"
    return _built_params(df, frames=tuple(frames), build=build), "built"


def _built_params(df: pd.DataFrame, *, frames: tuple[int, ...], build: Callable[..., Any] | None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    cols = ["model", "family", "scale", "frames", "params", "first_conv_params", "error"]
    src = df[df["measurement"] == "params"]
    if src.empty:
        return pd.DataFrame(columns=cols)
    scale = "cost" if (src["scale"] == "cost").any() else "train"
    src = src[src["scale"] == scale]
    if build is None:
        try:
            build = _default_param_counter()
        except Exception as exc:  # noqa: BLE001 - no models to build is a note in the report, not a crash
            return pd.DataFrame([{"model": "", "error": f"cannot import fusion_models: {exc}"}], columns=cols)
    for model in model_order(src):
        r = src[src["model"] == model].iloc[0]
        for t in frames:
            try:
                counted = build(model, frames=int(t), height=_int(r["height"], 32), width=_int(r["width"], 32),
                              num_classes=_int(r["num_classes"], 16),
                              backbone=r["backbone"] if isinstance(r["backbone"], str) else None)
            except Exception as exc:  # noqa: BLE001 - a model that cannot be built at this T is skipped
                rows.append({"model": model, "family": r["family"], "scale": SCALES[scale], "frames": t,
                             "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:160]})
                continue
            if counted is None:  # T below the model's minimum (e.g. flow needs two frames): no point, no error
                continue
            p, fc = counted
            rows.append({"model": model, "family": r["family"], "scale": SCALES[scale], "frames": t,
                         "params": p, "first_conv_params": fc, "error": ""})
    return pd.DataFrame(rows, columns=cols)


def _int(v: Any, default: int) -> int:
    try:
        return int(v) if pd.notna(v) else default
    except (TypeError, ValueError):
        return default


_PARAM_CACHE: dict[tuple, tuple[int, int]] = {}


def _default_param_counter() -> Callable[..., tuple[int, int]]:
    import torch

    from fusion_models.clip import ClipSpec
    from fusion_models.registry import build_model, model_info

    def count(model: str, *, frames: int, height: int, width: int, num_classes: int, backbone: str | None):
        """``(params, first_conv_params)`` of ``model`` built for T=``frames``; ``None`` below its minimum T."""
        if frames < model_info(model).min_frames:
            return None
        key = (model, frames, height, width, num_classes, backbone)
        if key not in _PARAM_CACHE:
            clip = ClipSpec(frames=frames, height=height, width=width)
            try:  # on the meta device: shapes only, no memory and no weight init (13 resnet18s x 5 T in ~1 s)
                with torch.device("meta"):
                    net = build_model(model, clip=clip, num_classes=num_classes, backbone=backbone)
            except Exception:  # noqa: BLE001 - a builder that computes on real tensors: build it for real
                net = build_model(model, clip=clip, num_classes=num_classes, backbone=backbone)
            _PARAM_CACHE[key] = _count(net)
        return _PARAM_CACHE[key]

    return count


def _count(net: Any) -> tuple[int, int]:
    """``(total, first_conv)`` with the measurement's own definitions (shared tensors once), when importable."""
    try:
        from bench.measure.params import count_params

        res = count_params(net)
        return int(res.total), int(res.first_conv or 0)
    except ImportError:
        from torch import nn

        total = sum(p.numel() for p in {id(p): p for p in net.parameters()}.values())
        first = next((sum(p.numel() for p in m.parameters()) for m in net.modules()
                      if isinstance(m, (nn.Conv2d, nn.Conv3d))), 0)
        return total, first
