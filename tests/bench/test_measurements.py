"""The measurement table (bench/measurements.py): what it derives equals the lists the suite kept by hand before,
and one registered measurement flows through run -> records -> report table -> compare -> console unaided."""
import json

import pytest
from typer.testing import CliRunner

from bench import measurements as M
from bench.cli import app


def test_derived_lists_are_the_hand_kept_ones():
    from bench.config import RunSpec
    from bench.report import METRICS
    from bench.report.render import _cost_display
    from bench.report.tables import ablation_metrics, cost_columns

    assert M.names() == ("accuracy", "params", "flops", "latency", "memory")
    assert RunSpec(models=("x",), dataset=None).measurements == M.names()
    assert M.per_batch() == ("latency", "memory")
    assert cost_columns() == [
        ("gmacs", "gmacs", "flops", "min"), ("params", "params", "params", "min"),
        ("first_conv_params", "first_conv_params", "params", "min"),
        ("latency_ms_p50", "latency_ms_p50", "latency", "min"), ("latency_ms_p90", "latency_ms_p90", "latency", "min"),
        ("throughput_clips_s", "throughput_clips_s", "latency", "max"), ("peak_mem_mib", "peak_mem_mib", "memory", "min")]
    assert [(s, m, h, d) for s, m, h, d in _cost_display()] == [
        ("gmacs", "flops", "GMACs", 1), ("params", "params", "params (M)", 1e6),
        ("first_conv_params", "params", "1st-conv params (k)", 1e3), ("latency_ms_p50", "latency", "latency p50 (ms{b})", 1),
        ("latency_ms_p90", "latency", "latency p90 (ms{b})", 1),
        ("throughput_clips_s", "latency", "throughput (clips/s{b})", 1), ("peak_mem_mib", "memory", "peak mem (MiB{b})", 1)]
    assert ablation_metrics() == [
        ("acc_top1", "accuracy", "top-1 accuracy (%)"), ("gmacs", "flops", "GMACs per clip"),
        ("params", "params", "parameters (M)"), ("latency_ms_p50", "latency", "latency p50 (ms)"),
        ("peak_mem_mib", "memory", "peak memory (MiB)")]
    assert dict(METRICS) == {
        "latency_ms_p50": ("latency", "p50"), "latency_ms_p90": ("latency", "p90"), "latency_ms_p99": ("latency", "p99"),
        "latency_ms_mean": ("latency", "mean"), "throughput_clips_s": ("latency", "inv_p50"),
        "achieved_gflops_s": ("latency", "inv_p50"), "flow_latency_ms_p50": ("latency", None),
        "peak_mem_mib": ("memory", None), "train_peak_mem_mib": ("memory", None), "gmacs": ("flops", None),
        "gflops_torch": ("flops", None), "params": ("params", None), "first_conv_params": ("params", None),
        "acc_top1": ("accuracy", None), "train_time_s": ("accuracy", None)}
    assert list(METRICS)[0] == "latency_ms_p50"  # compare's default metric leads its list
    units = {m: M.column(m).unit for m in METRICS}
    assert units["achieved_gflops_s"] == "GFLOP/s" and units["train_peak_mem_mib"] == "MiB"
    assert units["first_conv_params"] == "parameters" and units["flow_latency_ms_p50"] == "ms"
    assert M.column("acc_top1").better == "higher" and M.column("latency_ms_p50").better == "lower"


def test_register_refuses_a_duplicate_name_or_a_column_of_another():
    with pytest.raises(ValueError, match="already registered"):
        M.register(M.Measurement("params", columns=(), run=lambda ctx: {}))
    with pytest.raises(ValueError, match="gmacs already written by 'flops'"):
        M.register(M.Measurement("macs2", columns=(M.Column("gmacs", "again"),), run=lambda ctx: {}))
    with pytest.raises(ValueError, match="needs a run"):
        M.Measurement("nothing", columns=())
    assert "macs2" not in M.names()


