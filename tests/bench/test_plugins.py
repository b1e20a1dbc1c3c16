"""User plug-ins: a file registering a fusion model goes through `bench list`, `bench run --profile smoke`
and `bench report` like a built-in one; a broken plug-in or a taken name is one line and exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import plugins
from bench.cli import app
from fusion_models import registry

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "my_fusion.py"
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("isolated_plugins")  # tests/bench/conftest.py


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_plugin_model_is_listed_run_and_reported(tmp_path):
    res = invoke("--plugin", EXAMPLE, "list", "--no-macs")
    assert res.exit_code == 0, res.output
    assert "diff_pool" in res.output

    results, reports = tmp_path / "results", tmp_path / "reports"
    res = invoke("--plugin", EXAMPLE, "run", "--models", "diff_pool", "--profile", "smoke",
                 "--device", "cpu", "--out", results)
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    mine = [r for r in recs if r["model"] == "diff_pool"]
    assert mine and all(r["status"] == "ok" for r in mine), [r.get("error") for r in mine]
    assert {r["measurement"] for r in mine} >= {"accuracy", "params"}

    rep = invoke("--plugin", EXAMPLE, "report", run_dir.name, "--results", results, "--out", reports)
    assert rep.exit_code == 0, rep.output
    assert "diff_pool" in (reports / run_dir.name / "report.md").read_text()


def test_plugin_that_fails_to_import_is_one_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\nraise RuntimeError('boom')\n")
    res = invoke("--plugin", bad, "list")
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "broken.py" in line and "RuntimeError: boom" in line
    assert "Traceback" not in res.output
    res = invoke("--plugin", tmp_path / "missing.py", "list")
    assert res.exit_code == 2 and "no such file" in res.output


def test_plugin_registering_a_taken_name_is_one_line(tmp_path):
    dup = tmp_path / "dup.py"
    dup.write_text(EXAMPLE.read_text().replace('name="diff_pool"', 'name="pool_avg"'))
    res = invoke("--plugin", dup, "list")
    assert res.exit_code == 2
    assert "dup.py registers a name already taken" in res.output and "'pool_avg' is already registered" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_plugins_travel_to_subprocesses_by_environment(tmp_path, monkeypatch):
    plugins.load_plugins([str(EXAMPLE)])
    assert plugins.ENV in __import__("os").environ and str(EXAMPLE) in __import__("os").environ[plugins.ENV]
    assert "diff_pool" in registry.list_models()
    plugins.load_plugins()  # already loaded: nothing registers twice
