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
    assert res.exit_code == 2 and "not a readable state dict" in res.output, res.output


def test_a_pretraining_point_saves_each_seeds_encoder_and_a_later_point_starts_from_it(tmp_path):
    from dataclasses import replace

    from bench.weights import resolve
    from fusion_models import backbone_state

    SAVE_WEIGHTS = "{run}/weights/{point}-{model}-seed{seed}.pt"  # what bench study's pre-training uses

    base = build_run_spec(RunOptions(models="single_frame", profile="smoke", train_size=40, val_size=16,
                                     measure="accuracy", seeds=(0, 1)), resolved_device="cpu")
    pre = replace(base, save_weights=SAVE_WEIGHTS, point=(("save_weights", SAVE_WEIGHTS),))
    start = resolve(SAVE_WEIGHTS, run="{run}", point=pre.config_hash(), model="single_frame", seed="{seed}")
    tuned = replace(base, models=("early_fusion", "late_fusion"), weights=start, point=(("weights", start),))
    store = RunStore.create(tmp_path, "r")
    runner = Runner(store)
    initial, build = {}, runner._build

    def spy(name, clip, backbone, spec, num_classes, seed):  # the encoder each fine-tune starts from
        model = build(name, clip, backbone, spec, num_classes, seed)
        if spec is tuned:
            initial[(name, seed)] = backbone_state(model)
        return model

    runner._build = spy
    runner.run([pre, tuned])
    recs = store.records()
    assert [r["status"] for r in recs] == ["ok"] * 6
    files = {s: store.path / "weights" / f"{pre.config_hash()}-single_frame-seed{s}.pt" for s in (0, 1)}
    saved = {r["seed"]: r["saved_weights"] for r in recs if r["model"] == "single_frame"}
    assert saved == {s: str(f) for s, f in files.items()}
    assert sorted(p.name for p in files[0].parent.iterdir()) == sorted(f.name for f in files.values())  # no temp left
    state = {s: torch.load(f, weights_only=True) for s, f in files.items()}
    assert not torch.equal(state[0]["0.0.weight"], state[1]["0.0.weight"])  # seed per seed
    for s in (0, 1):  # each seed's fine-tunes start from that seed's pre-training, early fusion's conv inflated
        w = state[s]["0.0.weight"]
        torch.testing.assert_close(initial[("late_fusion", s)]["0.0.weight"], w)
        torch.testing.assert_close(initial[("early_fusion", s)]["0.0.weight"], w.repeat(1, 4, 1, 1) / 4)
        torch.testing.assert_close(initial[("late_fusion", s)]["3.1.running_var"], state[s]["3.1.running_var"])
    mtimes = {s: f.stat().st_mtime_ns for s, f in files.items()}
    again = Runner(RunStore(tmp_path, "r"))  # a resume: nothing trained twice, the files reused as they are
    again.run([pre, tuned])
    assert again.summary.skipped == 6 and len(store.records()) == 6
    assert {s: f.stat().st_mtime_ns for s, f in files.items()} == mtimes
