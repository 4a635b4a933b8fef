"""The fairness audit (riskstrat/modelling/fairness.py) on synthetic scores with known answers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from riskstrat.modelling.fairness import EVERYONE, audit, commissioner_summary
from riskstrat.modelling.spec import RiskBand
from riskstrat.privacy.disclosure import SUPPRESSED

BANDS = (
    RiskBand(name="very high", top_share=0.005),
    RiskBand(name="high", top_share=0.05),
    RiskBand(name="moderate", top_share=0.20),
    RiskBand(name="low", top_share=1.0),
)


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True risks (a skewed spread, mean about 0.08) and outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    risk = 1 / (1 + np.exp(-(rng.normal(-2.8, 1.0, n))))
    return risk, (rng.random(n) < risk).astype(int)


def _row(result, variable: str, group: str) -> pd.Series:
    t = result.by_group
    return t[(t["variable"] == variable) & (t["group"] == group)].iloc[0]


def test_calibrated_group_has_oe_and_slope_one_and_halved_predictions_oe_two():
    risk, y = _population(60_000, 1)
    arm = np.where(np.arange(y.size) % 2 == 0, "calibrated", "halved")
    p = np.where(arm == "halved", risk / 2, risk)
    result = audit(y, p, p, pd.DataFrame({"arm": arm}), BANDS, seed=3, n_boot=100)
    ok = _row(result, "arm", "calibrated")
    assert ok["o_e_lo"] <= 1 <= ok["o_e_hi"] and abs(ok["o_e"] - 1) < 0.05
    assert ok["calibration_slope_lo"] <= 1 <= ok["calibration_slope_hi"] and abs(ok["calibration_slope"] - 1) < 0.1
    halved = _row(result, "arm", "halved")
    assert halved["o_e_lo"] <= 2 <= halved["o_e_hi"] and abs(halved["o_e"] - 2) < 0.1
    metrics = result.headline_metrics()
    assert metrics["fairness_oe_deviation_arm"] == pytest.approx(halved["o_e"] - 1)
    assert metrics["fairness_auroc_gap_arm"] == pytest.approx(abs(ok["auroc"] - halved["auroc"]))


def test_rates_at_a_band_threshold_match_a_hand_count():
    # ten people ranked 0 (highest) to 9; groups a (even ranks) and b (odd ranks)
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    score = np.arange(10, 0, -1) / 10
    groups = pd.DataFrame({"g": ["a", "b"] * 5})
    bands = (RiskBand(name="top 30%", top_share=0.3), RiskBand(name="top half", top_share=0.5))
    result = audit(y, score, score, groups, bands, n_boot=0, min_people=1, min_events=1)
    t = result.by_threshold.set_index(["variable", "group", "band"])
    # top 30% = ranks 0-2: a flags 0 and 2 (both events), b flags 1 (no event)
    assert t.loc[("g", "a", "top 30%"), ["fpr", "fnr", "ppv"]].tolist() == [0, 0, 1]
    assert t.loc[("g", "b", "top 30%"), ["fpr", "fnr", "ppv"]].tolist() == [0.25, 1, 0]
    # top half = ranks 0-4: a flags 0, 2, 4 (events at 0 and 2; non-events of a: 4, 6, 8)
    assert t.loc[("g", "a", "top half"), ["fpr", "fnr", "ppv"]].tolist() == pytest.approx([1 / 3, 0, 2 / 3])
    # b flags 1 and 3 (non-events of b: 1, 3, 7, 9); its one event (5) is missed
    assert t.loc[("g", "b", "top half"), ["fpr", "fnr", "ppv"]].tolist() == [0.5, 1, 0]
    assert t.loc[(EVERYONE, EVERYONE, "top half"), ["fpr", "fnr", "ppv"]].tolist() == pytest.approx(
        [3 / 7, 1 / 3, 2 / 5]
    )
    assert t.loc[("g", "a", "top half"), "flagged_share"] == pytest.approx(3 / 5)


def test_rates_agree_with_fairlearn_metric_frame():
    fairlearn = pytest.importorskip("fairlearn.metrics")
    from sklearn.metrics import precision_score

    risk, y = _population(5_000, 2)
    groups = pd.DataFrame({"g": np.random.default_rng(0).choice(["x", "y", "z"], y.size)})
    result = audit(y, risk, risk, groups, BANDS, n_boot=0)
    flagged = np.zeros(y.size, dtype=int)
    flagged[np.argsort(-risk, kind="stable")[: round(0.05 * y.size)]] = 1
    frame = fairlearn.MetricFrame(
        metrics={
            "fpr": fairlearn.false_positive_rate,
            "fnr": fairlearn.false_negative_rate,
            "ppv": lambda a, b: precision_score(a, b, zero_division=np.nan),
        },
        y_true=y,
        y_pred=flagged,
        sensitive_features=groups["g"],
    ).by_group
    ours = result.by_threshold.query("variable == 'g' and band == 'high'").set_index("group")
    for metric in ("fpr", "fnr", "ppv"):
        assert ours[metric].to_numpy() == pytest.approx(frame.loc[ours.index, metric].to_numpy())


def test_auroc_and_slope_per_group_are_those_of_the_whole_group():
    risk, y = _population(20_000, 4)
    rank = np.round(risk, 2)  # many ties: AUROC counts them as half
    groups = pd.DataFrame({"g": np.where(np.arange(y.size) < 7_000, "first", "rest")})
    p = np.clip(risk * 1.3, 0, 0.99)
    result = audit(y, p, rank, groups, BANDS, n_boot=0)
    for group, sel in (("first", slice(0, 7_000)), ("rest", slice(7_000, None))):
        row = _row(result, "g", group)
        assert row["auroc"] == pytest.approx(roc_auc_score(y[sel], rank[sel]), abs=1e-9)
        reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(logit(p[sel])[:, None], y[sel])
        assert row["calibration_slope"] == pytest.approx(reference.coef_[0, 0], abs=1e-6)
        assert row["o_e"] == pytest.approx(y[sel].sum() / p[sel].sum(), rel=1e-5)
        assert (row["people"], row["events"]) == (y[sel].size, y[sel].sum())


def test_intervals_contain_the_estimate_and_narrow_with_more_people():
    widths = {}
    for n in (4_000, 64_000):
        risk, y = _population(n, 5)
        result = audit(y, risk, risk, pd.DataFrame({"g": ["one"] * n}), BANDS, seed=1, n_boot=100)
        row = _row(result, "g", "one")
        band = result.by_threshold.query("variable == 'g' and band == 'moderate'").iloc[0]
        for t, metric in [(row, m) for m in ("auroc", "o_e", "calibration_slope")] + [
            (band, m) for m in ("fpr", "fnr", "ppv")
        ]:
            assert t[f"{metric}_lo"] <= t[metric] <= t[f"{metric}_hi"], (n, metric)
            widths.setdefault(metric, []).append(t[f"{metric}_hi"] - t[f"{metric}_lo"])
    for metric, (small, large) in widths.items():
        assert large < small / 2, metric  # 16 times the people: about a quarter of the width


def test_small_groups_are_withheld_with_their_reason():
    risk, y = _population(6_000, 6)
    g = np.array(["large"] * y.size, dtype=object)
    g[:30] = "tiny"  # 30 people
    few_events = np.flatnonzero(y == 0)[100:300]
    g[few_events] = "no events"  # 200 people, none with the event
    low = np.flatnonzero((risk < np.median(risk)) & (g == "large"))[:1_000]
    g[low] = "lower half"  # never in the top 0.5%
    result = audit(y, risk, risk, pd.DataFrame({"g": g}), BANDS, n_boot=20)
    tiny, none = _row(result, "g", "tiny"), _row(result, "g", "no events")
    assert tiny["withheld"] == "fewer than 50 people" and none["withheld"] == "fewer than 10 events"
    for row in (tiny, none):
        assert row[["people", "events", "auroc", "auroc_lo", "o_e", "calibration_slope_hi"]].isna().all()
    withheld = result.by_threshold[result.by_threshold["group"].isin(["tiny", "no events"])]
    assert withheld[["flagged_share", "fpr", "fnr_hi", "ppv"]].isna().all().all()
    assert not {"tiny", "no events"} & (set(result.curves["group"]) | set(result.calibration["group"]))
    # nobody of the lower half is in the top 0.5%: its PPV there would rest on no one
    very_high = result.by_threshold.query("group == 'lower half' and band == 'very high'").iloc[0]
    assert np.isnan(very_high["ppv"]) and very_high["withheld"] == "ppv: fewer than 10 flagged"
    assert (very_high["fnr"], very_high["fpr"], very_high["flagged_share"]) == (1, 0, 0)
    summary = commissioner_summary(result).set_index(["variable", "group"])
    assert summary.loc[("g", "tiny"), "people"] == SUPPRESSED
    assert summary.loc[("g", "tiny"), "note"] == "withheld: fewer than 50 people"


def test_commissioner_summary_rounds_counts_to_five():
    risk, y = _population(1_234, 7)
    result = audit(y, risk, risk, pd.DataFrame({"g": ["one"] * y.size}), BANDS, n_boot=20)
    summary = commissioner_summary(result)
    row = summary[summary["group"] == "one"].iloc[0]
    assert row["people"] == 1235 and row["events"] % 5 == 0 and abs(row["events"] - y.sum()) <= 2
    assert list(summary.columns) == [
        "variable",
        "group",
        "people",
        "events",
        "auroc",
        "auroc_lo",
        "auroc_hi",
        "o_e",
        "o_e_lo",
        "o_e_hi",
        "note",
    ]


@pytest.mark.slow
def test_audit_of_150k_people_runtime():
    """Prints the time of a full audit (4 grouping variables, 200 resamples) on 150,000 people."""
    risk, y = _population(150_000, 8)
    rng = np.random.default_rng(9)
    groups = pd.DataFrame(
        {
            "sex": rng.choice(["female", "male"], y.size),
            "age_band": rng.choice(["0-17", "18-39", "40-64", "65-79", "80+"], y.size),
            "imd_quintile": rng.choice(["1", "2", "3", "4", "5", "unknown"], y.size, p=[0.2] * 4 + [0.19, 0.01]),
            "ethnicity_group": rng.choice(["asian", "black", "mixed", "other", "white", "unknown"], y.size),
        }
    )
    started = time.perf_counter()
    result = audit(y, risk, risk + rng.normal(0, 1e-4, y.size), groups, BANDS, seed=1, n_boot=200)
    seconds = time.perf_counter() - started
    print(f"fairness audit of 150,000 people, 200 resamples: {seconds:.1f} s")
    assert len(result.by_group) == 1 + 2 + 5 + 6 + 6


def test_calibration_intervals_hold_the_rate_even_for_a_bin_with_no_events():
    from riskstrat.modelling.fairness import _calibration_rows, _Group

    y = np.zeros(100, dtype=np.float32)
    y[-10:] = 1  # bins of 10: the top one all events (where rounding put the upper end below 1), the rest none
    g = _Group("sex", "F", np.arange(100), y, np.linspace(0.001, 0.5, 100), np.zeros(0, dtype=int), "")
    rows = pd.DataFrame(_calibration_rows(g, 10))
    assert (rows["observed_rate"] == 0).any() and (rows["observed_rate"] == 1).any()
    assert (rows["observed_lo"] <= rows["observed_rate"]).all() and (rows["observed_rate"] <= rows["observed_hi"]).all()
    assert (rows["observed_lo"] >= 0).all() and (rows["observed_hi"] <= 1).all()
