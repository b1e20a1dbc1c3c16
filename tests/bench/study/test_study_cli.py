"""``bench study`` end to end (a smoke study through the CLI: every claim row, the claims section of the
report, resume) and its bad input; the planner's merging and skipping."""
import json

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.study import CLAIMS, get_claims, plan_study

runner = CliRunner()
# Every model the smoke study trains in this test: the flow models' latency rounds take a minute at any clip
# (Horn-Schunck iterations), so the two-stream claims are named as "not tested" here and their deciders are
# covered by the planted tests (test_verdicts.py).
MODELS = "single_frame,early_fusion,late_fusion,pool_avg,pool_max,pool_attn,lstm"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    res = invoke("study", "--profile", "smoke", "--seeds", "0", "--models", MODELS, "--claims", "all,no_such_claim",
                 "--out", root / "results", "--reports", root / "reports", "--format", "md")
    return root, res


def test_smoke_study_writes_every_claim_row(smoke):
    root, res = smoke
    assert res.exit_code == 0, res.output
    assert "unknown claim 'no_such_claim'" in res.output  # said, and the rest ran
    assert "claim two_stream.flow_cost not tested: needs two_stream (not in --models)" in res.output
    run_dir = next((root / "results").iterdir())
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["study"]["claims"] == [c.name for c in CLAIMS]
    report = root / "reports" / run_dir.name
    md = (report / "report.md").read_text()
    assert "## Claims of the notes" in md
    for c in CLAIMS:
        assert f"### {c.name} — " in md and c.name in res.output
    rows = (report / "tables" / "claims.csv").read_text().splitlines()
    assert len(rows) == 1 + len(CLAIMS)
    # a count is decided exactly even at smoke size; a claim without its models is not resolved, saying why
    assert "early_fusion.params_x_T — supported" in md
    assert "two_stream.flow_cost — not resolved" in md and "not tested: needs two_stream" in md
    assert (report / "figures" / "claim_early_fusion_params_x_T.png").exists()
    assert (report / "figures" / "claim_early_fusion_weak_order.png").exists()


def test_resume_a_study_measures_nothing_twice_and_judges_again(smoke):
    root, res = smoke
    run_id = next((root / "results").iterdir()).name
    again = invoke("study", "--resume", run_id, "--out", root / "results", "--reports", root / "reports",
                   "--format", "md")
    assert again.exit_code == 0, again.output
    assert "already recorded" in again.output and "early_fusion.params_x_T" in again.output


@pytest.mark.parametrize("args, needle", [
    (["--profile", "huge"], "unknown study profile 'huge'"),
    (["--claims", "nope"], "no claim selected"),
    (["--seeds", "a,b"], "--seeds"),
    (["--models", "pool_avj"], "pool_avj"),
    (["--models", "single_frame", "--claims", "conv_fusion.*"], "none of the selected claims can be tested"),
    (["--device", "tpu"], "device"),
    (["--format", "pdf"], "--format"),
    (["--resume", "study-missing"], "not found"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    res = invoke("study", *args, "--out", tmp_path)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # nothing was started


def test_resume_of_an_ordinary_run_is_refused(tmp_path):
    run = tmp_path / "run-x"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "run-x", "points": []}))
    (run / "records.jsonl").write_text("")
    res = invoke("study", "--resume", "run-x", "--out", tmp_path)
    assert res.exit_code == 2 and "not a study" in res.output


def test_list_names_every_claim():
    res = invoke("study", "--list")
    assert res.exit_code == 0
    for c in CLAIMS:
        assert c.name in res.output


def test_only_untestable_claims_need_no_run(tmp_path):
    res = invoke("study", "--claims", "late_fusion.pretrained_reuse", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "not resolved" in res.output and "pre-training" in res.output
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ planner
def test_plan_merges_points_and_names_what_is_missing():
    claims, problems = get_claims("hidden.*,two_stream.noise_sensitivity,bogus")
    assert [c.name for c in claims] == ["hidden.no_flow", "hidden.weaker_motion", "two_stream.noise_sensitivity"]
    assert len(problems) == 1 and "bogus" in problems[0]
    plan = plan_study(claims, "smoke", device="cpu")
    # noise=0 and camera=0 are the clean point: hidden.weaker_motion has 3 levels, not 4
    assert [label for label, _ in plan.levels["hidden.weaker_motion"]] == ["base", "noise=0.3", "camera=2"]
    # the noisy point is shared: trained once for both claims, with the union of their models
    noisy = plan.levels["hidden.weaker_motion"][1][1]
    assert plan.levels["two_stream.noise_sensitivity"][1][1] == noisy
    (pt,) = [p for p in plan.points if p.config_hash() == noisy]
    assert set(pt.models) == {"two_stream", "hidden_two_stream", "early_fusion", "tsm"}
    assert dict(pt.point) == {"noise": 0.3}
    assert len({(p.config_hash(), p.measurements) for p in plan.points}) == len(plan.points)
    few = plan_study(claims, "smoke", models="hidden_two_stream", device="cpu")
    assert set(few.skipped) == {c.name for c in claims} and "two_stream" in few.skipped["hidden.no_flow"]
