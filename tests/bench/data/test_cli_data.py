"""`bench data export / preview`: thin adapters; bad input is one line and exit code 2."""
from __future__ import annotations

from typer.testing import CliRunner

from bench.cli_data import app
from bench.data import DatasetSpec, build_dataset
from fusion_models.clip import ClipSpec

runner = CliRunner()


def test_export_writes_a_readable_ucf101_layout(tmp_path):
    res = runner.invoke(app, ["export", "--out", str(tmp_path), "--videos-per-class", "2", "--format", "avi",
                              "--dataset", "synthetic-order"])
    assert res.exit_code == 0, res.output
    assert "wrote 12 videos" in res.output
    ds = build_dataset(DatasetSpec(name="ucf101", root=str(tmp_path)), ClipSpec(), "train")
    assert ds.class_names[:2] == ["Forward", "Backward"] and len(ds) == 6 and ds.skipped == []


def test_export_and_preview_errors_are_one_line_with_exit_code_2(tmp_path):
    res = runner.invoke(app, ["export", "--out", str(tmp_path), "--format", "mkv"])
    assert res.exit_code == 2 and "mp4 or avi" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["export", "--out", str(tmp_path), "--dataset", "ucf101"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["preview", "--dataset", "folder", "--root", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_preview_writes_a_png_and_lists_ceilings(tmp_path):
    out = tmp_path / "p.png"
    res = runner.invoke(app, ["preview", "--out", str(out), "--clips", "2"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 0 and "order_invariant 50%" in res.output
