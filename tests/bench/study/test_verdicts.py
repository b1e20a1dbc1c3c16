"""Planted results: hand-built records whose effect is known give the expected verdict, for every kind of
claim (each through a declared claim of bench/study/claims.py, so its declared direction is tested too)."""
import numpy as np
import pandas as pd
import pytest

from bench.measure import pack_correct
from bench.study import CLAIMS, evaluate
from bench.study.verdicts import CONTRADICTED, DECIDERS, NOT_RESOLVED, SUPPORTED, decide

BY = {c.name: c for c in CLAIMS}
N = 600


def acc(model, right, *, seed=0, pid="p0", n=N, **extra):
    """An ok accuracy record: ``right`` clips of ``n`` correct (the first ones), also as direction accuracy."""
    bits = np.zeros(n, bool)
    bits[:right] = True
    return {"measurement": "accuracy", "status": "ok", "scale": "train", "model": model, "seed": seed,
            "point_id": pid, "val_n": n, "acc_top1": right / n, "val_correct": pack_correct(bits),
            "acc_direction": right / n, **extra}


def frame(*recs):
    return pd.DataFrame(list(recs))


def verdict(name, records, levels=(("base", "p0"),)):
    return decide(BY[name], frame(*records), list(levels))


def test_every_decision_kind_is_planted_here():
    kinds = {c.decision.kind for c in CLAIMS}
    assert kinds == set(DECIDERS)  # a new kind needs its planted test below


# ------------------------------------------------------------------------------------------ paired_diff
@pytest.mark.parametrize("conv, lstm, expected", [
    (540, 300, SUPPORTED), (300, 540, CONTRADICTED), (420, 415, NOT_RESOLVED), (300, 300, NOT_RESOLVED)])
def test_paired_diff_one_seed_mcnemar(conv, lstm, expected):
    v = verdict("recurrent.convlstm_vs_lstm", [acc("conv_lstm", conv), acc("lstm", lstm)])
    assert v.verdict == expected, v.reason
    assert v.effect == pytest.approx((conv - lstm) / N)
    assert v.comparisons["test"].iloc[0] == "McNemar exact"
    if expected != NOT_RESOLVED:
        assert v.lo <= v.effect <= v.hi and np.sign(v.lo) == np.sign(v.hi)


def test_paired_diff_needs_every_comparison_for_support():
    # early fusion below lstm and tsm but level with the transformer: 2 of 3, not resolved
    recs = [acc("early_fusion", 200), acc("lstm", 500), acc("tsm", 520), acc("temporal_transformer", 205)]
    v = verdict("early_fusion.weak_order", recs)
    assert v.verdict == NOT_RESOLVED and "2 of 3" in v.reason
    recs[-1] = acc("temporal_transformer", 500)
    assert verdict("early_fusion.weak_order", recs).verdict == SUPPORTED
    recs[1] = acc("lstm", 100)  # one comparison resolved the other way: contradicted
    assert verdict("early_fusion.weak_order", recs).verdict == CONTRADICTED


def test_paired_diff_attribute_accuracy_one_seed_and_seeds():
    one = verdict("early_fusion.early_interaction", [acc("early_fusion", 540), acc("late_fusion", 300)])
    assert one.verdict == SUPPORTED and one.comparisons["test"].iloc[0] == "Newcombe + Fisher exact"
    seeds = [acc("early_fusion", 540 + s, seed=s) for s in range(3)] + [acc("late_fusion", 300 - 2 * s, seed=s)
                                                                         for s in range(3)]
    many = verdict("early_fusion.early_interaction", seeds)
    assert many.verdict == SUPPORTED and many.comparisons["test"].iloc[0] == "paired seed t"
    assert many.n_seeds == 3


def test_paired_diff_curve_auc_one_seed_is_not_resolved():
    recs = [acc("two_stream", 300, curve_auc=0.2), acc("early_fusion", 300, curve_auc=0.8),
            acc("tsm", 300, curve_auc=0.8)]
    v = verdict("two_stream.end_to_end", recs)
    assert v.verdict == NOT_RESOLVED and ">= 2 seeds" in v.reason
    recs = [acc(m, 300, seed=s, curve_auc=a + 0.01 * s) for s in range(3)
            for m, a in (("two_stream", 0.2), ("early_fusion", 0.8), ("tsm", 0.7))]
    recs[0]["curve_auc"] = 0.25  # some spread
    assert verdict("two_stream.end_to_end", recs).verdict == SUPPORTED


