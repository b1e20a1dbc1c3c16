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


def test_smoke_study_pretrains_then_judges_every_strategys_gain(smoke):
    root, _ = smoke
    run_dir = next((root / "results").iterdir())
    meta = json.loads((run_dir / "run.json").read_text())
    pres = [p for p in meta["points"] if p.get("save_weights")]
    assert [p["models"] for p in pres] == [["single_frame"]] and meta["points"][0] is pres[0]  # it runs first
    (weights,) = run_dir.glob("weights/*-single_frame-seed0.pt")  # the one seed's encoder, in the run directory
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    (pretrain,) = [r for r in records if r.get("saved_weights")]
    assert pretrain["model"] == "single_frame" and pretrain["saved_weights"] == str(weights)
    levels = dict(meta["study"]["levels"]["late_fusion.pretrained_reuse"])
    tuned = [r for r in records if r["point_id"] == levels["pretrained"] and r["measurement"] == "accuracy"]
    assert {r["model"] for r in tuned} == {"late_fusion", "early_fusion", "pool_avg", "lstm"}
    assert all(r["status"] == "ok" for r in tuned)
    table = (root / "reports" / run_dir.name / "tables" / "claim_late_fusion_pretrained_reuse.csv").read_text()
    assert "gain of late_fusion,base: scratch → pretrained" in table and "McNemar exact" in table
    assert "gain of late_fusion − gain of early_fusion" in table and "exact sign-flip" in table
    md = (root / "reports" / run_dir.name / "report.md").read_text()
    assert "late_fusion.pretrained_reuse — missing" not in md and "pre-trained on the training split" in md
    # stable training asks for seeds 0..2: its models train them, the others keep the study's one seed
    base = levels["base"]
    seeds = {}
    for r in records:
        if r["point_id"] == base and r["measurement"] == "accuracy":
            seeds.setdefault(r["model"], set()).add(r["seed"])
    assert seeds["late_fusion"] == seeds["early_fusion"] == seeds["lstm"] == {0, 1, 2}
    assert seeds["pool_avg"] == seeds["pool_max"] == {0}
    assert "seeds: 0,1,2" in md


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
    assert len({(p.config_hash(), p.measurements, p.seeds) for p in plan.points}) == len(plan.points)
    few = plan_study(claims, "smoke", models="hidden_two_stream", device="cpu")
    assert set(few.skipped) == {c.name for c in claims} and "two_stream" in few.skipped["hidden.no_flow"]


def test_plan_pretrains_first_and_gives_extra_seeds_only_to_the_models_that_need_them():
    claims, _ = get_claims("late_fusion.*,recurrent.convlstm_vs_lstm")
    plan = plan_study(claims, "quick", device="cpu")
    pre = plan.points[0]
    assert pre.models == ("single_frame",) and pre.seeds == (0,) and pre.save_weights and not pre.weights
    levels = dict(plan.levels["late_fusion.pretrained_reuse"])
    assert list(levels) == ["base", "pretrained"]
    (tuned,) = [p for p in plan.points if p.config_hash() == levels["pretrained"]]
    assert tuned.weights == f"{{run}}/weights/{pre.config_hash()}-single_frame-seed{{seed}}.pt"
    assert set(tuned.models) == {"late_fusion", "early_fusion", "pool_avg", "lstm", "conv_lstm"}
    assert dict(tuned.point) == {"weights": tuned.weights}
    # the base point: one RunSpec per seed set, both the same point (config hash)
    base = [p for p in plan.points if p.config_hash() == levels["base"]]
    by_seeds = {p.seeds: set(p.models) for p in base}
    assert by_seeds == {(0, 1, 2): {"late_fusion", "early_fusion", "lstm", "conv_lstm", "two_stream"},
                        (0,): {"pool_avg"}}
    assert plan.claim_seeds == {"late_fusion.pretrained_reuse": [0], "late_fusion.stable_training": [0, 1, 2],
                                "late_fusion.weak_interaction": [0], "recurrent.convlstm_vs_lstm": [0]}
    again = plan_study(claims, "quick", device="cpu", seeds=(0, 1, 2, 3))
    assert {p.seeds for p in again.points} == {(0, 1, 2, 3)}  # asking for more seeds than min_seeds: all get them


def test_conv_fusion_claim_is_judged_over_three_seeds_not_one_seeds_networks():
    # the fusions differ by less than one model's seed-to-seed spread: a one-seed McNemar verdict flipped once
    claims, _ = get_claims("conv_fusion.vs_logit")
    plan = plan_study(claims, "quick", device="cpu")
    assert plan.claim_seeds == {"conv_fusion.vs_logit": [0, 1, 2]}
    (pt,) = plan.points
    assert pt.seeds == (0, 1, 2) and set(pt.models) == {"two_stream", "two_stream_conv", "two_stream_gated"}
