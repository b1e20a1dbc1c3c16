"""The `bench` CLI through Typer's CliRunner: every command, the smoke pipeline, and bad input."""
import json

import pytest
from typer.testing import CliRunner

import bench.runner as runner_mod
from bench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_list_table_and_unknown_pattern():
    res = invoke("list", "pool_*", "--no-macs")
    assert res.exit_code == 0, res.output
    for name in ("pool_avg", "pool_max", "pool_attn"):
        assert name in res.output
    assert "lstm" not in res.output.replace("pool", "")
    bad = invoke("list", "pool_avj")
    assert bad.exit_code == 2 and "pool_avg" in bad.output and "Traceback" not in bad.output


def test_env():
    res = invoke("env", "--device", "cpu")
    assert res.exit_code == 0 and "torch_version" in res.output


@pytest.mark.parametrize("args, needle", [
    (["run", "--models", "nope"], "nope"),
    (["run", "--frames", "0"], "frames"),
    (["run", "--size", "7x"], "size"),
    (["run", "--seeds", ""], "seeds"),
    (["run", "--seeds", ","], "seeds"),
    (["run", "--dataset", "folder", "--root", "/no/such/dir"], "does not exist"),
    (["run", "--device", "tpu"], "device"),
    (["run", "--resume", "run-missing"], "not found"),
    (["ablate", "--vary", "speed=1,2"], "unknown knob"),
    (["report", "run-missing"], "not found"),
    (["compare", "run-missing"], "not found"),
])
def test_bad_input_is_one_line(tmp_path, args, needle):
    res = invoke(*args, *(["--out", tmp_path] if args[0] in ("run", "ablate") else []),
                 *(["--results", tmp_path] if args[0] in ("report", "compare") else []))
    assert res.exit_code != 0
    assert needle in res.output, res.output
    assert "Traceback" not in res.output


def test_smoke_run_report_compare(tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports"
    res = invoke("run", "--models", "single_frame,pool_avg,early_fusion,two_stream", "--profile", "smoke",
                 "--device", "cpu", "--out", results)
    assert res.exit_code == 0, res.output
    assert "bench report" in res.output
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["command"].startswith("bench run")
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert {r["model"] for r in recs} == {"single_frame", "pool_avg", "early_fusion", "two_stream"}
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs if r["status"] != "ok"]

    rep = invoke("report", run_dir.name, "--results", results, "--out", reports)
    assert rep.exit_code == 0, rep.output
    out = reports / run_dir.name
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert list((out / "figures").glob("*.png")) and list((out / "tables").glob("*.csv"))
    md = (out / "report.md").read_text()
    for name in ("single_frame", "pool_avg", "early_fusion", "two_stream"):
        assert name in md

    cmp = invoke("compare", run_dir.name, "--results", results, "--out", tmp_path / "cmp")
    assert cmp.exit_code == 0, cmp.output
    assert "two_stream" in cmp.output


def test_ctrl_c_keeps_records_and_says_how_to_resume(tmp_path, monkeypatch):
    real = runner_mod.Runner._costs

    def interrupt(self, job, *a, **kw):
        if job.model == "early_fusion":
            raise KeyboardInterrupt
        return real(self, job, *a, **kw)

    monkeypatch.setattr(runner_mod.Runner, "_costs", interrupt)
    res = invoke("run", "--models", "pool_avg,early_fusion", "--profile", "smoke", "--measure", "accuracy,params",
                 "--device", "cpu", "--out", tmp_path)
    assert res.exit_code == 130
    assert "resume with: bench run --resume" in res.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    recs = (run_dir / "records.jsonl").read_text().splitlines()
    assert len(recs) == 4  # pool_avg: accuracy + 2 params; early_fusion: accuracy
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"

    monkeypatch.setattr(runner_mod.Runner, "_costs", real)
    again = invoke("run", "--resume", run_dir.name, "--out", tmp_path)
    assert again.exit_code == 0, again.output
    keys = [json.loads(line)["key"] for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 6


def test_ablate_smoke(tmp_path):
    res = invoke("ablate", "--models", "pool_avg", "--vary", "frames=2,3", "--profile", "smoke",
                 "--measure", "params,flops", "--device", "cpu", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert sorted({json.loads(r["point"])["frames"] for r in recs}) == [2, 3]
    assert sorted({r["frames"] for r in recs if r["scale"] == "train"}) == [2, 3]


def test_flow_commands(tmp_path):
    res = invoke("flow", "throughput", "--sizes", "16", "--batches", "1", "--frames", "3", "--threads", "1",
                 "--csv", tmp_path / "t.csv")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t.csv").exists() and "farneback" in res.output.lower()
    rob = invoke("flow", "robustness", "--size", "24", "--sigmas", "0,0.05", "--pans", "0")
    assert rob.exit_code == 0, rob.output
    bad = invoke("flow", "throughput", "--sizes", "a")
    assert bad.exit_code == 2 and "--sizes" in bad.output


def test_real_video_path_end_to_end(tmp_path):
    """Synthetic clips exported as real mp4s (UCF-101 layout) train and evaluate through the same runner."""
    root = tmp_path / "ucf"
    exp = invoke("data", "export", "--out", root, "--videos-per-class", "3", "--num-shapes", "1",
                 "--video-frames", "16", "--size", "32")
    assert exp.exit_code == 0, exp.output
    res = invoke("run", "--dataset", "ucf101", "--root", root, "--models", "single_frame", "--profile", "smoke",
                 "--measure", "accuracy", "--device", "cpu", "--out", tmp_path / "results", "--epochs", "1")  # 8 training videos: too few for a stopping split
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    (rec,) = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert rec["status"] == "ok", rec["error"]
    assert rec["dataset"] == "ucf101" and rec["num_classes"] == 4
    assert rec["decoder"] in ("pyav", "torchcodec") and rec["skipped_videos"] == 0
    assert rec["video_acc_top1"] is not None  # clip logits averaged per video


def test_compare_says_setup_differences_first_and_refuses_runs_without_latency(tmp_path):
    from .report.conftest import write_run

    results = tmp_path / "results"
    write_run(results, "run-cpu", models={"single_frame": ("single_frame", "none", False, False, 0.24, 0.25)})
    write_run(results, "run-gpu", device="cuda:0", models={"single_frame": ("single_frame", "none", False, False, 0.24, 0.25)})
    res = invoke("compare", "run-cpu", "run-gpu", "--results", results, "--out", tmp_path / "cmp")
    assert res.exit_code == 0, res.output
    assert "runs differ in device: run-cpu cpu vs run-gpu cuda:0" in res.output
    assert res.output.index("runs differ in device") < res.output.index("single_frame")

    write_run(results, "run-nolat", models={"single_frame": ("single_frame", "none", False, False, 0.24, 0.25)})
    path = results / "run-nolat" / "records.jsonl"
    path.write_text("".join(ln + "\n" for ln in path.read_text().splitlines() if '"measurement": "latency"' not in ln
                            and '"measurement":"latency"' not in ln))
    bad = invoke("compare", "run-cpu", "run-nolat", "--results", results, "--out", tmp_path / "cmp2")
    assert bad.exit_code == 2 and "has no latency records" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1, bad.output
