"""build_report end to end on fake runs: files, tables, self-contained HTML, failures, bad input."""
import re

import pandas as pd
import pytest

from bench.report import build_report
from bench.report import param_sweep
from bench.results import RunNotFoundError, RunStore



def test_main_report_writes_every_file(reports):
    r = reports["main"]
    assert r.out_dir.name == "run-main" and r.markdown.exists() and r.html.exists()
    assert r.files[:2] == [r.markdown, r.html] and all(p.exists() for p in r.files)
    assert set(r.figures) == {"pareto", "ceilings", "params_vs_frames", "flow_split"}
    assert {"main", "failures", "ceilings", "flow_split", "params_vs_frames"} <= set(r.tables)
    for p in [*r.figures.values(), *r.tables.values()]:
        assert p.exists() and p.stat().st_size > 0 and p.parent.parent == r.out_dir
    csv = pd.read_csv(r.tables["main"])
    assert len(csv) == 6 and "deploy_latency_ms_p50" in csv


def test_html_is_self_contained_and_has_every_figure(reports):
    r = reports["main"]
    html = r.html.read_text()
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) == len(r.figures)
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    for p in r.figures.values():
        assert f'data-file="{p.name}"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no external requests


def test_markdown_content(reports):
    md = reports["main"].markdown.read_text()
    for p in reports["main"].figures.values():
        assert f"(figures/{p.name})" in md
    for heading in ("## Main table", "## Accuracy vs cost", "## Accuracy against the Bayes ceiling",
                    "## Parameters vs clip length", "## Two-stream latency", "## Failed measurements",
                    "## Environment and provenance"):
        assert heading in md
    assert "deploy clip T16 112² resnet18" in md and "train clip T8 32² small_cnn" in md
    assert "OOM" in md and "not enough memory" in md  # failed cells and the error message both shown
    assert "bench run --models all" in md and "Fake CPU @ 2GHz" in md and "abc1234" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| conv_lstm")]
    assert table and "oom" in table[0]


def test_ablation_report(reports):
    r = reports["ablation"]
    assert "ablation_frames" in r.figures and "ablation_frames" in r.tables
    assert len(r.main_table) == 9 and "point" in r.main_table
    assert "from the ablation over frames" in r.markdown.read_text()
    assert "## Failed measurements" in r.markdown.read_text() and "None: every measurement" in r.markdown.read_text()


def test_two_runs_and_only_md(runs, tmp_path, monkeypatch, capsys, fake_runs):
    monkeypatch.setattr(param_sweep, "_default_param_counter", fake_runs.fake_param_counter)
    root, main, abl, _ = runs
    r = build_report([main, abl], results_root=root, out_root=tmp_path, formats=("md",), dpi=40)
    assert r.out_dir.name == "run-main+1" and r.html is None and r.markdown.exists()
    assert "run_id" in r.main_table and len(r.main_table) == 6 + 9
    assert "### Run run-main" in r.markdown.read_text() and "### Run run-ablate" in r.markdown.read_text()
    assert capsys.readouterr() == ("", "")  # the library never prints


def test_partial_run_warns_and_single_seed_says_no_ci(tmp_path, monkeypatch, fake_runs):
    monkeypatch.setattr(param_sweep, "_default_param_counter", fake_runs.fake_param_counter)
    fake_runs.write_run(tmp_path, "run-partial", models={"single_frame": fake_runs.MODELS["single_frame"]}, seeds=(0,),
              status="interrupted", oom=None, cost_scale=False)
    r = build_report(["latest"], results_root=tmp_path, out_root=tmp_path / "rep", dpi=40)
    md = r.markdown.read_text()
    assert r.run_ids == ["run-partial"] and "**interrupted**" in md and f"bench run --resume run-partial --out {tmp_path}" in md
    assert "no confidence interval" in md


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(runs=["run-nope"]), RunNotFoundError, "run-nope"),
    (dict(runs=[]), ValueError, "no run given"),
    (dict(runs=["run-main"], formats=("pdf",)), ValueError, "choose from md, html"),
])
def test_bad_input(runs, tmp_path, kwargs, err, match):
    root = runs[0]
    with pytest.raises(err, match=match):
        build_report(results_root=root, out_root=tmp_path, **kwargs)


def test_run_without_records(tmp_path):
    RunStore.create(tmp_path, "run-empty")
    with pytest.raises(ValueError, match="no records"):
        build_report(["run-empty"], results_root=tmp_path, out_root=tmp_path / "rep")


def test_flagged_latency_travels(tmp_path, monkeypatch, fake_runs):
    """Flagged timings are marked in the main table, the flow split and the summary, and leave the front."""
    monkeypatch.setattr(param_sweep, "_default_param_counter", fake_runs.fake_param_counter)
    root = tmp_path / "results"
    # early_fusion is the most accurate and the cheapest order-aware model: on every front unless flagged
    fake_runs.write_run(root, "run-flags", flags={"early_fusion": "contended", "two_stream": "noisy"}, oom=None)
    r = build_report(["run-flags"], results_root=root, out_root=tmp_path / "rep", formats=("md",), dpi=40)
    main = r.main_table
    q = dict(zip(main["model"], main["deploy_timing_quality"]))
    assert q["early_fusion"] == "contended" and q["two_stream"] == "noisy" and q["single_frame"] == "ok"
    md = r.markdown.read_text()
    summary = md.split("## Main table")[0]
    assert "Latency flagged" in summary and "early_fusion (deploy, batch 1): contended — contended on purpose" in summary
    assert "two_stream" in summary.split("Latency flagged")[1]
    table = md.split("## Main table")[1].split("##")[0]
    ef_row = next(ln for ln in table.splitlines() if ln.startswith("| early_fusion"))
    assert "(contended)" in ef_row
    sf_row = next(ln for ln in table.splitlines() if ln.startswith("| single_frame"))
    assert "(" not in sf_row.split("|", 3)[3].replace("(n=1)", "")  # nothing marked on a clean row
    front = next(ln for ln in md.splitlines() if "Pareto-optimal for accuracy vs latency" in ln)
    assert "early_fusion" not in front
    gm_front = next(ln for ln in md.splitlines() if "Pareto-optimal for accuracy vs GMACs" in ln)
    assert "early_fusion" in gm_front  # GMACs are not timings: the flag does not touch them
    flow = pd.read_csv(r.tables["flow_split"])
    assert set(flow["timing_quality"]) == {"noisy"}
    flagged = pd.read_csv(r.tables["flagged_latency"])
    assert set(flagged["model"]) == {"early_fusion", "two_stream"}
    asked = build_report(["run-flags"], results_root=root, out_root=tmp_path / "rep2", formats=("md",), dpi=40,
                         include_flagged=True)
    front = next(ln for ln in asked.markdown.read_text().splitlines() if "Pareto-optimal for accuracy vs latency" in ln)
    assert "early_fusion" in front
