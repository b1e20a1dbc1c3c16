"""A new fusion model in one file (family order_invariant: it cannot tell a clip from its reversal, so its
synthetic ceiling is that family's): per-frame features of the shared backbone, fused by a temporal
difference pool (mean of x_t plus mean of |x_{t+1} - x_t|, concatenated), then the shared head.

    bench --plugin docs/examples/my_fusion.py list
    bench --plugin docs/examples/my_fusion.py run --models diff_pool,pool_avg --profile smoke
"""
import torch
from torch import nn

from fusion_models import register_model
from fusion_models.encoder import EncoderArgs
from fusion_models.per_frame import per_frame_model


class DiffPool(nn.Module):
    """``[B, T, D] -> [B, 2D]``: what the frames show, and how much it changes from frame to frame."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = 2 * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=1), (x[:, 1:] - x[:, :-1]).abs().mean(dim=1)], dim=1)


@register_model(name="diff_pool", family="order_invariant", fusion_point="feature", order_aware=False,
                reference="docs/add_your_own.md (example plug-in)", min_frames=2)
def diff_pool(*, clip, num_classes, **encoder):
    """Mean and mean absolute temporal difference of per-frame features."""
    return per_frame_model(DiffPool, clip=clip, num_classes=num_classes, encoder=EncoderArgs.of("diff_pool", **encoder))
