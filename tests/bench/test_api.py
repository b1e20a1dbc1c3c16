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
