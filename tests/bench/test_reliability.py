"""Records survive concurrent resumes, torn lines, kills, a full disk and videos cut mid-stream.

Every scenario ends by comparing the run's keys with an uninterrupted reference run of the same spec:
every line parses, no key is recorded twice, none is missing (records lost: 0).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bench.results as results_mod
from bench.cli import app

REPO = Path(__file__).resolve().parents[2]
# Two models, accuracy + params at two scales: 6 records in a few seconds.
SPEC = ["--models", "single_frame,pool_avg", "--profile", "smoke", "--measure", "accuracy,params", "--device", "cpu"]
cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def bench_proc(*args, **kw) -> subprocess.Popen:
    """``python -m bench ARGS`` in its own process (our code first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "bench", *map(str, args)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def lines_of(run_dir: Path) -> list[dict]:
    """Every line of records.jsonl, parsed: a line that does not parse fails the test."""
    raw = (run_dir / "records.jsonl").read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "torn last line left behind"
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def assert_same_records(run_dir: Path, reference: dict) -> None:
    """One record per key, the reference's keys exactly, and the deterministic values equal."""
    recs = lines_of(run_dir)
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {sorted(k for k in keys if keys.count(k) > 1)}"
    assert set(keys) == set(reference), f"missing {set(reference) - set(keys)}, extra {set(keys) - set(reference)}"
    for r in recs:
        assert r["status"] == "ok", r["error"]
        for col in ("params", "params_trainable"):
            if col in reference[r["key"]]:
                assert r.get(col) == reference[r["key"]][col]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def only_run(root: Path) -> Path:
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run: its directory and its records by key."""
    root = tmp_path_factory.mktemp("reference")
    res = invoke("run", *SPEC, "--out", root)
    assert res.exit_code == 0, res.output
    run_dir = only_run(root)
    recs = lines_of(run_dir)
    assert len(recs) == 6
    return run_dir, {r["key"]: r for r in recs}


def interrupted_copy(reference_dir: Path, root: Path, keep: int) -> Path:
    """The reference run as a killed run would leave it: its first ``keep`` records, run.json ``interrupted``."""
    run_dir = root / reference_dir.name
    run_dir.mkdir(parents=True)
    meta = json.loads((reference_dir / "run.json").read_text())
    meta["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(meta))
    lines = (reference_dir / "records.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "records.jsonl").write_text("".join(lines[:keep]))
    return run_dir


# ------------------------------------------------------------------------------------------ concurrency
def test_two_concurrent_resumes_one_refuses_no_duplicates(reference, tmp_path):
    ref_dir, ref = reference
    run_dir = interrupted_copy(ref_dir, tmp_path, keep=3)
    a = bench_proc("run", "--resume", run_dir.name, "--out", tmp_path)
    lock = run_dir / results_mod.RUN_LOCK
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().strip() == str(a.pid)):  # A holds the lock
        assert a.poll() is None and time.time() < deadline, a.communicate()
        time.sleep(0.01)
    os.kill(a.pid, signal.SIGSTOP)  # A holds the lock and is mid-run while B tries: no race in the test
    try:
        b = bench_proc("run", "--resume", run_dir.name, "--out", tmp_path)
        b_out, b_err = b.communicate(timeout=120)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    a_out, a_err = a.communicate(timeout=300)
    assert a.returncode == 0, a_err
    assert b.returncode == 2, b_err
    (line,) = b_err.strip().splitlines()
    assert line.startswith("error:") and f"process {a.pid}" in line and "Traceback" not in b_err
    assert_same_records(run_dir, ref)


def test_run_json_writes_from_two_processes_never_collide(tmp_path):
    """Each process writes run.json through its own temp file (a shared one made os.replace fail)."""
    store = results_mod.RunStore.create(tmp_path, "run-x")
    store.write_meta({"run_id": "run-x", "points": []})
    code = ("import sys; from bench.results import RunStore; s = RunStore(sys.argv[1], 'run-x')\n"
            "for i in range(300): s.update_meta(n=i)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert store.read_meta()["n"] == 299
    assert not list(store.path.glob("*.tmp"))


def test_lock_names_the_holder(tmp_path):
    store = results_mod.RunStore.create(tmp_path, "run-l")
    held = store.lock()
    with pytest.raises(results_mod.RunLockedError, match=f"process {os.getpid()}"):
        store.lock()
    held.release()
    store.lock().release()  # free again once released


# ------------------------------------------------------------------------------------------ torn lines
def test_torn_last_line_then_resume_loses_nothing(reference, tmp_path):
    ref_dir, ref = reference
    run_dir = interrupted_copy(ref_dir, tmp_path, keep=3)
    fourth = (ref_dir / "records.jsonl").read_text().splitlines()[3]
    torn = fourth[: len(fourth) // 2]
    with open(run_dir / "records.jsonl", "a") as f:
        f.write(torn)  # killed (or disk full) mid-write
    res = invoke("run", "--resume", run_dir.name, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "torn last line" in res.stderr
    assert_same_records(run_dir, ref)
    assert (run_dir / results_mod.TORN_SIDECAR).read_text() == torn + "\n"  # kept, not thrown away


def test_junk_line_is_named_by_resume_and_nothing_is_lost(reference, tmp_path):
    ref_dir, ref = reference
    run_dir = interrupted_copy(ref_dir, tmp_path, keep=2)
    with open(run_dir / "records.jsonl", "ab") as f:
        f.write(b"\x00\x9f garbage\n")
    res = invoke("run", "--resume", run_dir.name, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "1 unreadable line(s) skipped (line 3)" in res.stderr
    recs, report = results_mod.read_records(run_dir / "records.jsonl")
    assert report.bad_lines == [3] and not report.duplicates
    assert {r["key"] for r in recs} == set(ref) and len(recs) == len(ref)


def test_unreadable_lines_and_duplicates_are_reported(tmp_path):
    store = results_mod.RunStore.create(tmp_path, "run-d")
    store.write_meta({"run_id": "run-d", "points": []})
    for _ in range(2):  # two writers recorded the same key
        store.append({"key": "k1", "model": "m", "measurement": "params", "scale": "train", "status": "ok", "seed": 0})
    store.append({"key": "k2", "model": "m", "measurement": "flops", "scale": "train", "status": "error", "error": "x"})
    store.append({"key": "k2", "model": "m", "measurement": "flops", "scale": "train", "status": "ok"})  # a retry
    with open(store.records_path, "ab") as f:
        f.write(b"\x00\xff junk\n[1, 2]\n")
    recs, report = store.read()
    assert [r["key"] for r in recs] == ["k1", "k2"] and recs[1]["status"] == "ok"
    assert report.bad_lines == [5, 6] and report.duplicates == {"k1": 1}
    with pytest.warns(results_mod.RecordsWarning) as got:
        df = results_mod.load_results("run-d", root=tmp_path)
    text = " ".join(str(w.message) for w in got)
    assert "2 unreadable line(s)" in text and "line 5, 6" in text and "k1" in text
    assert len(df) == 2  # a duplicate is never counted as a second seed


def test_latest_ignores_foreign_folders(tmp_path):
    ours = results_mod.RunStore.create(tmp_path, "run-a")
    ours.write_meta({"run_id": "run-a", "points": []})
    time.sleep(0.01)
    foreign = tmp_path / "run-zzz"
    foreign.mkdir()
    (foreign / "records.jsonl").write_text("")
    (foreign / "run.json").write_text('{"something": "else"}')
    assert results_mod.resolve_run("latest", tmp_path).name == "run-a"


# ---------------------------------------------------------------------------------------------- kills
def _wait_records(run_root: Path, n: int, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.time() + timeout
    while True:
        dirs = [p for p in run_root.iterdir() if p.is_dir()] if run_root.exists() else []
        if dirs and (dirs[0] / "records.jsonl").exists() and \
                (dirs[0] / "records.jsonl").read_bytes().count(b"\n") >= n:
            return dirs[0]
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_killed_run_then_resume_loses_nothing(reference, tmp_path, sig, code):
    _, ref = reference
    root = tmp_path / "results"
    p = bench_proc("run", *SPEC, "--out", root)
    run_dir = _wait_records(root, 3, p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    if sig == signal.SIGTERM:  # handled like Ctrl-C: marked, and the printed command works as printed
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
        hint = next(line for line in err.splitlines() if line.startswith("resume with: "))
        assert hint == f"resume with: bench run --resume {run_dir.name} --out {root}"
        assert "Traceback" not in err
    res = invoke("run", "--resume", run_dir.name, "--out", root)
    assert res.exit_code == 0, res.output
    assert_same_records(run_dir, ref)


# ------------------------------------------------------------------------------------------ full disk
def _assert_clean_failure(res, run_dir: Path) -> None:
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    assert "No space left on device" in errors[0] and f"--resume {run_dir.name}" in errors[0]
    lines_of(run_dir)  # every line parses, no torn line


def test_write_failure_truncates_back_and_marks_failed(reference, tmp_path, monkeypatch):
    """ENOSPC half-way through the 4th record's write (injected): the half line is truncated back, run.json
    says failed, and --resume completes the run."""
    _, ref = reference
    real_write, seen = os.write, {"n": 0}

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("records.jsonl"):
            seen["n"] += 1
            if seen["n"] >= 4:
                real_write(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(results_mod.os, "write", write)
    res = invoke("run", *SPEC, "--out", tmp_path)
    run_dir = only_run(tmp_path)
    _assert_clean_failure(res, run_dir)
    assert len(lines_of(run_dir)) == 3
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    monkeypatch.setattr(results_mod.os, "write", real_write)
    again = invoke("run", "--resume", run_dir.name, "--out", tmp_path)
    assert again.exit_code == 0, again.output
    assert_same_records(run_dir, ref)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 2 MiB tmpfs (needs root and mount permission; skipped with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip() or out.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_tmpfs_fails_cleanly_then_resume_completes(reference, tiny_tmpfs, monkeypatch):
    """A real full disk: after the 3rd record a filler file takes every free byte of the tmpfs."""
    _, ref = reference
    filler = tiny_tmpfs / "filler"
    real_append, seen = results_mod.RunStore.append, {"n": 0}

    def append(self, record):
        rec = real_append(self, record)
        seen["n"] += 1
        if seen["n"] == 3:
            # unbuffered, so nothing is left to flush (and fail) on close; smaller writes take the last bytes
            with open(filler, "wb", buffering=0) as f:
                for chunk in (4096, 512, 1):
                    try:
                        while True:
                            f.write(b"\0" * chunk)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
        return rec

    monkeypatch.setattr(results_mod.RunStore, "append", append)
    out = tiny_tmpfs / "results"
    res = invoke("run", *SPEC, "--out", out)
    run_dir = only_run(out)
    _assert_clean_failure(res, run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    if meta["status"] != "failed":  # a disk with no byte left cannot take even that; the message says so
        assert meta["status"] == "running" and "could not be marked failed" in res.stderr
    filler.unlink()
    monkeypatch.setattr(results_mod.RunStore, "append", real_append)
    again = invoke("run", "--resume", run_dir.name, "--out", out)
    assert again.exit_code == 0, again.output
    assert_same_records(run_dir, ref)


# ---------------------------------------------------------------------------------------- cut videos
def cut_mid_stream(path: Path) -> None:
    """Cut ``path`` so that its header and first frames decode and its last frames do not."""
    from bench.data.decode import decode, probe

    data = path.read_bytes()
    for frac in (0.5, 0.4, 0.6, 0.3, 0.7):
        path.write_bytes(data[: int(len(data) * frac)])
        try:
            n = probe(str(path), "pyav").num_frames
            decode(str(path), [0, 1], "pyav")
        except Exception:  # noqa: BLE001 - cut too early: the header or first frames are gone
            continue
        try:
            decode(str(path), list(range(n - 4, n)), "pyav")
        except Exception:  # noqa: BLE001 - what we want: the end is gone
            return
    pytest.fail(f"could not cut {path} mid-stream")


def test_video_cut_mid_stream_is_skipped_and_every_model_measured(tmp_path):
    root = tmp_path / "ucf"
    exp = invoke("data", "export", "--out", root, "--videos-per-class", "3", "--num-shapes", "1",
                 "--video-frames", "32", "--size", "32", "--format", "avi")
    assert exp.exit_code == 0, exp.output
    test_list = (root / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    cut = root / "UCF-101" / test_list[0]
    cut_mid_stream(cut)
    res = invoke("run", "--dataset", "ucf101", "--root", root, "--models", "single_frame,pool_avg",
                 "--profile", "smoke", "--measure", "accuracy", "--device", "cpu", "--out", tmp_path / "results", "--epochs", "1")  # 8 training videos: too few for a stopping split
    assert res.exit_code == 0, res.output
    recs = lines_of(only_run(tmp_path / "results"))
    assert {r["model"] for r in recs} == {"single_frame", "pool_avg"}
    for r in recs:
        assert r["status"] == "ok", r["error"]
        assert r["acc_top1"] is not None and r["skipped_videos"] >= 1
        named = dict(map(tuple, json.loads(r["skipped_video_list"])))
        assert "mid-decode" in named[str(cut)]
    assert "warning:" in res.stderr and str(cut) in res.stderr  # named on the console too