# ------------------------------------------------------------------------------------------ degradation
LEVELS = (("base", "clean"), ("noise=0.15", "noisy"))


@pytest.mark.parametrize("ts_noisy, others_noisy, expected", [
    (300, 520, SUPPORTED), (520, 300, CONTRADICTED), (500, 505, NOT_RESOLVED)])
def test_degradation_difference_in_differences(ts_noisy, others_noisy, expected):
    recs = [acc(m, 540, pid="clean") for m in ("two_stream", "early_fusion", "tsm")]
    recs += [acc("two_stream", ts_noisy, pid="noisy")] + [acc(m, others_noisy, pid="noisy")
                                                          for m in ("early_fusion", "tsm")]
    v = verdict("two_stream.noise_sensitivity", recs, LEVELS)
    assert v.verdict == expected, v.reason
    assert v.effect == pytest.approx(((540 - ts_noisy) - (540 - others_noisy)) / N)


def test_degradation_needs_two_levels():
    v = verdict("two_stream.camera_motion", [acc("two_stream", 300), acc("early_fusion", 300)])
    assert v.verdict == NOT_RESOLVED


# ------------------------------------------------------------------------------------------ bound
POOLS = ("pool_avg", "pool_max", "pool_attn")


@pytest.mark.parametrize("rights, expected, why", [
    ((1250, 1240, 1260), SUPPORTED, "at the ceiling"),
    ((1250, 1600, 1260), CONTRADICTED, "pool_max"),
    ((620, 640, 630), NOT_RESOLVED, "below it"),
])
def test_bound_reaches_but_does_not_pass_the_ceiling(rights, expected, why):
    recs = [acc(m, k, n=2500) for m, k in zip(POOLS, rights)]
    v = verdict("pooling.reversal_invariance", recs)
    assert v.verdict == expected and why in v.reason, v.reason
    assert v.null == 0.5


# ------------------------------------------------------------------------------------------ spread
OTHERS = ("early_fusion", "lstm", "conv_lstm", "two_stream")


def test_spread_f_test():
    rng = np.random.default_rng(0)
    recs = [acc("late_fusion", 300 + int(rng.integers(-1, 2)), seed=s) for s in range(10)]
    recs += [acc(m, 300 + int(rng.integers(-80, 81)), seed=s) for m in OTHERS for s in range(10)]
    v = verdict("late_fusion.stable_training", recs)
    assert v.verdict == SUPPORTED, v.reason
    assert v.effect < 1 and v.hi < 1
    swapped = [dict(r, model="early_fusion" if r["model"] == "late_fusion" else
                    "late_fusion" if r["model"] == "early_fusion" else r["model"]) for r in recs]
    assert verdict("late_fusion.stable_training", swapped).verdict == CONTRADICTED


def test_spread_with_one_seed_is_not_resolved():
    v = verdict("late_fusion.stable_training", [acc(m, 300) for m in ("late_fusion",) + OTHERS])
    assert v.verdict == NOT_RESOLVED and "2 seeds" in v.reason


# ------------------------------------------------------------------------------------------ share, ratio
def lat(model, *, seed=0, pid="p0", share=None, samples=(), scale="cost"):
    return {"measurement": "latency", "status": "ok", "scale": scale, "model": model, "seed": seed, "point_id": pid,
            "batch_size": 1, "flow_share": share, "latency_samples_ms": list(samples),
            "latency_ms_p50": float(np.median(samples)) if len(samples) else None}


@pytest.mark.parametrize("shares, expected", [
    ((0.61, 0.64, 0.60), SUPPORTED), ((0.011, 0.013, 0.012), CONTRADICTED), ((0.02, 0.5, 0.1), NOT_RESOLVED),
    ((0.6,), NOT_RESOLVED)])
def test_flow_share_against_threshold(shares, expected):
    recs = [lat("two_stream", seed=s, share=x) for s, x in enumerate(shares)]
    recs.append({"measurement": "flops", "status": "ok", "scale": "cost", "model": "two_stream", "seed": 0,
                 "point_id": "p0", "gmacs": 4.0, "by_module_gmacs": {"flow": 1.0, "spatial": 3.0}})
    v = verdict("two_stream.flow_cost", recs)
    assert v.verdict == expected, v.reason
    assert "FLOPs share 0.25" in v.comparisons["note"].iloc[0]


