"""Accuracy statistics against hand computations and scipy: Wilson / Clopper-Pearson, exact McNemar, Holm,
packed per-clip correctness, sample efficiency from a learning curve."""
import math

import numpy as np
import pytest
from scipy import stats

from bench.config import get_profile
from bench.measure import (
    ceiling_verdict, clopper_pearson, holm, holm_adjusted, mcnemar_exact, pack_correct, sample_efficiency,
    unpack_correct, wilson_half_width, wilson_interval,
)


def test_wilson_matches_hand_formula():
    k, n, z = 50, 100, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(centre - half, abs=1e-12) and hi == pytest.approx(centre + half, abs=1e-12)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)  # textbook value for 50/100
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_clopper_pearson_matches_beta_quantiles():
    lo, hi = clopper_pearson(50, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.3983, 0.6017)
    assert clopper_pearson(0, 20) == (0.0, pytest.approx(1 - 0.025 ** (1 / 20)))  # closed form at k = 0


def test_quick_profile_validation_resolves_two_points_at_half():
    n = get_profile("quick").val_size
    assert wilson_half_width(0.5, n) <= 0.02


def test_mcnemar_exact_matches_hand_binomial():
    # 10 clips: A right only on 1, B right only on 6, both right on 3 -> b = 1, c = 6
    a = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 1], bool)
    b = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1], bool)
    t = mcnemar_exact(a, b)
    assert (t.a_only, t.b_only, t.n) == (1, 6, 10)
    assert t.p_value == pytest.approx(2 * (1 + 7) / 2**7)  # 2 * P(Binom(7, 1/2) <= 1) = 0.125
    assert t.p_value == pytest.approx(stats.binomtest(1, 7, 0.5).pvalue)
    assert t.diff == pytest.approx(0.4 - 0.9)
    assert mcnemar_exact(a, a).p_value == 1.0  # no discordant clip: nothing to resolve
    with pytest.raises(ValueError, match="same clips"):
        mcnemar_exact(a, b[:5])


def test_holm_step_down():
    p = [0.01, 0.04, 0.03]
    assert holm(p) == [True, False, False]   # 0.01 <= .05/3; 0.03 > .05/2 stops
    assert holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.001, 0.02]) == [True, True]


def test_pack_correct_round_trip_is_compact():
    rng = np.random.default_rng(0)
    bits = rng.random(2500) < 0.7
    text = pack_correct(bits)
    assert len(text) <= 420
    assert np.array_equal(unpack_correct(text, 2500), bits)
    with pytest.raises(ValueError):
        unpack_correct(text, 3000)


def test_ceiling_verdict_uses_the_interval():
    assert ceiling_verdict(286, 1000, 0.25) == "above ceiling"             # 28.6 % of 1000: lo 25.9 %
    assert ceiling_verdict(26, 100, 0.25) == "within sampling error"       # 26 % of 100 covers 25 %
    assert ceiling_verdict(100, 1000, 0.25) == "below ceiling"


def test_sample_efficiency_hand_computed():
    curve = [{"step": 10, "stop_acc": 0.5, "train_gmacs": 1.0}, {"step": 20, "stop_acc": 0.95, "train_gmacs": 2.0},
             {"step": 30, "stop_acc": 1.0, "train_gmacs": 3.0}]
    se = sample_efficiency(curve, 1.0, budget_steps=40)
    assert (se["steps_to_90"], se["gmacs_to_90"], se["steps_to_99"], se["gmacs_to_99"]) == (20, 2.0, 30, 3.0)
    # trapezoids from (0, 0): 10*0.25 + 10*0.725 + 10*0.975 + 10*1.0 (held) = 29.5 over 40 steps
    assert se["curve_auc"] == pytest.approx(29.5 / 40)
    never = sample_efficiency(curve, None, budget_steps=40)
    assert never["steps_to_90"] is None and never["gmacs_to_99"] is None
