"""reid.records.stats: paired t p-values, Holm's adjustment, the same-seeds rule, power at 80 %."""

import math

import numpy as np
import pandas as pd
import pytest

from reid.records.stats import holm, min_detectable, paired_difference, paired_frame, paired_p, summary_table


def test_holm_matches_a_hand_computed_family():
    # m = 4, sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> raised to 0.06:
    # the monotonicity step keeps an adjusted p from falling below the one ranked before it)
    assert holm([0.01, 0.04, 0.03, 0.005]) == [0.03, 0.06, 0.06, 0.02]
    # capped at 1, and kept monotone after the cap: 0.6 x 2 = 1.2 -> 1, 0.9 x 1 -> max(1, 0.9) = 1
    assert holm([0.9, 0.6]) == [1.0, 1.0]
    # nan stays nan and is not one of the family (m = 2 here, not 3)
    out = holm([0.02, float("nan"), 0.03])
    assert math.isclose(out[0], 0.04) and math.isnan(out[1]) and math.isclose(out[2], 0.04)
    assert holm([]) == []


def test_paired_p_matches_the_closed_form_at_two_degrees_of_freedom():
    # differences 6.1, 3.8, 5.7: t = 5.2 / (sqrt(1.51) / sqrt(3)) = 7.3296; with 2 degrees of freedom the t CDF
    # is 1/2 + t / (2 sqrt(2 + t^2)), so the two-sided p is 1 - t / sqrt(2 + t^2) = 0.01811
    t = 5.2 / (math.sqrt(1.51) / math.sqrt(3))
    assert math.isclose(paired_p([6.1, 3.8, 5.7]), 1 - t / math.sqrt(2 + t * t), rel_tol=1e-9)
    assert math.isclose(paired_difference([31.2, 29.8, 33.0], [25.1, 26.0, 27.3])["p"], 0.01811, abs_tol=1e-5)
    assert paired_p([2.0, 2.0, 2.0]) == 0.0 and paired_p([0.0, 0.0]) == 1.0  # no spread: scipy gives nan


def test_min_detectable_has_80_percent_power():
    # large n: the normal approximation (z_0.975 + z_0.8) sd / sqrt(n) = 2.8016 / sqrt(n)
    assert math.isclose(min_detectable(400, 1.0), 2.8016 / 20, rel_tol=0.01)
    # n = 3: a paired t test on differences drawn around the MDE rejects 80 % of the time (Monte Carlo)
    mde = min_detectable(3, 2.0)
    rng = np.random.default_rng(0)
    draws = rng.normal(mde, 2.0, size=(40000, 3))
    t = draws.mean(1) / (draws.std(1, ddof=1) / math.sqrt(3))
    assert abs((np.abs(t) > 4.302653).mean() - 0.8) < 0.01
    assert mde > 4.302653 * 2.0 / math.sqrt(3)  # above the interval's half-width (which has ~50 % power)
    assert math.isnan(min_detectable(1, 1.0))


def _frame():
    rows = [{"label": "base", "seed": s, "mAP": v} for s, v in enumerate([10.0, 12.0, 11.0, 30.0, 31.0])]
    rows += [{"label": "row", "seed": s, "mAP": v} for s, v in enumerate([13.0, 14.0, 15.0])]
    rows += [{"label": "far", "seed": s, "mAP": v} for s, v in enumerate([40.0, 42.0, 41.5])]
    frame = pd.DataFrame(rows)
    frame["dataset"], frame["protocol"], frame["budget"] = "sysu", "sysu-all", 9
    frame["rank1"] = frame["mINP"] = frame["mAP"]
    return frame


def test_a_difference_and_its_means_use_the_shared_seeds_only():
    out = paired_frame(_frame(), "base").set_index("label")
    # the baseline has five seeds (mean 18.8); the row three: the baseline's mean beside its Δ is over 0-2
    assert out.loc["row", "seeds"] == [0, 1, 2] and out.loc["row", "n"] == 3
    assert math.isclose(out.loc["row", "base_mean"], 11.0) and math.isclose(out.loc["row", "row_mean"], 14.0)
    assert math.isclose(out.loc["row", "mean"], 3.0)
    text = summary_table(_frame(), "base")
    assert "| row | 0,1,2 (3) | 14.00 / 11.00 | +3.00" in text


def test_the_verdict_uses_the_holm_adjusted_p():
    out = paired_frame(_frame(), "base").set_index("label")
    # two comparisons in the family: each p is doubled (or raised to the smaller one's adjusted value)
    low, high = sorted([out.loc["row", "p"], out.loc["far", "p"]])
    assert math.isclose(min(out["p_holm"]), 2 * low) and math.isclose(max(out["p_holm"]), max(2 * low, high))
    for label, d in out.iterrows():
        assert d["verdict"].startswith("higher") == (d["p_holm"] < 0.05)


def test_data_seed_components_match_a_hand_computed_case():
    from reid.records.stats import data_seed_components

    # two draws, three training seeds each: means 2 and 6, within-draw variances 1 and 1
    c = data_seed_components({0: [1.0, 2.0, 3.0], 1: [5.0, 6.0, 7.0]})
    assert c["mean"] == 4.0 and c["var_training"] == 1.0
    # MS_between = 3 * var([2, 6]) = 3 * 8 = 24; sigma_d^2 = (24 - 1) / 3
    assert c["var_data"] == pytest.approx(23 / 3) and c["share_data"] == pytest.approx((23 / 3) / (23 / 3 + 1))
    # the interval is over the two draw means: 4 +- t(0.975, 1) * sqrt(8) / sqrt(2) = 4 +- 12.706 * 2
    assert c["high"] - c["mean"] == pytest.approx(12.7062047 * 2, rel=1e-6)
    # draws that agree: no share for the data seed (the estimate is clipped at 0)
    assert data_seed_components({0: [1.0, 3.0], 1: [3.0, 1.0]})["share_data"] == 0.0
    with pytest.raises(ValueError, match="same number"):
        data_seed_components({0: [1.0, 2.0], 1: [1.0]})
