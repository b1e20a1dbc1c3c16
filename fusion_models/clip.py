"""ClipSpec: the shape contract every model and loader agrees on.

A clip is a float tensor ``[B, T, C, H, W]``; models return logits ``[B, K]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClipSpec:
    """Shape of one clip: ``frames`` x ``channels`` x ``height`` x ``width`` (``[T, C, H, W]``)."""

    frames: int = 8       # T: 8 frames at 32x32 keeps the default run on a 2-core CPU in minutes
    height: int = 32
    width: int = 32
    channels: int = 3     # RGB

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ClipSpec.{name} must be a positive int, got {value!r}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, C, H, W)``."""
        return (self.frames, self.channels, self.height, self.width)

    def with_(self, **changes: int) -> "ClipSpec":
        """A copy with some fields replaced."""
        from dataclasses import replace

        return replace(self, **changes)

    def dummy(self, batch: int = 1, *, device: str | torch.device = "cpu", seed: int = 0) -> torch.Tensor:
        """A deterministic random clip ``[batch, T, C, H, W]`` in [0, 1]."""
        g = torch.Generator().manual_seed(seed)
        return torch.rand((batch, *self.shape), generator=g).to(device)

    def __str__(self) -> str:
        return f"T{self.frames}x{self.height}x{self.width}"


def check_clip(clip: torch.Tensor, *, channels: int = 3, min_frames: int = 1, name: str = "model") -> None:
    """Raise ``ValueError`` unless ``clip`` is a float ``[B, T, C, H, W]`` with enough frames."""
    if not isinstance(clip, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor clip [B, T, C, H, W], got {type(clip).__name__}")
    if clip.dim() != 5:
        raise ValueError(
            f"{name}: expected a clip of rank 5 [B, T, C, H, W], got rank {clip.dim()} with shape {tuple(clip.shape)}"
        )
    if not clip.is_floating_point():
        raise ValueError(f"{name}: expected a float clip, got dtype {clip.dtype} (convert uint8 with clip.float() / 255)")
    if clip.shape[2] != channels:
        raise ValueError(
            f"{name}: expected {channels} channels at dim 2 of [B, T, C, H, W], got {clip.shape[2]} (shape {tuple(clip.shape)})"
        )
    if clip.shape[1] < min_frames:
        raise ValueError(f"{name}: needs at least {min_frames} frames, got T={clip.shape[1]} (shape {tuple(clip.shape)})")


class ClipCheck:
    """Forward pre-hook the registry puts on every model it builds: ``check_clip`` with the model's registered
    name, its clip's channel count and ``ModelInfo.min_frames``, so no model restates them in ``forward``."""

    def __init__(self, name: str, *, channels: int, min_frames: int) -> None:
        self.name, self.channels, self.min_frames = name, channels, min_frames

    def __call__(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        clip = args[0] if args else next(iter(kwargs.values()), None)
        check_clip(clip, channels=self.channels, min_frames=self.min_frames, name=self.name)
