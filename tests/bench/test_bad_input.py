"""Hostile input, table-driven: every case exits 2 with exactly one line on stderr and no traceback.

Placeholders in the arguments: {out} a fresh results root, {results} a root with a complete run ``good`` and
broken runs, {ro} a read-only folder holding a complete run ``good``, {file} a regular file, {long} a
5,000-character name, {ucf_*} broken UCF-101 layouts, {csv_empty} a manifest with an empty label.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app

LONG = "x" * 5000
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: --device cuda is valid here")
R = "{results}"

CASES = [
    # --- bench run: values
    ("models-unknown", "run --models nope", "nope"),
    ("models-empty", "run --models=", "selects no model"),
    ("models-commas", "run --models ,,,", "selects no model"),
    ("frames-zero", "run --frames 0", "frames"),
    ("frames-negative", "run --frames -3", "frames"),
    ("frames-text", "run --frames abc", "--frames"),
    ("frames-missing-value", "run --frames", "--frames"),
    ("frames-huge", "run --frames 1000000", "GiB"),
    ("size-half", "run --size 7x", "size"),
    ("size-zero", "run --size 0x0", "size"),
    ("size-text", "run --size abc", "size"),
    ("size-huge", "run --size 100000x100000", "GiB"),
    ("batch-zero", "run --batch-size 0", "batch"),
    ("batch-huge", "run --batch-size 100000000", "GiB"),
    ("epochs-negative", "run --epochs -1", "epochs"),
    ("patience-zero", "run --patience 0", "--patience must be an evaluation count >= 1"),
    ("min-delta-one", "run --min-delta 1", "--min-delta must lie in [0, 1)"),
    ("budget-zero", "run --budget 0", "--budget must be a step count >= 1"),
    ("budget-negative", "run --budget -5", "--budget must be a step count >= 1"),
    ("eval-every-zero", "run --eval-every 0", "--eval-every must be a step count >= 1"),
    ("stop-fraction-zero", "run --stop-fraction 0", "--stop-fraction must lie strictly between 0 and 1"),
    ("stop-fraction-one", "run --stop-fraction 1", "--stop-fraction must lie strictly between 0 and 1"),
    ("stop-fraction-nan", "run --stop-fraction nan", "--stop-fraction"),
    ("train-too-small-to-stop", "run --train-size 20", "both need at least 8"),
    ("lr-inf", "run --lr inf", "--lr"),
    ("lr-overflow", "run --lr 1e400", "--lr"),
    ("lr-nan", "run --lr nan", "lr"),
    ("lr-negative", "run --lr -1", "lr"),
    ("lr-zero", "run --lr 0", "lr"),
    ("noise-inf", "run --noise inf", "--noise"),
    ("noise-negative", "run --noise -1", "noise"),
    ("noise-nan", "run --noise nan", "noise"),
    ("camera-negative", "run --camera -1", "camera"),
    ("train-size-zero", "run --train-size 0", "train_size"),
    ("val-size-zero", "run --val-size 0", "val_size"),
    ("seeds-empty", "run --seeds=", "seeds"),
    ("seeds-commas", "run --seeds ,", "seeds"),
    ("seeds-text", "run --seeds a,b", "seeds"),
    ("seeds-negative", "run --seeds -1", "seeds"),
    ("seeds-overflow", "run --seeds 99999999999999999999999", "seeds"),
    ("threads-zero", "run --threads 0", "threads"),
    ("device-unknown", "run --device tpu", "device"),
    pytest.param("device-cuda-no-gpu", "run --device cuda", "no CUDA GPU", marks=NO_GPU),
    ("profile-unknown", "run --profile nope", "profile"),
    ("measure-unknown", "run --measure bogus", "bogus"),
    ("measure-commas", "run --measure ,", "measurement"),
    ("backbone-unknown", "run --backbone nope", "backbone"),
    ("cost-backbone-unknown", "run --cost-backbone nope", "backbone"),
    ("cost-clip-zero", "run --cost-clip T0x1x1", "clip"),
    ("cost-clip-text", "run --cost-clip abc", "clip"),
    ("amp-unknown", "run --amp fp8", "amp"),
    ("executor-unknown", "run --executor nope", "executor"),
    ("address-without-ray", "run --address 127.0.0.1:1", "--address"),
    ("nproc-with-ray", "run --nproc 2 --executor ray", "exclude"),
    ("option-unknown", "run --nope", "--nope"),
    ("command-unknown", "nope", "nope"),
    # --- bench run: data
    ("dataset-unknown", "run --dataset nope", "nope"),
    ("folder-without-root", "run --dataset folder", "root"),
    ("root-missing", "run --dataset folder --root /no/such/dir", "does not exist"),
    ("root-with-synthetic", "run --root {file}", "--root"),
    ("decoder-unknown", "run --dataset folder --root {ucf_ok} --decoder nope", "decoder"),
    ("csv-empty-label", "run --dataset folder --root {csv_empty}", "empty path or label"),
    ("csv-no-header", "run --dataset folder --root {csv_bad}", "header"),
    ("root-file-not-csv", "run --dataset folder --root {file}", "not a .csv"),
    ("ucf-no-splits", "run --dataset ucf101 --root {ucf_nosplit}", "classInd"),
    ("ucf-classind-binary", "run --dataset ucf101 --root {ucf_binary}", "classInd.txt: not UTF-8"),
    ("ucf-classind-malformed", "run --dataset ucf101 --root {ucf_malformed}", "INDEX CLASS"),
    ("hmdb-no-splits", "run --dataset hmdb51 --root {file_dir}", "HMDB-51"),
    # --- bench run: where results go
    ("out-dev-null", "run --out /dev/null", "/dev/null"),
    ("out-is-file", "run --out {file}", "Not a directory"),
    ("out-under-file", "run --out {file}/sub", "Not a directory"),
    ("out-read-only", "run --out {ro}/new", "Read-only"),
    ("out-long-name", "run --out {tmp}/{long}", "too long"),
    # --- bench run --resume
    ("resume-empty", "run --resume= --out {results}", "empty"),
    ("resume-missing", "run --resume run-missing --out {results}", "not found"),
    ("resume-long-id", "run --resume {long} --out {results}", "not found"),
    ("resume-with-models", "run --resume good --out {results} --models pool_avg", "--models"),
    ("resume-with-profile", "run --resume good --out {results} --profile full", "--profile"),
    ("resume-with-seeds", "run --resume good --out {results} --seeds 1", "--seeds"),
    ("resume-with-device", "run --resume good --out {results} --device cuda", "--device"),
    ("resume-with-many", "run --resume good --out {results} --epochs 3 --lr 0.1", "--epochs, --lr"),
    ("resume-bad-json", "run --resume badjson --out {results}", "badjson/run.json is not a valid run.json"),
    ("resume-binary-json", "run --resume binjson --out {results}", "binjson/run.json is not a valid run.json"),
    ("resume-list-json", "run --resume listjson --out {results}", "expected a JSON object"),
    ("resume-bad-points", "run --resume badpoints --out {results}", "not a valid run spec"),
    ("resume-no-points", "run --resume nopoints --out {results}", "cannot be resumed"),
    ("resume-records-dir", "run --resume recdir --out {results}", "is a directory"),
    ("resume-read-only", "run --resume good --out {ro}", "Read-only"),
    # --- bench ablate
    ("vary-unknown-knob", "ablate --vary speed=1,2", "unknown knob"),
    ("vary-no-equals", "ablate --vary frames", "KNOB=V1"),
    ("vary-no-values", "ablate --vary frames=", "at least one value"),
    ("vary-zero-frames", "ablate --vary frames=0", "frames"),
    ("vary-twice", "ablate --vary frames=2 --vary frames=3", "twice"),
    ("vary-noise-inf", "ablate --vary noise=inf", "finite"),
    ("vary-huge-frames", "ablate --vary frames=1000000", "GiB"),
    ("vary-missing", "ablate", "--vary"),
    # --- bench report / compare
    ("report-missing", "report run-missing --results {results}", "not found"),
    ("report-no-arg", "report", "runs"),
    ("report-format", "report good --results {results} --format nope", "format"),
    ("report-out-dev-null", "report good --results {results} --out /dev/null", "Not a directory"),
    ("report-out-file", "report good --results {results} --out {file}", "Not a directory"),
    ("report-out-read-only", "report good --results {results} --out {ro}/rep", "Read-only"),
    ("report-records-dir", "report recdir --results {results}", "is a directory"),
    ("report-latest-foreign", "report latest --results {foreign}", "no runs"),
    ("compare-missing", "compare run-missing --results {results}", "not found"),
    ("compare-metric", "compare good --results {results} --metric nope", "metric"),
    # --- bench list / env / data / flow
    ("list-unknown", "list pool_avj", "pool_avj"),
    ("env-device", "env --device tpu", "device"),
    ("export-out-dev-null", "data export --out /dev/null/x --videos-per-class 1", "/dev/null"),
    ("export-format", "data export --out {tmp}/e --format mov", "mov"),
    ("export-size", "data export --out {tmp}/e --size 7x", "size"),
    ("export-zero-videos", "data export --out {tmp}/e --videos-per-class 0", "--videos-per-class"),
    ("preview-dataset", "data preview --dataset nope", "nope"),
    ("flow-size-zero", "flow robustness --size 0", "--size"),
    ("flow-sigmas-negative", "flow robustness --sigmas -1", "--sigmas"),
    ("flow-sigmas-text", "flow robustness --sigmas a", "--sigmas"),
    ("flow-pans-negative", "flow robustness --pans -2", "--pans"),
    ("flow-batches-zero", "flow throughput --batches 0", "--batches"),
    ("flow-sizes-zero", "flow throughput --sizes 0", "--sizes"),
    ("flow-frames-one", "flow throughput --frames 1", "--frames"),
    ("flow-backend-unknown", "flow throughput --backends numba", "--backends"),
    ("flow-threads-zero", "flow throughput --threads 0", "--threads"),
]


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """The folders and files the placeholders stand for (built once)."""
    base = tmp_path_factory.mktemp("bad-input")
    results = base / "results"
    res = CliRunner().invoke(app, ["run", "--models", "pool_avg", "--profile", "smoke", "--measure", "params",
                                   "--cost-clip", "off", "--device", "cpu", "--out", str(results)])
    assert res.exit_code == 0, res.output
    (made,) = [p for p in results.iterdir() if p.is_dir()]
    good = made.rename(results / "good")
    meta = json.loads((good / "run.json").read_text())
    meta["run_id"] = "good"
    (good / "run.json").write_text(json.dumps(meta))

    def broken(name: str, run_json: bytes | None = None) -> Path:
        d = results / name
        shutil.copytree(good, d)
        if run_json is not None:
            (d / "run.json").write_bytes(run_json)
        return d

    broken("badjson", b'{"run_id": "badjson", points: [}')
    broken("binjson", b"\x89PNG\r\n\x1a\n\xff\xfe")
    broken("listjson", b"[1, 2, 3]")
    broken("badpoints", json.dumps({**meta, "run_id": "badpoints", "points": [{"models": ["pool_avg"]}]}).encode())
    broken("nopoints", json.dumps({**meta, "run_id": "nopoints", "points": []}).encode())
    recdir = broken("recdir")
    (recdir / "records.jsonl").unlink()
    (recdir / "records.jsonl").mkdir()
    foreign = base / "foreign"
    (foreign / "run-zzz").mkdir(parents=True)
    (foreign / "run-zzz" / "records.jsonl").write_text("")
    (foreign / "run-zzz" / "run.json").write_text('{"tool": "someone else"}')

    afile = base / "a-file.txt"
    afile.write_text("not a folder\n")
    file_dir = base / "just-a-folder"
    file_dir.mkdir()
    csv_empty = base / "manifest-empty.csv"
    csv_empty.write_text("path,label\na.mp4,cat\nb.mp4,\n")
    csv_bad = base / "manifest-bad.csv"
    csv_bad.write_text("file;class\na.mp4;cat\n")
    ucf = {}
    for name, class_ind in (("ok", b"1 A\n"), ("binary", b"\xff\xfe\x00\x81\n"), ("malformed", b"onlyone\n"),
                            ("nosplit", None)):
        d = base / f"ucf-{name}"
        (d / "UCF-101" / "A").mkdir(parents=True)
        if class_ind is not None:
            (d / "ucfTrainTestlist").mkdir()
            (d / "ucfTrainTestlist" / "classInd.txt").write_bytes(class_ind)
            for split in ("trainlist01.txt", "testlist01.txt"):
                (d / "ucfTrainTestlist" / split).write_text("A/v_A_g01_c01.avi\n")
        ucf[f"ucf_{name}"] = str(d)

    ro = base / "ro"
    ro.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root ignores permission bits: a read-only tmpfs is really read-only
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(ro)],
                                 capture_output=True).returncode == 0
    shutil.copytree(good, ro / "good")
    if mounted:
        mounted = subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("cannot make a read-only folder here (root, and mount is refused)")
        for p in (ro / "good", ro):
            p.chmod(0o555)
    yield {"results": str(results), "ro": str(ro), "file": str(afile), "file_dir": str(file_dir), "long": LONG,
           "csv_empty": str(csv_empty), "csv_bad": str(csv_bad), "foreign": str(foreign), "tmp": str(base), **ucf}
    if mounted:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    else:
        for p in (ro, ro / "good"):
            p.chmod(0o755)


@pytest.mark.parametrize("name, args, needle", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(places, tmp_path, name, args, needle):
    argv = [a.format(**places) for a in args.split()]
    if argv[0] in ("run", "ablate") and "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", str(tmp_path / "out")]
    if argv[0] in ("run", "ablate") and "--profile" not in argv and not any("--resume" in a for a in argv):
        argv += ["--profile", "smoke"]  # should anything get past validation, it is small
    res = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    assert needle in lines[0], lines[0]
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), "bad input left a run directory behind"


def test_the_table_is_big_enough():
    assert len(CASES) >= 60
