"""Order tests: reversing the frames leaves order-invariant models unchanged and changes order-aware ones.

The expectation comes from ``model_info(name).order_aware``, so a newly registered model is covered and
a wrong registry flag fails here.
"""
from __future__ import annotations

import pytest
import torch

from fusion_models import ClipSpec, build_model, list_models, model_info

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CLIP = ClipSpec(frames=5, height=32, width=32)  # odd T: the middle frame stays the middle frame
# Float noise moves an order-invariant output by ~1e-7 of its scale; order-aware models at random init
# move by >= 5e-4 on this clip (measured). 1e-5 sits far from both.
ORDER_EFFECT = 1e-5


def moving_blobs(batch: int = 2, seed: int = 1) -> torch.Tensor:
    """``[B, T, 3, H, W]``: a coloured Gaussian blob moving diagonally over a weak noise background, so
    that optical flow, frame differences and frame order all carry a real signal."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    clip = 0.3 * torch.rand(batch, CLIP.frames, 3, 32, 32, generator=g)
    colour = torch.rand(batch, 3, 1, 1, generator=g)
    for t in range(CLIP.frames):
        cx, cy = 8 + 3 * t, 12 + 2 * t
        clip[:, t] += colour * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 18.0)
    return clip


@pytest.mark.parametrize("name", list_models())
def test_reversing_frames(name):
    torch.manual_seed(0)
    model = build_model(name, clip=CLIP, num_classes=4).eval()
    clip = moving_blobs()
    with torch.no_grad():
        out = model(clip)
        rev = model(clip.flip(1))
    scale = out.abs().max().item()
    change = (out - rev).abs().max().item()
    if model_info(name).order_aware:
        assert change > ORDER_EFFECT * scale, f"{name} is registered order-aware but ignores order ({change:.1e})"
    else:  # single_frame too: with T odd the middle frame stays the middle frame
        torch.testing.assert_close(rev, out, rtol=1e-5, atol=0.1 * ORDER_EFFECT * scale)


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).family == "order_invariant"])
def test_order_invariant_models_ignore_any_permutation(name):
    torch.manual_seed(0)
    model = build_model(name, clip=CLIP, num_classes=4).eval()
    clip = moving_blobs(seed=2)
    with torch.no_grad():
        out = model(clip)
        scale = out.abs().max().item()
        torch.testing.assert_close(model(clip[:, [3, 0, 4, 2, 1]]), out, rtol=1e-5, atol=0.1 * ORDER_EFFECT * scale)
