"""Sweeps from a config file and --vary over any spec field; the recorded command re-runs verbatim."""
import json
import shlex

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.fields import FieldTypeError, coerce, get_field
from bench.sweep_config import load_config

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _records(run_dir):
    return [json.loads(ln) for ln in (run_dir / "records.jsonl").read_text().splitlines()]


def test_config_file_sweep_over_lr_and_backbone_in_smoke(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('models = ["pool_avg"]\nprofile = "smoke"\ndevice = "cpu"\nmeasure = "accuracy,params"\n'
                   'epochs = 1\n[vary]\nlr = [0.01, 0.003]\nbackbone = ["small_cnn", "mobilenet_v3_small"]\n')
    res = invoke("ablate", "--config", cfg, "--out", tmp_path / "r", "--format", "json")
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp_path / "r").iterdir()
    recs = _records(run_dir)
    points = {(json.loads(r["point"])["lr"], json.loads(r["point"])["backbone"]) for r in recs}
    assert points == {(0.01, "small_cnn"), (0.01, "mobilenet_v3_small"), (0.003, "small_cnn"),
                      (0.003, "mobilenet_v3_small")}
    assert {r["backbone"] for r in recs if r["scale"] == "train"} == {"small_cnn", "mobilenet_v3_small"}
    meta = json.loads((run_dir / "run.json").read_text())
    assert sorted({p["train"]["lr"] for p in meta["points"]}) == [0.003, 0.01]
    assert all(p["train"]["epochs"] == 1 for p in meta["points"])  # a plain field of the file reached every point
    assert len(json.loads(res.stdout)) == 4  # the summary: one row per point


@pytest.mark.parametrize("text, needles", [
    ("lrr = 0.1\n", ["bad.toml", "unknown field 'lrr'", "valid fields", "lr"]),
    ('lr = "fast"\n', ["bad.toml", "'lr'", "a number"]),
    ("channels_last = 3\n", ["bad.toml", "'channels_last'", "true or false"]),
    ("lr = = 1\n", ["bad.toml", "TOML syntax error", "line 1"]),
    ("[vary]\nbatch_size = [1, \"x\"]\n", ["bad.toml", "vary.batch_size", "an integer"]),
    ('seeds = "0"\n', ["bad.toml", "'seeds'", "list of integers"]),
])
def test_bad_config_is_one_line_naming_file_field_and_type(tmp_path, text, needles):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    res = invoke("ablate", "--config", bad, "--vary", "frames=2", "--out", tmp_path / "r")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_yaml_config_and_run_rejects_vary(tmp_path):
    pytest.importorskip("yaml")
    y = tmp_path / "c.yaml"
    y.write_text("lr: 0.02\nbackbone: small_cnn\nvary:\n  lr: [0.1]\n")
    cfg = load_config(y)
    assert cfg.fields == {"lr": 0.02, "backbone": "small_cnn"} and cfg.vary == [("lr", [0.1])]
    res = invoke("run", "--config", y, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "bench ablate --config" in res.output


def test_vary_any_field_and_unknown_lists_fields(tmp_path):
    res = invoke("ablate", "--models", "pool_avg", "--vary", "lr=0.1,0.01", "--vary", "weight_decay=0,0.1",
                 "--profile", "smoke", "--measure", "params", "--device", "cpu", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    (run_dir,) = tmp_path.iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert sorted((p["train"]["lr"], p["train"]["weight_decay"]) for p in meta["points"]) == [
        (0.01, 0.0), (0.01, 0.1), (0.1, 0.0), (0.1, 0.1)]
    bad = invoke("ablate", "--vary", "lrr=1", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "did you mean lr" in bad.output and "valid fields" in bad.output
    wrong = invoke("ablate", "--vary", "lr=fast", "--profile", "smoke", "--device", "cpu", "--out", tmp_path / "y")
    assert wrong.exit_code == 2 and "'lr' expects a number" in wrong.output


def test_coerce_types():
    assert coerce(get_field("channels_last"), "true") is True and coerce(get_field("lr"), 1) == 1.0
    assert coerce(get_field("measure"), "params+flops") == ("params", "flops")
    with pytest.raises(FieldTypeError, match="expects an integer"):
        coerce(get_field("batch_size"), 1.5)


def test_recorded_command_reruns_verbatim_with_booleans_and_lists(tmp_path):
    args = ["run", "--models", "pool_avg,single_frame", "--profile", "smoke", "--device", "cpu", "--seeds", "0,1",
            "--measure", "accuracy,params", "--channels-last", "--compile", "--out", tmp_path / "a"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    (run_a,) = (tmp_path / "a").iterdir()
    command = json.loads((run_a / "run.json").read_text())["command"]
    assert "--channels-last" in command and "True" not in command
    again = invoke(*shlex.split(command)[1:])
    assert again.exit_code == 0, again.output
    run_b = next(p for p in (tmp_path / "a").iterdir() if p != run_a)
    assert json.loads((run_b / "run.json").read_text())["command"] == command

    def key(r):
        return (r["model"], r["seed"], r["measurement"], r["scale"])

    a = {key(r): r for r in _records(run_a)}
    b = {key(r): r for r in _records(run_b)}
    assert a.keys() == b.keys()
    for k in a:
        for col in ("acc_top1", "params", "first_conv_params", "status"):
            assert a[k].get(col) == b[k].get(col), (k, col)  # bit for bit on the same machine and thread count


def test_clip_option_is_the_one_clip_syntax(tmp_path):
    res = invoke("run", "--models", "pool_avg", "--clip", "T3x24x24", "--profile", "smoke", "--measure", "params",
                 "--device", "cpu", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    (run_dir,) = tmp_path.iterdir()
    train = [r for r in _records(run_dir) if r["scale"] == "train"]
    assert {(r["frames"], r["height"], r["width"]) for r in train} == {(3, 24, 24)}
    both = invoke("run", "--clip", "T3x24x24", "--frames", "4", "--out", tmp_path / "x")
    assert both.exit_code == 2 and "--clip or --frames/--size" in both.output
    bad = invoke("run", "--clip", "8by32", "--out", tmp_path / "y")
    assert bad.exit_code == 2 and "T8x32x32" in bad.output and "Traceback" not in bad.output


def test_cost_clip_off_switches_the_deployment_costs_off():
    from bench.fields import apply_field
    from bench.plan import RunOptions, build_run_spec

    spec = build_run_spec(RunOptions(models="pool_avg", profile="smoke"), resolved_device="cpu")
    for off in ("off", "OFF", "0"):
        new, _ = apply_field(spec, "cost_clip", off)
        assert new.cost.enabled is False
    new, _ = apply_field(spec, "cost_clip", "T8x64x64")
    assert new.cost.enabled and (new.cost.clip.frames, new.cost.clip.height) == (8, 64)
    with pytest.raises(FieldTypeError):
        coerce(get_field("cost_clip"), "sideways")