def test_train_scale_latency_is_not_read_for_a_deploy_claim():
    v = verdict("two_stream.flow_cost", [lat("two_stream", seed=s, share=0.6 + 0.01 * s, scale="train")
                                         for s in range(3)])
    assert v.verdict == NOT_RESOLVED and "no ok latency" in v.reason


@pytest.mark.parametrize("hidden_ms, expected", [(10.0, SUPPORTED), (90.0, CONTRADICTED), (50.0, NOT_RESOLVED)])
def test_latency_ratio(hidden_ms, expected):
    rng = np.random.default_rng(1)
    a = 50.0 + rng.normal(0, 1, 40)
    b = hidden_ms + rng.normal(0, 1, 40) if hidden_ms != 50.0 else 50.0 + rng.normal(0, 1, 40)
    v = verdict("hidden.no_flow", [lat("two_stream", samples=a), lat("hidden_two_stream", samples=b)])
    assert v.verdict == expected, v.reason
    assert v.null == 1.0 and v.lo <= v.effect <= v.hi


# ------------------------------------------------------------------------------------------ exact, missing
def par(model, first_conv, frames, pid):
    return {"measurement": "params", "status": "ok", "scale": "train", "model": model, "seed": 0, "point_id": pid,
            "first_conv_params": first_conv, "frames": frames}


def test_exact_scaling():
    levels = [("frames=2", "t2"), ("frames=4", "t4")]
    good = [par("single_frame", 432, 2, "t2"), par("early_fusion", 864, 2, "t2"),
            par("single_frame", 432, 4, "t4"), par("early_fusion", 1728, 4, "t4")]
    v = verdict("early_fusion.params_x_T", good, levels)
    assert v.verdict == SUPPORTED and v.exact
    bad = good[:3] + [par("early_fusion", 1700, 4, "t4")]
    assert verdict("early_fusion.params_x_T", bad, levels).verdict == CONTRADICTED
    assert verdict("early_fusion.params_x_T", good[:2], levels[:1]).verdict == NOT_RESOLVED


# ------------------------------------------------------------------------------------------ gain
GAIN_LEVELS = (("base", "scratch"), ("pretrained", "pre"))
STRATEGIES = ("late_fusion", "early_fusion", "pool_avg", "lstm", "conv_lstm")


def gains(**right):
    """Accuracy records at both levels: ``model=(scratch right, pretrained right)`` (first clips correct)."""
    return [acc(m, k, pid=pid) for m, (scr, pre) in right.items() for pid, k in (("scratch", scr), ("pre", pre))]


@pytest.mark.parametrize("late, others, expected, why", [
    ((300, 450), (300, 320), SUPPORTED, "all 5"),                    # late gains 25 points, the others 3
    ((300, 200), (300, 320), CONTRADICTED, "gain of late_fusion"),   # pre-training hurts late fusion
    ((300, 320), (300, 500), CONTRADICTED, "gain of late_fusion −"),  # it helps another strategy far more
    ((300, 305), (300, 300), NOT_RESOLVED, "0 of 5"),                # 5 discordant clips: no test resolves it
])
def test_pretraining_gain(late, others, expected, why):
    v = verdict("late_fusion.pretrained_reuse", gains(late_fusion=late, **{m: others for m in STRATEGIES[1:]}),
                GAIN_LEVELS)
    assert v.verdict == expected and why in v.reason, v.reason
    t = v.comparisons
    decided = t[~t["note"].str.startswith("context")]
    assert list(decided["comparison"]) == ["gain of late_fusion"] + [f"gain of late_fusion − gain of {m}"
                                                                      for m in STRATEGIES[1:]]
    assert decided["test"].iloc[0] == "McNemar exact" and decided["effect"].iloc[0] == pytest.approx(
        (late[1] - late[0]) / N)
    assert set(decided["test"].iloc[1:]) == {"exact sign-flip (per-clip difference in differences)"}
    assert decided["effect"].iloc[1] == pytest.approx(((late[1] - late[0]) - (others[1] - others[0])) / N)
    context = t[t["note"].str.startswith("context")]
    assert list(context["comparison"]) == [f"gain of {m}" for m in STRATEGIES[1:]]
    assert context["p_holm"].isna().all()
    assert list(context["effect"]) == pytest.approx([(others[1] - others[0]) / N] * 4)


