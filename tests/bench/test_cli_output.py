"""CLI output that survives a pipe and an 80-column terminal: full names, TSV, --format csv|json."""
import csv
import io
import json

import pytest
from typer.testing import CliRunner

from bench.cli import app
from fusion_models import list_models

runner = CliRunner()


def invoke(*args, columns="80"):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": columns})


def test_list_in_a_pipe_at_80_columns_has_every_full_name():
    res = invoke("list", "--no-macs")  # CliRunner's stdout is not a terminal, as in `bench list | grep ...`
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split("\t")[0] == "model" and "…" not in res.stdout
    names = [ln.split("\t")[0] for ln in lines[1:]]
    assert names == list_models()
    assert any(ln.startswith("two_stream_gated\t") for ln in lines) or "two_stream_gated" not in list_models()
    assert all(len(ln.split("\t")) == len(lines[0].split("\t")) for ln in lines)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_list_csv_and_json(fmt):
    res = invoke("list", "pool_*", "--no-macs", "--format", fmt)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout) if fmt == "json" else list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["model"] for r in rows] == list_models("pool_*")
    assert all(int(r["params"]) > 0 for r in rows)


def test_unknown_format_is_one_line_listing_choices():
    res = invoke("list", "--format", "yaml")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "table, csv, json" in lines[0] and "yaml" in lines[0]


def test_run_summary_json_in_percent_and_ablation_one_row_per_point(tmp_path):
    res = invoke("ablate", "--models", "pool_avg,single_frame", "--vary", "frames=2,3", "--profile", "smoke",
                 "--measure", "accuracy,params", "--device", "cpu", "--out", tmp_path, "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert sorted((r["model"], r["point"]) for r in rows) == [
        ("pool_avg", "frames=2"), ("pool_avg", "frames=3"), ("single_frame", "frames=2"), ("single_frame", "frames=3")]
    for r in rows:
        assert 0 <= r["top-1 %"] <= 100 and 0 < r["ceiling %"] <= 100 and r["ceiling %"] > 1


def test_progress_lines_give_accuracy_in_percent():
    from bench.console import _record_line

    line = _record_line(dict(model="two_stream_gated", measurement="accuracy", scale="train", status="ok",
                             acc_top1=0.2862499952316284, ceiling_top1=0.25, train_time_s=3.2))
    assert "two_stream_gated" in line and "28.6 %" in line and "ceiling 25 %" in line and "0.286" not in line


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_compare_csv_and_json_are_the_rows_alone_on_stdout(tmp_path, fmt):
    from .report.conftest import MODELS, write_run

    results = tmp_path / "results"
    write_run(results, "run-a")
    write_run(results, "run-b", speed=0.5)
    res = invoke("compare", "run-a", "run-b", "--results", results, "--out", tmp_path / "cmp", "--format", fmt)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout) if fmt == "json" else list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows and {"group", "model", "A", "B", "ratio", "95% CI", "p (Holm)", "status"} <= set(rows[0])
    assert {r["model"] for r in rows} == set(MODELS)  # full names, every model of both runs
    assert "figure:" not in res.stdout  # the figure's path goes to stderr, so the rows parse on their own
