"""One test over every registered model: shape, finite outputs, a backward pass reaching every parameter.

Also checks the model table in docs/models.md against the real models (params at the default clip).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from fusion_models import ClipSpec, build_model, list_models, model_info

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

B, K = 2, 5
FRAMES = [4, 8, 16]  # all fast at batch 2, 32x32 (the slowest case ~0.05 s)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name, frames):
    if frames < model_info(name).min_frames:
        pytest.skip(f"{name} needs {model_info(name).min_frames} frames")
    torch.manual_seed(0)
    clip = ClipSpec(frames=frames, height=32, width=32)
    model = build_model(name, clip=clip, num_classes=K).train()
    x = clip.dummy(B).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (B, K)
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} gets no gradient (unused parameter?)"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_is_deterministic_and_batch_independent(name):
    clip = ClipSpec(frames=4, height=16, width=16)
    model = build_model(name, clip=clip, num_classes=K).eval()
    x = clip.dummy(3)
    with torch.no_grad():
        full = model(x)
        one = model(x[1:2])
    torch.testing.assert_close(one, full[1:2], rtol=1e-4, atol=1e-5)


def _docs_table() -> dict[str, list[str]]:
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_docs_model_table_matches_the_registry():
    """docs/models.md: one row per model; family, fusion point, order, flow and params agree with the code."""
    rows = _docs_table()
    assert list(rows) == list_models()
    for name, (_, family, fusion_point, order_aware, needs_flow, params, *_rest) in rows.items():
        info = model_info(name)
        assert (family, fusion_point) == (info.family, info.fusion_point), name
        assert order_aware == ("yes" if info.order_aware else "no"), name
        assert needs_flow == ("yes" if info.needs_flow else "no"), name
        model = build_model(name, clip=ClipSpec(), num_classes=16)
        assert int(re.sub(r"[,_ ]", "", params)) == sum(p.numel() for p in model.parameters()), name


@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "resnet18"])
@pytest.mark.slow
def test_every_model_runs_on_the_torchvision_backbones(backbone):
    """The contract holds for every model with the larger encoders too (~2 s each on 2 CPU cores)."""
    clip = ClipSpec(frames=4, height=32, width=32)
    for name in list_models():
        model = build_model(name, clip=clip, num_classes=K, backbone=backbone).train()
        logits = model(clip.dummy(B))
        assert logits.shape == (B, K), name
        logits.sum().backward()
        assert all(p.grad is not None for p in model.parameters()), name
