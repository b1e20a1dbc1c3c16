"""Record store: durability, torn lines, resume keys, provenance, run resolution."""
import json

import pytest

from bench.results import (
    COLUMNS, PROVENANCE_KEYS, RunNotFoundError, RunStore, environment, iter_records, list_runs, load_results,
    resolve_run,
)


def test_append_and_load_roundtrip(tmp_path):
    store = RunStore.create(tmp_path, "run-a")
    store.append({"key": "k1", "model": "m", "measurement": "params", "scale": "train", "status": "ok", "params": 10})
    store.append({"key": "k2", "model": "m", "measurement": "flops", "scale": "train", "status": "error",
                  "error": "boom"})
    df = load_results("run-a", root=tmp_path)
    assert list(df["key"]) == ["k1", "k2"]
    assert df.loc[0, "params"] == 10
    assert (df["schema_version"] == 1).all() and (df["run_id"] == "run-a").all()
    # error records are retried by a resume, the others are not
    assert store.done_keys() == {"k1"}


def test_bad_status_is_refused(tmp_path):
    store = RunStore.create(tmp_path, "run-b")
    with pytest.raises(ValueError, match="status"):
        store.append({"key": "k", "status": "fine"})


def test_torn_last_line_is_skipped(tmp_path):
    store = RunStore.create(tmp_path, "run-c")
    store.append({"key": "k1", "status": "ok"})
    with open(store.records_path, "a") as f:
        f.write('{"key": "k2", "status": "o')  # killed mid-write
    assert [r["key"] for r in iter_records(store.records_path)] == ["k1"]


def test_resolve_latest_and_unknown(tmp_path):
    with pytest.raises(RunNotFoundError, match="no runs"):
        resolve_run("latest", tmp_path)
    a = RunStore.create(tmp_path, "run-1")
    a.write_meta({"x": 1, "run_id": "run-1", "points": []})  # `latest` only sees run.json of this suite
    b = RunStore.create(tmp_path, "run-2")
    b.write_meta({"x": 2, "run_id": "run-2", "points": []})
    assert resolve_run("latest", tmp_path).name == "run-2"
    assert [p.name for p in list_runs(tmp_path)] == ["run-1", "run-2"]
    with pytest.raises(RunNotFoundError, match="run-9"):
        resolve_run("run-9", tmp_path)
    assert resolve_run(str(a.path), tmp_path) == a.path


def test_environment_has_provenance():
    env = environment("cpu")
    for k in PROVENANCE_KEYS:
        assert k in env
    assert env["threads"] >= 1 and env["torch_version"]
    json.dumps(env, default=str)


def test_columns_state_units():
    for col in ("latency_ms_p50", "peak_mem_mib", "gmacs", "gflops_torch", "train_time_s", "throughput_clips_s"):
        assert col in COLUMNS
