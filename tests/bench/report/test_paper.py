"""Paper-ready outputs: booktabs LaTeX, vector figures, the compact table, rounded CSVs, --format."""
import re
import shutil
import subprocess

import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.report import build_report, param_sweep
from bench.report.paper import round_significant, tex_escape


@pytest.fixture(scope="module")
def tex(runs, tmp_path_factory, param_counter):
    root, main, _, _ = runs
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(param_sweep, "_default_param_counter", param_counter)
        return build_report([main], results_root=root, out_root=tmp_path_factory.mktemp("tex"),
                            formats=("md", "tex"), dpi=40)


def _rows(table: str) -> list[str]:
    body = table.split(r"\midrule")[1].split(r"\bottomrule")[0]
    return [ln for ln in body.strip().splitlines() if ln.strip()]


def test_tex_is_booktabs_with_escaped_names_bold_best_and_caption(tex):
    t = (tex.out_dir / "tables" / "main.tex").read_text()
    assert t.count(r"\toprule") == t.count(r"\midrule") == t.count(r"\bottomrule") == 1
    assert r"\hline" not in t and r"\begin{tabular}" in t and r"\end{tabular}" in t
    header = t.split(r"\toprule")[1].split(r"\midrule")[0]
    n_cols = header.count("&") + 1
    rows = _rows(t)
    assert len(rows) == 6 and all(r.count("&") + 1 == n_cols and r.rstrip().endswith(r"\\") for r in rows)
    assert r"single\_frame" in t and "single_frame" not in t.replace(r"\_", "")  # every underscore escaped
    assert "GMACs" in header and "params (M)" in header and "latency p50 (ms)" in header and r"(MiB)" in header
    assert r"$\pm$" in t  # two seeds: mean ± CI
    # best accuracy of each family is bold: one per family (3 families), early_fusion beats conv_lstm
    bold = [r for r in rows if r"\bfseries" in r]
    assert len(bold) == 3 and any(r.startswith(r"early\_fusion") for r in bold)
    assert not any(r.startswith(r"conv\_lstm") and r"\bfseries" in r for r in rows)
    cap = re.search(r"\\caption\{(.*)\}", t).group(1)
    for part in ("T8 32$^2$ small\\_cnn", "T16 112$^2$ resnet18", "2 seeds", "Fake CPU @ 2GHz", "95\\%"):
        assert part in cap, part
    assert tex.latex is not None and tex.latex.exists() and tex.html is None


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_tex_compiles_with_pdflatex(tex, tmp_path):
    shutil.copytree(tex.out_dir, tmp_path / "r")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                          cwd=tmp_path / "r", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "r" / "report.pdf").stat().st_size > 10_000


def test_figures_in_png_pdf_and_svg(tex):
    for png in tex.figures.values():
        for ext, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")):
            p = png.with_suffix(f".{ext}")
            assert p.exists() and p.read_bytes()[:5].startswith(magic), p
        assert png.with_suffix(".pdf") in tex.files and png.with_suffix(".svg") in tex.files


def test_default_dpi_is_300(runs, tmp_path, monkeypatch, fake_runs):
    from PIL import Image

    monkeypatch.setattr(param_sweep, "_default_param_counter", fake_runs.fake_param_counter)
    root, _, abl, _ = runs
    r = build_report([abl], results_root=root, out_root=tmp_path, formats=("md",))
    dpi = Image.open(r.figures["pareto"]).info["dpi"]
    assert round(dpi[0]) == 300


def test_compact_main_table_then_full_table(tex):
    md = tex.markdown.read_text()
    main_sec = md.split("## Main table")[1].split("## Full table")[0]
    full_sec = md.split("## Full table")[1].split("\n## ")[0]
    header = next(ln for ln in main_sec.splitlines() if ln.startswith("| model"))
    assert "p90" not in header and "throughput" not in header and "ceiling" not in header and "train GMACs" not in header
    assert "deploy GMACs" in header and "deploy latency p50" in header and "deploy peak mem" in header
    full_header = next(ln for ln in full_sec.splitlines() if ln.startswith("| model"))
    assert "p90" in full_header and "train GMACs" in full_header and "ceiling" in full_header


