"""Every registered model under the execution modes the harness offers: channels_last, bf16 autocast, torch.compile.

``bench run --channels-last`` once recorded every two-stream latency as a ``view size is not compatible``
error: the conversion also reached the Horn–Schunck kernels. These tests run forward (and one training step)
of all models in each mode, and compare against the default mode where the result must agree.
torch.compile: all models are traced by dynamo with the ``eager`` backend (graph capture and guards, seconds);
inductor code generation (30-85 s a model on 2 CPU cores) runs on r3d only (``COMPILE_CASES``).
"""
from __future__ import annotations

import pytest
import torch

from bench.measure._common import to_channels_last
from fusion_models import ClipSpec, build_model, list_models, model_info

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

B, K = 2, 5
CLIP = ClipSpec(frames=4, height=16, width=16)  # the smallest clip every model takes (min_frames <= 4)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    assert model_info(name).min_frames <= CLIP.frames
    return build_model(name, clip=CLIP, num_classes=K)


def _train_step(model: torch.nn.Module, x: torch.Tensor, autocast: bool = False) -> None:
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(x)
    assert logits.shape == (B, K)
    loss = torch.nn.functional.cross_entropy(logits.float(), torch.arange(B) % K)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_channels_last_matches_default_layout(name):
    model = _model(name).eval()
    x = CLIP.dummy(B)
    with torch.no_grad():
        ref = model(x)
        restore = to_channels_last(model)
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    _train_step(model, x)
    restore()
    assert all(t.is_contiguous() for t in [*model.parameters(), *model.buffers()])


@pytest.mark.parametrize("name", list_models())
def test_bf16_autocast_forward_and_train_step(name):
    model = _model(name).eval()
    x = CLIP.dummy(B)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (B, K) and torch.isfinite(out).all()
    _train_step(model, x, autocast=True)


# inductor code generation took 9 s for r3d, 30 s for pool_avg, 85 s for two_stream on 2 cores: r3d only
COMPILE_CASES = [(name, "eager") for name in list_models()] + [("r3d", "inductor")]


@pytest.mark.parametrize("name,backend", COMPILE_CASES)
def test_compile_matches_eager(name, backend):
    torch._dynamo.reset()
    model = _model(name).eval()
    x = CLIP.dummy(B)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model, backend=backend)(x)
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-4)
