"""--pretrained / --weights: a run starts its training backbone from local weights only; bad paths are one line."""
from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.config import run_spec_from_dict
from bench.plan import RunOptions, build_run_spec
from bench.runner import Runner
from bench.results import RunStore


def _spec(tmp_path, **kw):
    return build_run_spec(RunOptions(models="single_frame", profile="smoke", train_size=40, val_size=16, **kw),
                          resolved_device="cpu")


def test_weights_file_initialises_the_training_backbone_and_travels(tmp_path):
    import torchvision

    torch.manual_seed(123)
    src = torchvision.models.mobilenet_v3_small()
    path = tmp_path / "mnv3.pth"
    torch.save(src.state_dict(), path)
    spec = _spec(tmp_path, backbone="tv:mobilenet_v3_small", weights=str(path))
    assert spec.weights == str(path) and not spec.pretrained
    model = Runner(RunStore.create(tmp_path / "runs", "r"))._build("single_frame", spec.clip, spec.backbone, spec, 16, 0)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    torch.testing.assert_close(first.weight, src.features[0][0].weight)  # the file's weights, not the seed's init
    fresh = Runner(RunStore.create(tmp_path / "runs", "s"))._build("single_frame", spec.clip, "resnet18", spec, 16, 0)
    assert fresh is not None  # a deployment backbone (costs) is built without the training backbone's file
    again = run_spec_from_dict(json.loads(json.dumps(spec.to_dict())))  # resume keeps it
    assert again.weights == spec.weights and again.pretrained is False


def test_bad_weights_and_pretrained_small_cnn_are_one_line(tmp_path):
    runner = CliRunner()
    out = tmp_path / "r"
    cases = [
        (["--weights", str(tmp_path / "missing.pth"), "--backbone", "resnet18"], "no such file"),
        (["--weights", str(tmp_path)], "no such file"),
        (["--pretrained"], "small_cnn has no pretrained weights"),
    ]
    for args, needle in cases:
        res = runner.invoke(app, ["run", "--models", "single_frame", "--profile", "smoke", "--out", str(out), *args])
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and "Traceback" not in res.output, res.output
    (tmp_path / "w.pth").write_bytes(b"")
    res = runner.invoke(app, ["run", "--models", "single_frame", "--profile", "smoke", "--out", str(out),
                              "--weights", str(tmp_path / "w.pth")])
    assert res.exit_code == 2 and "small_cnn has no classifier" in res.output, res.output
