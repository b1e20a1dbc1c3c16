"""A user Dataset registered by name runs end to end (CLI and library); a wrong shape is a ValueError
naming the expected and received shapes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.data import DatasetSpec, build_dataset, make_loader, register_dataset
from fusion_models import ClipSpec

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "my_data.py"


pytestmark = pytest.mark.usefixtures("isolated_plugins")  # tests/bench/conftest.py


def test_user_dataset_runs_end_to_end_through_the_cli(tmp_path):
    res = CliRunner().invoke(app, ["--plugin", str(EXAMPLE), "run", "--dataset", "drift", "--models", "pool_avg",
                                   "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    acc = [r for r in recs if r["measurement"] == "accuracy"]
    assert acc and all(r["status"] == "ok" and r["dataset"] == "drift" and r["num_classes"] == 2 for r in acc)


def test_user_dataset_in_the_library_and_wrong_shapes():
    class Bad(torch.utils.data.Dataset):
        num_classes = 3

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(4, 3, 16, 16), 1

    register_dataset("bad_shape")(lambda split, clip, seed: Bad())
    clip = ClipSpec(frames=4, height=32, width=32)
    ds = build_dataset(DatasetSpec(name="bad_shape"), clip, split="train")
    assert ds.num_classes == 3 and len(ds) == 4
    with pytest.raises(ValueError, match=r"expected a float clip of shape \[T, C, H, W\] = \(4, 3, 32, 32\), "
                                         r"got \(4, 3, 16, 16\)"):
        next(iter(make_loader(DatasetSpec(name="bad_shape"), clip, batch_size=2)))
    ok = build_dataset(DatasetSpec(name="bad_shape"), ClipSpec(frames=4, height=16, width=16), split="val")
    x, y = ok[0]
    assert x.shape == (4, 3, 16, 16) and y == 1
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("bad_shape")(lambda split, clip, seed: Bad())
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("ucf101")(lambda split, clip, seed: Bad())
