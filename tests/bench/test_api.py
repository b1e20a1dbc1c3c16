"""bench.api: run -> records DataFrame, load_results(wide=True) with scale-qualified columns, report, compare."""
from __future__ import annotations

import json

import pytest

import bench.api as fb


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    df = fb.run(models="pool_avg,early_fusion", profile="smoke", device="cpu", out=out)
    return out, df


def test_run_returns_the_records(smoke):
    out, df = smoke
    assert set(df["model"]) == {"pool_avg", "early_fusion"} and (df["status"] == "ok").all()
    assert json.loads((out / df.attrs["run_id"] / "run.json").read_text())["status"] == "complete"


def test_wide_table_has_one_row_per_model_point_seed_and_no_scale_ambiguous_column(smoke):
    out, df = smoke
    wide = fb.load_results(df.attrs["run_id"], root=out, wide=True)
    assert len(wide) == 2 and not wide.duplicated(fb.WIDE_KEYS).any()
    for bare in ("gmacs", "params", "latency_ms_p50", "peak_mem_mib", "frames", "backbone"):
        assert bare not in wide.columns
    assert {"gmacs_train", "gmacs_deploy", "params_train", "params_deploy", "acc_top1"} <= set(wide.columns)
    assert any(c.startswith("latency_ms_p50_deploy_b") for c in wide.columns)
    ef = wide.set_index("model").loc["early_fusion"]
    recs = df[(df["model"] == "early_fusion") & (df["measurement"] == "flops")].set_index("scale")["gmacs"]
    assert ef["gmacs_train"] == recs["train"] and ef["gmacs_deploy"] == recs["cost"]
    assert {"frames_train", "frames_deploy", "backbone_train", "backbone_deploy"} <= set(wide.columns)
    assert isinstance(ef["config"], dict) and isinstance(ef["point"], dict)
    assert isinstance(ef["params_by_module_train"], dict)


def test_report_and_compare(smoke, tmp_path):
    out, df = smoke
    res = fb.report(df.attrs["run_id"], results=out, out=tmp_path)
    assert "early_fusion" in (res.out_dir / "report.md").read_text()
    cmp = fb.compare(df.attrs["run_id"], results=out, baseline="pool_avg", out_dir=str(tmp_path / "cmp"))
    assert "early_fusion" in set(cmp.table["model"])


# ----------------------------------------------------------------- one run lifecycle for the API and the CLI
_VOLATILE = {"run_id", "record_id", "created_at", "started_at", "finished_at", "wall_time_s", "command",
             "environment", "provenance"}


def _strip(d):
    return {k: v for k, v in d.items() if k not in _VOLATILE}


def test_api_and_cli_write_the_same_run_json_and_records(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    args = {"models": "pool_avg", "profile": "smoke", "device": "cpu", "measure": "params,flops"}
    df = fb.run(out=tmp_path / "api", **args)
    res = CliRunner().invoke(app, ["run", *[f"--{k}={v}" for k, v in args.items()], "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    (cli_dir,) = (tmp_path / "cli").iterdir()
    api_dir = tmp_path / "api" / df.attrs["run_id"]
    api_meta, cli_meta = (json.loads((d / "run.json").read_text()) for d in (api_dir, cli_dir))
    assert set(api_meta) == set(cli_meta) and api_meta["status"] == cli_meta["status"] == "complete"
    assert _strip(api_meta) == _strip(cli_meta)  # points, spec, counts, schema
    assert set(api_meta["environment"]) == set(cli_meta["environment"])
    api_recs, cli_recs = ([json.loads(line) for line in (d / "records.jsonl").read_text().splitlines()]
                          for d in (api_dir, cli_dir))
    assert len(api_recs) == len(cli_recs) == 4  # params and flops at the training and the deployment clip
    by_key = {r["key"]: r for r in cli_recs}
    for rec in api_recs:
        assert _strip(rec) == _strip(by_key[rec["key"]])


@pytest.mark.parametrize("exc, status", [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")])
def test_api_run_marks_how_a_run_ended(tmp_path, monkeypatch, exc, status):
    import bench.runner as runner_mod

    def broken(self, points):
        self.summary.add({"status": "ok"})  # one record written before the end
        raise exc("stopped")

    monkeypatch.setattr(runner_mod.Runner, "run", broken)
    with pytest.raises(exc):
        fb.run(models="pool_avg", profile="smoke", device="cpu", out=tmp_path, measure="params")
    (run_dir,) = tmp_path.iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == status and meta["counts"] == {"ok": 1} and "finished_at" in meta
