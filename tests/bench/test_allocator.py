"""The allocator setting is exact: the same losses and weights with it on and off (fresh processes)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.allocator import tune_malloc

ROOT = Path(__file__).resolve().parents[2]

_TRAIN = r"""
import hashlib, json, torch
from bench.allocator import tune_malloc
setting = tune_malloc()
from bench.config import TrainSpec
from bench.train import train_and_evaluate
from fusion_models import build_model
from fusion_models.clip import ClipSpec
torch.set_num_threads(1)
clip = ClipSpec(frames=4, height=32, width=32)
g = torch.Generator().manual_seed(0)
batches = [(torch.rand(8, *clip.shape, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(3)]
torch.manual_seed(0)
model = build_model("pool_avg", clip=clip, num_classes=4)
res = train_and_evaluate(model, batches, batches[:1], spec=TrainSpec(epochs=2, batch_size=8), seed=0)
w = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(json.dumps({"setting": setting, "losses": [h["train_loss"] for h in res.history], "weights": w}))
"""


def _run(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    out = subprocess.run([sys.executable, "-c", _TRAIN], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_tuned_allocator_trains_bit_identically():
    on, off = _run({"FUSIONBENCH_MALLOC": "1"}), _run({"FUSIONBENCH_MALLOC": "0"})
    assert on["setting"].startswith("glibc mmap_threshold=32MiB")
    assert off["setting"] == "default (FUSIONBENCH_MALLOC=0)"
    assert on["losses"] == off["losses"] and len(on["losses"]) == 2
    assert on["weights"] == off["weights"]


def test_tune_malloc_is_idempotent_and_named():
    first = tune_malloc()
    assert tune_malloc() == first and first  # a non-empty description, recorded as provenance