def _tensors(ctx: M.Context) -> dict:
    """A toy measurement: parameter tensors of the model x the batch (a real value, exact per model)."""
    return {"toy_tensors": len(list(ctx.model().parameters())) * ctx.batch}


@pytest.fixture
def toy_measurement():
    toy = M.register(M.Measurement(
        "toy", run=_tensors, batches=lambda spec, scale: (2,), per_batch=True, report_rank=5, compare_rank=5,
        columns=(M.Column("toy_tensors", "parameter tensors x batch (toy)", unit="tensors", main="toy tensors{b}",
                          ablation="toy tensors"),),
        line=lambda r: f"{r['toy_tensors']} toy tensors",
        summary=(M.Summary("toy (deploy)", "toy_tensors", scale="cost"),),
    ))
    yield toy
    M.unregister("toy")
    assert "toy" not in M.names()


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_a_registered_measurement_flows_through_run_report_compare_and_console(toy_measurement, tmp_path):
    from bench.report.render import display_main_table
    from bench.report.tables import ablation_table, failed_cells, main_table, prepare
    from bench.results import COLUMNS, load_results, list_runs

    assert COLUMNS["toy_tensors"] == "parameter tensors x batch (toy)" and "toy" in COLUMNS["measurement"]
    res = _cli("run", "--profile", "smoke", "--models", "single_frame,pool_avg", "--measure", "params,toy",
               "--device", "cpu", "--out", tmp_path, "--format", "json")
    assert res.exit_code == 0, res.output
    # console: the record lines while it ran, and the summary's cell
    lines = [ln for ln in res.stderr.splitlines() if " toy " in ln]
    assert len(lines) == 4 and all("toy tensors" in ln for ln in lines), res.stderr
    rows = json.loads(res.stdout)
    assert {r["model"] for r in rows} == {"single_frame", "pool_avg"} and all(r["toy (deploy)"] > 0 for r in rows)

    # records: one per model and scale, at the batch the descriptor names, with the key every record has
    run = list_runs(tmp_path)[-1]
    df = load_results(str(run), tmp_path)
    toy = df[df["measurement"] == "toy"]
    assert len(toy) == 4 and set(toy["scale"]) == {"train", "cost"} and set(toy["batch_size"]) == {2}
    assert all(k.endswith(f"|toy|{s}|2") for k, s in zip(toy["key"], toy["scale"]))
    params = df[df["measurement"] == "params"].set_index(["model", "scale"])
    for _, r in toy.iterrows():  # the toy value is exact: parameter tensors x batch 2
        assert r["toy_tensors"] % 2 == 0 and r["toy_tensors"] > 0 and params.loc[(r["model"], r["scale"]), "params"] > 0

    # report: a main-table column per scale, its display header, and an ablation metric
    d = prepare(df)
    main = main_table(d)
    assert {"train_toy_tensors", "deploy_toy_tensors"} <= set(main.columns)
    assert main.attrs["batches"]["deploy"]["toy_tensors"] == 2
    disp = display_main_table(main, failed_cells(d))
    assert any(name == "toy tensors, batch 2" for _, name in disp.columns)
    d["point"] = json.dumps({"frames": 4})
    assert "toy_tensors" in set(ablation_table(d, "frames")["metric"])

    # compare: the metric is accepted, its unit said, ratios to the baseline computed
    out = tmp_path / "cmp"
    res = _cli("compare", run.name, "--metric", "toy_tensors", "--baseline", "single_frame", "--results", tmp_path,
               "--out", out, "--format", "json")
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert {r["model"] for r in cmp} == {"single_frame", "pool_avg"}
    assert all(r["ratio"] == "1" for r in cmp if r["model"] == "single_frame")
    assert "Values in tensors" in (out / "compare_toy_tensors.md").read_text()


def test_an_unregistered_measurement_is_refused_again(tmp_path):
    res = _cli("run", "--profile", "smoke", "--models", "single_frame", "--measure", "toy", "--device", "cpu",
               "--out", tmp_path)
    assert res.exit_code == 2 and "unknown measurement 'toy'" in res.stderr
