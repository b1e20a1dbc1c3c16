"""Runner: every failure becomes a record; a crashed run resumes with nothing lost or duplicated."""
import collections

import pytest
import torch

import bench.runner as runner_mod
from bench.plan import RunOptions, build_run_spec
from bench.results import RunStore
from bench.measure import resolve_device
from bench.measure.rounds import REMEASURED_OK
from bench.runner import Runner


def _spec(models="pool_avg,early_fusion", **kw):
    return build_run_spec(RunOptions(models=models, profile="smoke", train_size=40, val_size=16, **kw),
                          resolved_device="cpu")


def test_run_writes_every_measurement(tmp_path):
    store = RunStore.create(tmp_path, "r")
    summary = Runner(store).run([_spec()])
    recs = store.records()
    kinds = collections.Counter((r["model"], r["measurement"], r["scale"]) for r in recs)
    for model in ("pool_avg", "early_fusion"):
        assert kinds[(model, "accuracy", "train")] == 1
        for m in ("params", "flops", "latency", "memory"):
            assert kinds[(model, m, "train")] == 1 and kinds[(model, m, "cost")] == 1
    assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs if r["status"] != "ok"]
    acc = next(r for r in recs if r["measurement"] == "accuracy")
    for k in ("acc_top1", "acc_shape", "acc_direction", "ceiling_top1", "git_commit", "torch_version", "threads",
              "seed", "config", "device"):
        assert k in acc
    assert summary.counts == {"ok": len(recs)}


def test_errors_and_oom_become_records(tmp_path, monkeypatch):
    real = runner_mod.build_model

    def flaky(name, **kw):
        if name == "pool_avg":
            raise RuntimeError("broken on purpose")
        if name == "early_fusion" and kw["clip"].height > 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(name, **kw)

    monkeypatch.setattr(runner_mod, "build_model", flaky)
    store = RunStore.create(tmp_path, "r")
    spec = _spec(cost_clip="T4x48x48", measure="accuracy,params")
    Runner(store).run([spec])
    recs = store.records()
    pool = [r for r in recs if r["model"] == "pool_avg"]
    assert pool and all(r["status"] == "error" and "broken on purpose" in r["error"] for r in pool)
    ef_cost = [r for r in recs if r["model"] == "early_fusion" and r["scale"] == "cost"]
    assert ef_cost and all(r["status"] == "oom" for r in ef_cost)
    assert any(r["model"] == "early_fusion" and r["status"] == "ok" for r in recs)


def test_resume_after_crash_loses_and_duplicates_nothing(tmp_path):
    spec = _spec(measure="accuracy,params,flops")
    store = RunStore.create(tmp_path, "r")
    seen = []

    def crash_after_three(event, info):
        if event == "record":
            seen.append(info["key"])
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(store, progress=crash_after_three).run([spec])
    assert len(store.records()) == 3
    summary = Runner(RunStore.open(tmp_path, "r")).run([spec])
    keys = [r["key"] for r in store.records()]
    assert len(keys) == len(set(keys)) == 10  # 2 models x (accuracy + 2 scales x (params, flops))
    assert keys[:3] == seen and summary.skipped >= 3


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_latency_modes_reach_the_record(tmp_path):
    spec = build_run_spec(RunOptions(models="single_frame", profile="smoke", measure="latency", amp="bf16",
                                     channels_last=True, cost_clip="off"), resolved_device="cpu")
    store = RunStore.create(tmp_path, "r")
    Runner(store).run([spec])
    (rec,) = store.records()
    assert rec["status"] == "ok", rec["error"]
    assert rec["latency_amp"] == "bf16" and rec["latency_channels_last"] is True
    with pytest.raises(ValueError, match="amp"):
        build_run_spec(RunOptions(models="single_frame", amp="fp8"), resolved_device="cpu")


def test_accuracy_record_names_decoder_and_skipped_videos(tmp_path):
    store = RunStore.create(tmp_path, "r")
    Runner(store).run([_spec(models="pool_avg", measure="accuracy")])
    (rec,) = store.records()
    assert rec["decoder"] is None and rec["skipped_videos"] == 0 and rec["skipped_video_list"] == "[]"


def test_channels_last_two_stream_latency_and_memory_are_ok(tmp_path):
    """Regression: ``--channels-last`` recorded two-stream latency/memory as a ``view size`` RuntimeError."""
    spec = build_run_spec(RunOptions(models="two_stream,r3d", profile="smoke", measure="latency,memory",
                                     channels_last=True, cost_clip="off"), resolved_device="cpu")
    store = RunStore.create(tmp_path, "r")
    Runner(store).run([spec])
    recs = store.records()
    assert {(r["model"], r["measurement"]) for r in recs} >= {(m, k) for m in ("two_stream", "r3d")
                                                           for k in ("latency", "memory")}
    assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]


