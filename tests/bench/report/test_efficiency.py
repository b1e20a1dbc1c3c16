"""Plateau-protocol accuracy in reports and compare: sample-efficiency table and figure, paired tests
(exact McNemar on one seed, seed t-interval on several), findings only where Holm resolves them, results
above their ceiling judged against their interval, bench compare on acc_top1 with the paired test."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.measure import pack_correct
from bench.report import build_report
from bench.report import efficiency as EF
from bench.report.compare import compare_runs
from bench.results import RunStore, load_results

N = 1000


def _correct(acc: float, seed: int, base: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if base is not None:  # differs from base on 6 clips, 3 each way: McNemar p = 1
        out = base.copy()
        flip = np.r_[rng.choice(np.flatnonzero(base), 3, replace=False), rng.choice(np.flatnonzero(~base), 3, replace=False)]
        out[flip] = ~out[flip]
        return out
    return rng.random(N) < acc


def _write(root, run_id, seeds=(0,)):
    store = RunStore.create(root, run_id)
    store.write_meta({"run_id": run_id, "points": [], "spec": {"models": [], "seeds": list(seeds)}, "status": "complete"})
    for seed in seeds:
        strong = _correct(0.97, seed)
        models = {  # name: (family, correctness, ceiling, converged)
            "early_fusion": ("order_aware", strong, 1.0, True),
            "two_stream": ("order_aware", _correct(0, seed + 1, base=strong), 1.0, True),  # ~6 clips differ
            "pool_avg": ("order_invariant", _correct(0.50, seed + 2), 0.5, False),
            "single_frame": ("single_frame", _correct(0.286, seed + 3), 0.25, True),       # 28.6 % > 25 %
        }
        for model, (fam, corr, ceil, conv) in models.items():
            curve = [{"step": s, "samples": 32 * s, "train_gmacs": 0.01 * s, "stop_acc": min(ceil, corr.mean() * s / 300),
                      "stop_loss": 1.0, "train_loss": 1.0, "wall_s": s / 10} for s in (75, 150, 225, 300)]
            acc = float(corr.mean())
            store.append({"model": model, "family": fam, "seed": seed, "measurement": "accuracy", "scale": "train",
                          "status": "ok", "point": "{}", "acc_top1": acc, "val_n": N,
                          "acc_top1_lo": acc - 0.03, "acc_top1_hi": acc + 0.03, "val_correct": pack_correct(corr),
                          "ceiling_top1": ceil, "stop_reason": "plateau" if conv else "budget", "converged": conv,
                          "steps": 300, "samples_seen": 9600, "fit_n": 2400, "train_gmacs": 3.0, "train_time_s": 5.0,
                          "learning_curve": json.dumps(curve), "steps_to_90": 300.0 if conv else None,
                          "gmacs_to_90": 3.0 if conv else None, "steps_to_99": None, "gmacs_to_99": None,
                          "curve_auc": 0.5})
    return run_id


@pytest.fixture
def one_seed(tmp_path):
    _write(tmp_path, "one")
    return tmp_path, load_results([str(tmp_path / "one")], tmp_path)


def test_paired_mcnemar_and_seed_t(tmp_path, one_seed):
    _, df = one_seed
    acc = df[df["measurement"] == "accuracy"]
    ef, ts, pa = (acc[acc["model"] == m] for m in ("early_fusion", "two_stream", "pool_avg"))
    close = EF.paired_test(ef, ts)
    assert close["test"] == "McNemar exact" and close["n_pairs"] == N and close["p_value"] > 0.05
    far = EF.paired_test(pa, ef)
    assert far["p_value"] < 1e-6 and far["diff"] > 0.4 and far["diff_lo"] < far["diff"] < far["diff_hi"]
    _write(tmp_path, "three", seeds=(0, 1, 2))
    df3 = load_results([str(tmp_path / "three")], tmp_path)
    a3 = df3[df3["measurement"] == "accuracy"]
    t = EF.paired_test(a3[a3["model"] == "pool_avg"], a3[a3["model"] == "early_fusion"])
    assert t["test"] == "paired seed t" and t["n_pairs"] == 3 and t["p_value"] < 0.05


def test_findings_state_only_resolved_differences(one_seed):
    _, df = one_seed
    items = " ".join(EF.accuracy_findings(df))
    assert "Not distinguishable from the most accurate" in items
    tied = next(s for s in EF.accuracy_findings(df) if s.startswith("Not distinguishable"))
    resolved = next(s for s in EF.accuracy_findings(df) if s.startswith("Resolved below"))
    assert "two_stream" in tied and "pool_avg" in resolved and "pool_avg" not in tied
    assert "single_frame" in items and "above its 25 % ceiling" in items
    assert "Not converged" in items and "pool_avg (0/1)" in items


def test_above_ceiling_is_judged_against_the_interval():
    assert EF.ceiling_judgement(0.286, 286, 1000, None, 0.25) == "above ceiling (flag)"   # Wilson lo 25.9 %
    assert EF.ceiling_judgement(0.26, 26, 100, None, 0.25) == "within sampling error"
    assert EF.ceiling_judgement(0.27, None, None, 0.03, 0.25) == "within sampling error"  # seed interval
    assert EF.ceiling_judgement(0.20, 20, 100, None, 0.25) == ""                          # below: no verdict


def test_report_has_efficiency_figure_table_and_no_negative_gap(one_seed, tmp_path):
    root, _ = one_seed
    rep = build_report(["one"], results_root=root, out_root=tmp_path / "rep")
    assert "sample_efficiency" in rep.figures and rep.figures["sample_efficiency"].stat().st_size > 0
    md = rep.markdown.read_text()
    assert "## Training to a plateau: sample efficiency" in md and "steps to 90 %" in md
    import pandas as pd

    eff = pd.read_csv(rep.tables["sample_efficiency"])
    assert set(eff["model"]) == {"early_fusion", "two_stream", "pool_avg", "single_frame"}
    assert eff.loc[eff["model"] == "single_frame", "vs_ceiling"].iloc[0] == "above ceiling (flag)"
    ceil = pd.read_csv(rep.tables["ceilings"])
    assert (ceil["gap_to_ceiling_pct"].dropna() >= 0).all()  # CSVs hold accuracies in % (bench.report.paper)


def test_compare_accuracy_uses_the_paired_test(one_seed, tmp_path):
    root, _ = one_seed
    res = compare_runs("one", metric="acc_top1", baseline="early_fusion", results_root=root, out_dir=tmp_path / "c")
    t = res.table.set_index("model")
    assert t.loc["two_stream", "test"] == "McNemar exact" and t.loc["two_stream", "signif"] == "n.s."
    assert t.loc["pool_avg", "p_holm"] < 0.05 and t.loc["pool_avg", "signif"] != "n.s."
    assert not any("no significance test" in n for n in res.notes)
