"""compare_runs: ratios, Mann–Whitney p-values, failed rows kept, clear errors."""
import json
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


# ------------------------------------------------------------------------------- timing flags (issue 15)
def test_flagged_pair_is_never_significant(tmp_path, fake_runs):
    """A 330x change where one side ran contended is shown, but not called significant."""
    write_run = fake_runs.write_run
    root = tmp_path / "results"
    a = write_run(root, "run-quiet", flags={})
    b = write_run(root, "run-loud", flags={"early_fusion": "contended", "pool_avg": "noisy"}, speed=330.0)
    t = compare_runs(a, b, results_root=root, out_dir=tmp_path / "out", dpi=40).table
    ok = t[t["status"] == "ok"]
    flagged = ok[ok["model"].isin(["early_fusion", "pool_avg"])]
    assert not flagged.empty and flagged["flagged"].all() and (flagged["signif"] == "flagged").all()
    assert (flagged["p_value"] < 1e-6).all() and flagged["p_holm"].isna().all()  # the test ran; the claim is withheld
    clean = ok[~ok["model"].isin(["early_fusion", "pool_avg"])]
    assert (clean["signif"] == "***").all() and not clean["flagged"].any()
    one = compare_runs(b, results_root=root, out_dir=tmp_path / "one", dpi=40).table  # one run, vs its baseline
    assert (one.loc[one["model"] == "early_fusion", "signif"] == "flagged").all()


def test_setup_differences_are_named(tmp_path, fake_runs):
    write_run = fake_runs.write_run
    root = tmp_path / "results"
    a = write_run(root, "run-a", latency_extra={"latency_threads": 2, "latency_amp": None, "torch_version": "2.5.0",
                                                "git_commit": "aaa"})
    b = write_run(root, "run-b", device="cuda:0", latency_extra={"latency_threads": 1, "latency_amp": "bf16",
                                                                 "torch_version": "2.6.0", "git_commit": "bbb"})
    c = compare_runs(a, b, results_root=root, out_dir=tmp_path / "out", dpi=40)
    text = "\n".join(c.differences)
    for what in ("device: run-a cpu vs run-b cuda:0", "threads: run-a 2 vs run-b 1", "AMP", "torch version", "commit"):
        assert what in text, (what, text)
    md = c.markdown.read_text()
    assert md.index("runs differ in device") < md.index("| model")  # said before any number
    same = compare_runs(a, a, results_root=root, out_dir=tmp_path / "same", dpi=40)
    assert same.differences == []


def test_run_without_latency_records_is_a_clear_error(tmp_path, fake_runs):
    write_run = fake_runs.write_run
    root = tmp_path / "results"
    a = write_run(root, "run-a")
    store_b = write_run(root, "run-nolat", cost_scale=False)
    path = root / store_b / "records.jsonl"
    lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["measurement"] != "latency"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="run 'run-nolat' has no latency records"):
        compare_runs(a, store_b, results_root=root, out_dir=tmp_path / "out")
