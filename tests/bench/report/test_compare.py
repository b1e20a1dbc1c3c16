"""compare_runs: ratios, Mann–Whitney p-values, failed rows kept, clear errors."""
import math

import pytest

from bench.report import compare_runs
from bench.results import RunNotFoundError


def test_one_run_relative_to_baseline(runs, tmp_path):
    root, main, _, _ = runs
    c = compare_runs(main, results_root=root, out_dir=tmp_path, dpi=40)
    t = c.table
    for col in ("group", "model", "family", "value", "baseline_value", "ratio", "ratio_ci_low", "ratio_ci_high",
                "p_value", "p_holm", "signif", "prob_b_lower", "status"):
        assert col in t, col
    assert c.figure.exists() and c.csv.exists() and c.markdown.exists()
    base = t[t["model"] == "single_frame"]
    assert (base["ratio"] == 1).all() and base["p_value"].isna().all()
    ef = t[(t["model"] == "early_fusion") & (t["group"].str.startswith("deploy"))]
    assert (ef["ratio"] < 0.2).all() and (ef["p_holm"] < 1e-3).all()
    assert ((ef["ratio_ci_low"] <= ef["ratio"]) & (ef["ratio"] <= ef["ratio_ci_high"])).all()
    lstm = t[(t["model"] == "conv_lstm") & (t["batch"] == 8)]
    assert list(lstm["status"]) == ["oom"] and math.isnan(lstm["ratio"].iloc[0])  # failed, not vanished


def test_two_runs_cpu_vs_gpu(runs, tmp_path):
    root, main, _, gpu = runs
    c = compare_runs(main, gpu, results_root=root, out_dir=tmp_path, dpi=40)
    t = c.table
    assert {"value_a", "value_b", "ratio", "p_value", "p_holm"} <= set(t.columns)
    ok = t[t["status"] == "ok"]
    assert ok["ratio"].between(0.17, 0.23).all() and (ok["p_value"] < 1e-6).all()
    assert c.run_ids == [main, gpu] and c.baseline is None
    assert any(s.startswith("A oom") for s in t["status"])  # the OOM row stays, flagged


def test_metric_without_samples_has_no_test(runs, tmp_path):
    root, main, _, _ = runs
    c = compare_runs(main, metric="gmacs", results_root=root, out_dir=tmp_path, dpi=40)
    assert c.table["p_value"].isna().all() and any("no raw samples" in n for n in c.notes)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(metric="latency_ms_p42"), ValueError, "unknown metric 'latency_ms_p42'; choose from latency_ms_p50"),
    (dict(baseline="resnet"), ValueError, "baseline model 'resnet' is not in run 'run-main'; choose from single_frame"),
    (dict(run_b="run-nope"), RunNotFoundError, "run-nope"),
])
def test_bad_input(runs, tmp_path, kwargs, err, match):
    root, main, _, _ = runs
    with pytest.raises(err, match=match):
        compare_runs(main, results_root=root, out_dir=tmp_path, **kwargs)
