"""`--executor ray`: a sweep on a local 2-CPU Ray instance survives a worker killed mid-task, with no record
lost or duplicated, and resumes like a local run; bad input is one line and exit 2."""
import collections
import importlib.util
import json
import os
import signal
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

import bench.cli as cli
from bench.plan import RunOptions, build_run_spec
from bench.results import RunStore

from bench.executors import RAY_MISSING, RayRunner, connect_ray

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray not installed (pip install 'fusionbench[ray]')")


def _descendants_titled(title: bytes) -> list[int]:
    """PIDs of processes under this one (our Ray instance's workers) whose process title starts with ``title``."""
    me, out = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not f.read().startswith(title):
                    continue
            p = int(pid)
            while p > 1:  # walk up to this test process, so nothing outside our Ray instance is touched
                with open(f"/proc/{p}/stat") as f:
                    p = int(f.read().rsplit(")", 1)[1].split()[1])
                if p == me:
                    out.append(int(pid))
                    break
        except (OSError, ValueError, IndexError):
            continue
    return out


class KillFirstTask(threading.Thread):
    """SIGKILLs the first Ray worker seen executing ``run_task`` (Ray titles it ``ray::run_task``), once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            pids = _descendants_titled(b"ray::run_task")
            if pids:
                time.sleep(0.3)  # well inside the task (imports done, training under way)
                if pids[0] in _descendants_titled(b"ray::run_task"):
                    os.kill(pids[0], signal.SIGKILL)
                    self.killed = pids[0]
            time.sleep(0.05)


@needs_ray
@pytest.mark.slow
def test_sweep_survives_a_killed_worker_and_resumes(tmp_path):
    spec = build_run_spec(RunOptions(models="pool_avg,early_fusion", profile="smoke", seeds=(0, 1), device="cpu",
                                     measure="accuracy,params", train_size=40, val_size=16), resolved_device="cpu")
    conn = connect_ray(num_cpus=2)
    try:
        assert conn.started_local and conn.resources()["CPU"] == 2
        store = RunStore.create(tmp_path, "ray")
        killer = KillFirstTask()
        killer.start()
        summary = RayRunner(store, conn, max_retries=3).run([spec])
        killer.stop.set()
        assert killer.killed is not None, "no worker was seen mid-task"

        recs = store.records()
        keys = [r["key"] for r in recs]
        # 2 models x 2 seeds x (accuracy + params at the train and the cost clip): none lost, none twice
        assert len(keys) == len(set(keys)) == 12
        assert collections.Counter((r["model"], r["seed"]) for r in recs) == {
            (m, s): 3 for m in ("pool_avg", "early_fusion") for s in (0, 1)}
        assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
        assert summary.counts == {"ok": 12}

        again = RayRunner(RunStore.open(tmp_path, "ray"), conn).run([spec])  # resume: everything is done
        assert again.counts == {} and again.skipped == 12 and len(store.records()) == 12
    finally:
        conn.shutdown()


@needs_ray
@pytest.mark.slow
def test_cli_ablate_with_ray(tmp_path):
    res = CliRunner().invoke(cli.app, ["ablate", "--models", "pool_avg", "--vary", "frames=2,3", "--profile", "smoke",
                                       "--measure", "params,flops", "--device", "cpu", "--executor", "ray",
                                       "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "Ray:" in res.output
    (run_dir,) = list(tmp_path.iterdir())
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(recs) == len({r["key"] for r in recs}) == 2 * 2 * 2  # 2 points x (params, flops) x 2 scales
    assert sorted({json.loads(r["point"])["frames"] for r in recs}) == [2, 3]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    import ray

    assert not ray.is_initialized()  # the CLI shut its local instance down


def _run(tmp_path, *args):
    return CliRunner().invoke(cli.app, ["run", "--models", "pool_avg", "--profile", "smoke", "--device", "cpu",
                                        "--out", str(tmp_path), *args])


def test_ray_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    res = _run(tmp_path, "--executor", "ray")
    assert res.exit_code == 2 and RAY_MISSING in res.output and "Traceback" not in res.output
    assert not list(tmp_path.iterdir())  # no run directory for a run that never started


@needs_ray
def test_unreachable_address_is_one_line_and_fast(tmp_path):
    t0 = time.perf_counter()
    res = _run(tmp_path, "--executor", "ray", "--address", "127.0.0.1:9")
    assert res.exit_code == 2 and "cannot reach a Ray cluster at 127.0.0.1:9" in res.output, res.output
    assert "Traceback" not in res.output and time.perf_counter() - t0 < 10
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, needle", [
    (["--executor", "dask"], "--executor must be local or ray"),
    (["--address", "auto"], "--address needs --executor ray"),
])
def test_bad_executor_flags_are_one_line(tmp_path, args, needle):
    res = _run(tmp_path, *args)
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output