def test_latency_is_measured_in_interleaved_rounds_with_the_machine_on_the_record(tmp_path):
    events = []
    store = RunStore.create(tmp_path, "r")
    spec = _spec(models="pool_avg,early_fusion,two_stream", measure="latency,flops")
    Runner(store, progress=lambda ev, info: events.append((ev, info))).run([spec])
    starts = [(i["pass"], i["round"], i["model"], i["job"]) for ev, i in events if ev == "latency_round_start"]
    first = [(m, j) for p, r, m, j in starts if p == 0 and r == 0]
    # train and deploy clip of every model, and two_stream's flow stage, all in one round, model after model
    assert [m for m, _ in first] == ["pool_avg"] * 2 + ["early_fusion"] * 2 + ["two_stream"] * 4
    assert [r for p, r, _, _ in starts if p == 0] == sorted(r for p, r, _, _ in starts if p == 0)  # A B C, A B C
    lat = [r for r in store.records() if r["measurement"] == "latency"]
    assert len(lat) == 6 and all(r["status"] == "ok" for r in lat), [r.get("error") for r in lat]
    for r in lat:
        assert r["timing_quality"] in ("ok", "noisy", "contended")
        # whichever way the machine behaved: ok carries no reason but the re-measure note; a flag says why
        parts = [] if r["timing_reason"] is None else r["timing_reason"].split("; ")
        if r["timing_quality"] == "ok":
            assert all(p.removeprefix("flow stage: ") == REMEASURED_OK for p in parts), parts
        else:
            assert parts and any("bound" in p or "round " in p for p in parts), parts
        assert r["latency_rounds"] == 3 and len(r["latency_round_medians_ms"]) == 3
        for k in ("machine_other_cores", "machine_threads", "machine_cpus", "machine_loadavg_1m", "cudnn_benchmark",
                  "latency_ms_p50", "latency_samples_ms", "latency_threads", "throughput_clips_s"):
            assert k in r, k
    ts = [r for r in lat if r["model"] == "two_stream"]
    assert all(r["flow_latency_ms_p50"] > 0 and r["flow_timing_quality"] in ("ok", "noisy", "contended") for r in ts)


def test_accuracy_record_carries_the_plateau_protocol_and_resumes(tmp_path):
    """Through the CLI: smoke profile, accuracy only; every protocol field on the record; a resume after the
    first model's record re-runs only the second, with the same fields."""
    import json

    from typer.testing import CliRunner

    from bench.cli import app
    from bench.measure import unpack_correct

    args = ["run", "--models", "pool_avg,early_fusion", "--profile", "smoke", "--measure", "accuracy",
            "--device", "cpu", "--out", str(tmp_path)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    recs = RunStore.open(tmp_path, run_dir.name).records()
    assert len(recs) == 2
    for r in recs:
        assert r["status"] == "ok", r.get("error")
        assert r["stop_reason"] == "budget" and r["converged"] is False  # smoke: 3 steps, visibly capped
        assert r["steps"] == 3 and r["samples_seen"] == 3 * 32 and r["train_time_s"] > 0
        assert r["fit_n"] + r["stop_n"] == 120 and r["val_n"] == 64
        curve = json.loads(r["learning_curve"])
        assert curve[-1]["step"] == 3 and curve[-1]["train_gmacs"] == pytest.approx(r["train_gmacs"])
        assert r["train_gmacs"] == pytest.approx(r["train_step_gmacs"] / 32 * r["samples_seen"])
        for k in ("steps_to_90", "gmacs_to_90", "steps_to_99", "gmacs_to_99", "curve_auc"):
            assert k in r
        assert r["acc_top1_lo"] <= r["acc_top1"] <= r["acc_top1_hi"]
        correct = unpack_correct(r["val_correct"], r["val_n"])
        assert correct.mean() == pytest.approx(r["acc_top1"])
    # resume after losing the second record: only it is re-run, with the same protocol fields
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    (run_dir / "records.jsonl").write_text(lines[0] + "\n")
    res = CliRunner().invoke(app, ["run", "--resume", run_dir.name, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    again = RunStore.open(tmp_path, run_dir.name).records()
    assert len(again) == 2 and again[1]["model"] == recs[1]["model"]
    for k in ("stop_reason", "converged", "steps", "samples_seen", "acc_top1", "val_correct", "learning_curve"):
        assert again[1][k] == recs[1][k] if k != "learning_curve" else json.loads(again[1][k])[-1]["step"] == 3