def test_csvs_rounded_with_units(tex):
    main = pd.read_csv(tex.tables["main"])
    assert {"acc_top1_pct_mean", "acc_top1_pct_ci95", "deploy_latency_ms_p50", "deploy_peak_mem_mib"} <= set(main)
    assert main["acc_top1_pct_mean"].between(0, 100).all() and main["acc_top1_pct_mean"].max() > 1
    for path in tex.tables.values():
        if path.suffix == ".csv":
            text = path.read_text()
            assert not re.search(r"\d\.\d{6,}", text), path.name  # no 0.2862499952316284
    compact = pd.read_csv(tex.tables["compact"])
    assert list(compact.columns[:3]) == ["model", "family", "top1_pct"] and "latency p50 (ms)" in compact


def test_round_significant_and_escape():
    assert round_significant(0.2862499952316284) == 0.2862
    assert round_significant(1234567.0) == 1234567.0 and round_significant(12.3456) == 12.35
    assert round_significant(float("nan")) != round_significant(float("nan"))  # NaN stays NaN
    assert tex_escape("a_b & 50% ± 1") == r"a\_b \& 50\% $\pm$ 1"


def test_cli_unknown_format_is_one_line(runs):
    res = CliRunner().invoke(app, ["report", "run-main", "--results", str(runs[0]), "--format", "md,docx"])
    assert res.exit_code == 2
    lines = [ln for ln in (res.stderr or res.output).strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "md, html, tex" in lines[0] and "docx" in lines[0]


def _capture(monkeypatch):
    from bench.report import figures as F

    figs = []
    monkeypatch.setattr(F, "_save", lambda fig, path, dpi: figs.append(fig) or path)
    return F, figs


def test_compare_axis_spans_only_the_data_and_no_empty_panel(monkeypatch, tmp_path):
    F, figs = _capture(monkeypatch)
    t = pd.DataFrame({"group": ["g1", "g1", "g2", "g2", "g3", "g3"], "model": ["a", "b"] * 3,
                      "family": ["order_aware"] * 6, "ratio": [1.5, 3.0, 2.0, 4.0, 1.2, 8.0],
                      "ratio_ci_low": [1.4, 2.8, 1.9, 3.5, 1.1, 7.0], "ratio_ci_high": [1.6, 3.3, 2.2, 4.4, 1.3, 9.0],
                      "signif": ["***"] * 6, "status": ["ok"] * 6})
    F.compare_figure(t, tmp_path / "c.png", title="t", xlabel="ratio")
    axes = [ax for ax in figs[0].axes if ax.get_visible()]
    assert len(axes) == 3  # 3 groups on a 2x2 grid: the fourth panel is not drawn
    for ax in axes:
        lo, hi = ax.get_xlim()
        assert 0.85 < lo <= 1.0 and hi > 1.0  # every ratio above 1: nothing left of ~1x
        assert all(lo <= tick <= hi for tick in ax.get_xticks())


def test_params_lines_distinguishable(monkeypatch, tmp_path):
    F, figs = _capture(monkeypatch)
    rows = [dict(model=f"m{i}", family="order_aware", scale="deploy", frames=f, params=1e6 * (i + 1) + f,
                 first_conv_params=1e3 * (i + 1)) for i in range(8) for f in (1, 2, 4, 8)]
    F.params_figure(pd.DataFrame(rows), tmp_path / "p.png", source_note="built", dpi=40)
    lines = [ln for ln in figs[0].axes[0].get_lines() if ln.get_label().startswith("m")]
    assert len(lines) == 8
    assert len({(ln.get_linestyle(), ln.get_marker(), ln.get_color()) for ln in lines}) == 8


def test_accuracy_label_claims_ci_only_with_seeds():
    from bench.report.figures import accuracy_label

    one = pd.DataFrame({"acc_top1_ci95": [float("nan")] * 2})
    assert "CI over seeds" not in accuracy_label(one) and "no CI" in accuracy_label(one)
    assert "95% CI over seeds" in accuracy_label(pd.DataFrame({"acc_top1_ci95": [0.02, float("nan")]}))