def test_a_strategy_that_pretraining_hurts_is_context_not_a_contradiction():
    recs = gains(late_fusion=(300, 450), early_fusion=(540, 400), pool_avg=(300, 310), lstm=(300, 300),
                 conv_lstm=(500, 505))
    v = verdict("late_fusion.pretrained_reuse", recs, GAIN_LEVELS)
    assert v.verdict == SUPPORTED, v.reason
    row = v.comparisons.set_index("comparison").loc["gain of early_fusion"]
    assert row["effect"] == pytest.approx(-140 / N) and row["p_value"] < 1e-6 and "context" in row["note"]


def test_gain_needs_both_levels_and_the_subject():
    assert verdict("late_fusion.pretrained_reuse", gains(late_fusion=(300, 450)), GAIN_LEVELS[:1]).verdict \
        == NOT_RESOLVED
    v = verdict("late_fusion.pretrained_reuse", gains(early_fusion=(300, 450)), GAIN_LEVELS)
    assert v.verdict == NOT_RESOLVED and "no ok accuracy records of the subject" in v.reason


def test_sign_flip_is_mcnemar_on_single_steps_and_exact_with_double_ones():
    from itertools import product

    from bench.measure import mcnemar_exact
    from bench.study.verdicts import sign_flip_test

    rng = np.random.default_rng(3)
    a, b = rng.random(200) < 0.5, rng.random(200) < 0.6
    assert sign_flip_test(b.astype(int) - a.astype(int))["p_value"] == pytest.approx(mcnemar_exact(a, b).p_value)
    d = np.array([2, 2, 1, -1, 2, 0, 1, 2, 0, -2, 1])
    nz = np.abs(d[d != 0])
    sums = np.array([np.dot(nz, signs) for signs in product((-1, 1), repeat=len(nz))])  # every sign flip
    assert sign_flip_test(d)["p_value"] == pytest.approx(np.mean(np.abs(sums) >= abs(d.sum())))
    assert sign_flip_test(np.zeros(5, int))["p_value"] == 1.0


def test_a_claim_reads_only_its_own_seeds():
    recs = [acc("conv_lstm", 540 - s, seed=s) for s in range(3)] + [acc("lstm", 300 + s, seed=s) for s in range(3)]
    claim, levels = BY["recurrent.convlstm_vs_lstm"], [("base", "p0")]
    assert decide(claim, frame(*recs), levels).comparisons["test"].iloc[0] == "paired seed t"
    one = decide(claim, frame(*recs), levels, seeds=[0])
    assert one.comparisons["test"].iloc[0] == "McNemar exact" and one.n_seeds == 1


def test_evaluate_reads_the_plan_from_run_meta():
    meta = {"study": {"profile": "smoke", "claims": ["recurrent.convlstm_vs_lstm", "hidden.no_flow"],
                      "levels": {"recurrent.convlstm_vs_lstm": [["base", "p0"]]},
                      "skipped": {"hidden.no_flow": "needs hidden_two_stream (not in --models)"}}}
    res = evaluate(meta, frame(acc("conv_lstm", 540), acc("lstm", 300), acc("conv_lstm", 100, pid="other")))
    t = res.table()
    assert list(t["claim"]) == ["recurrent.convlstm_vs_lstm", "hidden.no_flow"]
    assert list(t["verdict"]) == [SUPPORTED, NOT_RESOLVED]
    assert "not tested" in t["reason"].iloc[1]


def test_flagged_latency_is_named_in_the_comparison():
    rng = np.random.default_rng(2)
    a = dict(lat("two_stream", samples=50 + rng.normal(0, 1, 30)), timing_quality="noisy")
    b = dict(lat("hidden_two_stream", samples=10 + rng.normal(0, 1, 30)), timing_quality="ok")
    v = verdict("hidden.no_flow", [a, b])
    assert "timing flagged: noisy (1 record(s))" in v.comparisons["note"].iloc[0]
