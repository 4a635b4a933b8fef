"""Scoring: bands, reasons in plain words, exclusions, reproducibility."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.special import logit

from riskstrat import scoring, tracking
from riskstrat.errors import RiskstratError
from riskstrat.features import BUILDERS, DAYS_SINCE_NONE
from riskstrat.features.builders import history, medicine_history
from riskstrat.scoring import assign_bands, describe, top_reasons
from riskstrat.stages.score import DEFAULT_MODEL_URI, score
from riskstrat.stages.train import train
from riskstrat.workdir import WorkDir

BANDS = [("very high", 0.005), ("high", 0.05), ("moderate", 0.20), ("low", 1.0)]


def test_bands_follow_the_cumulative_shares():
    scores = pd.Series([i / 1000 for i in range(1000)], index=[f"p{i:04d}" for i in range(1000)])
    band = assign_bands(scores, BANDS)
    assert (band == "very high").sum() == 5 and (band == "high").sum() == 45
    assert (band == "moderate").sum() == 150 and (band == "low").sum() == 800
    assert band["p0999"] == "very high" and band["p0000"] == "low"
    tied = assign_bands(pd.Series([0.5] * 200, index=[f"q{i:03d}" for i in range(200)]), BANDS)
    assert tied["q000"] == "very high" and tied["q199"] == "low"  # ties broken by pseudonym
    model = pd.Series(range(200), index=tied.index)  # ... after the model's own score
    by_model = assign_bands(pd.Series([0.5] * 200, index=tied.index), BANDS, model)
    assert by_model["q199"] == "very high" and by_model["q000"] == "low"
    assert (by_model == "high").sum() == 9 and by_model[[f"q{i}" for i in range(190, 199)]].eq("high").all()


@pytest.mark.parametrize(
    ("feature", "value", "words"),
    [
        ("emergency_admissions_365d", 3, "3 emergency admissions in the last year"),
        ("emergency_admissions_30d", 1, "1 emergency admission in the last month"),
        ("heart_failure", 1, "heart failure"),
        ("distinct_medicines_182d", 12, "10+ regular medicines"),
        ("distinct_medicines_182d", 6, "6 different medicines in 6 months"),
        ("efi_score", 0.3611, "severe frailty (eFI 0.361)"),
        ("efi_score", 0.306, "moderate frailty (eFI 0.306)"),
        ("efi_score", 0.139, "mild frailty (eFI 0.139)"),
        ("efi_score", 0.111, "eFI 0.111 (fit)"),
        ("efi_deficits", 3, "3 eFI deficits recorded"),
        ("hfrs", 4.9, "Hospital Frailty Risk Score 4.9 (low risk)"),
        ("hfrs", 15.0, "Hospital Frailty Risk Score 15.0 (intermediate risk)"),
        ("hfrs", 15.1, "Hospital Frailty Risk Score 15.1 (high risk)"),
        ("ltc_count", 4, "4 long-term conditions"),  # without the registers at hand: the count
        ("age_years", 84, "age 84"),
        ("items_anticoagulants_182d", 6, "anticoagulants prescribed (6 items in 6 months)"),
        ("emergency_admissions_1095d", 3, "3 emergency admissions in the last 3 years"),
        ("emergency_admissions_1826d", 1, "1 emergency admission in the last 5 years"),
        ("ae_attendances_1095d", 2, "2 A&E attendances in the last 3 years"),
        ("op_dna_1826d", 1, "1 missed outpatient appointment in the last 5 years"),
        ("op_attendances_1095d", 12, "12 outpatient appointments in the last 3 years"),
        ("days_since_ae_attendance", 40, "last A&E attendance 40 days ago"),
        ("days_since_op_dna", 12, "last missed outpatient appointment 12 days ago"),
        ("emergency_admissions_per_year_5y", 1.4, "1.4 emergency admissions a year in the last 5 years"),
        ("hospital_activity_trend_182d", 4, "hospital contacts rising (+4 in the last 6 months against the 6 before)"),
        ("prescribing_trend_182d", -3, "prescription items falling (-3 in the last 6 months against the 6 before)"),
        ("years_since_heart_failure_diagnosis", 6.71, "heart failure diagnosed 6 years ago"),
        ("years_since_diabetes_diagnosis", 1.0, "diabetes diagnosed 1 year ago"),
        ("years_since_copd_diagnosis", 0.42, "COPD diagnosed in the last year"),
        ("conditions_diagnosed_365d", 2, "2 new long-term conditions diagnosed in the last year"),
        ("new_medicines_90d", 4, "new to 4 medicines in the last 3 months"),
        ("new_medicines_90d", 1, "new to 1 medicine in the last 3 months"),
        ("bnf_sections_365d", 9, "medicines from 9 BNF sections in the last year"),
        ("nsaid_with_ckd", 1, "NSAID prescribed with chronic kidney disease"),
        ("triple_whammy", 1, "NSAID with an ACE inhibitor or ARB and a diuretic (triple whammy)"),
        ("opioid_current", 1, "opioid prescribed in the last 3 months"),
        ("items_opioids_365d", 7, "opioids prescribed (7 items in the last year)"),
        ("prescribing_safety_indicators", 2, "2 prescribing safety alerts"),
        ("bmi_band", 5, "severely obese (BMI 40 or more)"),
        ("bmi_band", 1, "underweight (BMI under 18.5)"),
    ],
)
def test_reasons_read_as_plain_words(feature, value, words):
    assert describe(feature, value) == words


@pytest.mark.parametrize(
    "builder", [history.hospital_history, history.condition_history, medicine_history.medicine_history]
)
def test_every_history_feature_has_its_own_words(builder):
    for f in builder.features:
        assert f.definition not in describe(f.name, 2), f.name  # not the fallback "definition: value"


def test_a_days_since_feature_at_its_none_value_is_never_a_reason():
    names = ["days_since_ae_attendance", "days_since_emergency_admission", "op_dna_1826d"]
    contributions = pd.DataFrame([[0.9, 0.8, 0.1], [0.9, 0.8, 0.1]], columns=names)
    features = pd.DataFrame([[DAYS_SINCE_NONE, DAYS_SINCE_NONE, 2], [30, 400, 0]], columns=names)
    assert top_reasons(contributions, features) == [
        ["2 missed outpatient appointments in the last 5 years"],
        ["last A&E attendance 30 days ago", "last emergency admission 400 days ago"],
    ]


def test_reasons_pause_the_cycle_collector_and_leave_it_as_they_found_it(monkeypatch):
    names = ["op_dna_1826d", "days_since_ae_attendance"]
    contributions = pd.DataFrame([[0.9, 0.8]], columns=names)
    features = pd.DataFrame([[2, 30]], columns=names)
    seen = []

    def describe_and_note(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_describe(*args, **kwargs)

    real_describe = scoring.describe
    monkeypatch.setattr(scoring, "describe", describe_and_note)
    assert top_reasons(contributions, features) == [
        ["2 missed outpatient appointments in the last 5 years", "last A&E attendance 30 days ago"]
    ]
    assert seen and not any(seen)  # paused while the words are made
    assert gc.isenabled()

    def broken(*args, **kwargs):
        raise RuntimeError("a reason that cannot be put in words")

    monkeypatch.setattr(scoring, "describe", broken)
    with pytest.raises(RuntimeError):
        top_reasons(contributions, features)
    assert gc.isenabled()  # on again after a failure
    gc.disable()
    try:
        monkeypatch.setattr(scoring, "describe", real_describe)
        top_reasons(contributions, features)
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()


@pytest.fixture(scope="module")
def trained(pseudonymised, tmp_path_factory):
    work = tmp_path_factory.mktemp("score") / "W"
    shutil.copytree(pseudonymised, work)
    for f in (work / "mlflow.db",):
        f.unlink(missing_ok=True)
    shutil.rmtree(work / "mlartifacts", ignore_errors=True)
    train(work, dt.date(2024, 10, 1))
    return work


def test_scoring_the_population(trained):
    d = dt.date(2026, 10, 1)
    result = score(trained, d)
    t = pq.read_table(result.path).to_pandas()
    feats = pq.read_table(WorkDir(trained).features(d)).to_pandas()
    assert len(t) == len(feats) == result.manifest["people_scored"]
    assert t["risk_score"].between(0, 1).all()
    counts = t["risk_band"].value_counts()
    n = len(t)
    assert counts["very high"] == pytest.approx(0.005 * n, abs=1)
    assert counts["high"] == pytest.approx(0.045 * n, abs=2)
    # bands follow (calibrated risk, model score): no one in a lower band outranks anyone above
    rank = t.sort_values(["risk_score", "model_score"], ascending=False)["risk_band"]
    order = {"very high": 0, "high": 1, "moderate": 2, "low": 3}
    assert rank.map(order).is_monotonic_increasing
    loaded = tracking.load_registered(trained, None, DEFAULT_MODEL_URI)
    raw = loaded.estimator.raw_proba(feats.set_index("pseudonym").loc[t["pseudonym"], loaded.input_names])
    np.testing.assert_allclose(t["model_score"], logit(raw), atol=2e-6)  # SHAP values add up to the log-odds
    top = t.sort_values("risk_score", ascending=False).head(20)
    assert top["reason_1"].notna().all()
    assert top["risk_band"].iloc[0] == "very high"
    m = json.loads((trained / "reports" / f"score_{d}.json").read_text())
    assert m["model_version"] == "1" and len(m["checksums"]["scores"]) == 64
    again = score(trained, d)
    assert again.manifest["checksums"]["scores"] == result.manifest["checksums"]["scores"]  # reproducible


def test_people_dead_before_d_are_not_scored(trained, clean_population):
    extracts, _ = clean_population
    from riskstrat.privacy.pseudonym import pseudonymise

    from .conftest import REGION_KEY

    d = dt.date(2026, 10, 1)
    deaths = pq.read_table(extracts / "deaths.parquet").to_pandas()
    dead = deaths[deaths["date_of_death"] < d]
    dead_p = set(pseudonymise(dead["nhs_number"].tolist(), REGION_KEY))
    scored = set(pq.read_table(score(trained, d).path)["pseudonym"].to_pylist())
    assert dead_p and not dead_p & scored


def test_scoring_without_a_model_is_one_line(trained, tmp_path):
    with pytest.raises(RiskstratError, match="no model models:/nothing@champion"):
        score(trained, dt.date(2026, 10, 1), "models:/nothing@champion")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "riskstrat", "score", "--workdir", str(trained), "--as-of", "2026-10-01"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert "scored" in result.stdout and "very high" in result.stdout


def test_scoring_in_batches_gives_the_same_file(trained, monkeypatch):
    from riskstrat.stages import score as score_stage

    d = dt.date(2026, 10, 1)
    whole = score(trained, d).manifest
    monkeypatch.setattr(score_stage, "SCORE_BATCH_ROWS", 333)  # about six batches
    batched = score(trained, d).manifest
    assert batched["people_scored"] == whole["people_scored"] > 333 * 5
    assert batched["checksums"]["scores"] == whole["checksums"]["scores"]


def test_every_feature_reason_reads_as_it_did_before_reasons_moved_onto_the_features():
    """Reasons recorded from the old if-chain in scoring.py (issue 15) for every numeric
    feature and a spread of values; the templates on each Feature must say the same."""
    recorded = json.loads((Path(__file__).parent / "data" / "reasons_before_issue_15.json").read_text())
    values = recorded["values"]
    numeric = {f.name for b in BUILDERS for f in b.features if f.dtype != "string"}
    assert numeric <= set(recorded["reasons"])  # a new feature is added to the record deliberately
    for name, words in recorded["reasons"].items():
        if name in REWORDED_BY_ISSUE_16:
            continue
        assert [describe(name, v) for v in values] == words, name


#: reasons reworded on purpose by issue 16 (words a clinician trusts), each tested above: the
#: eFI named by its published category, never "frailty" for a fit person (efi_score, efi_deficits);
#: the HFRS with its published risk group; the long-term conditions named (ltc_count)
REWORDED_BY_ISSUE_16 = frozenset({"efi_score", "efi_deficits", "hfrs", "ltc_count"})


def test_the_largest_contributions_are_those_a_stable_sort_gives_ties_and_all():
    """Scoring picks each person's reasons by passes of argmax (a third of scoring's time went
    on sorting every column): the same columns, in the same order, as a stable sort, with ties
    broken by column and rows with fewer than k usable values (``-inf``) cut short."""
    from riskstrat.scoring import _largest

    rng = np.random.default_rng(7)
    for _ in range(300):
        n, m, k = 30, int(rng.integers(1, 12)), int(rng.integers(1, 5))
        values = rng.integers(-3, 4, (n, m)).astype(float)  # few distinct values: many ties
        values[rng.random((n, m)) < 0.5] = -np.inf
        expected = np.argsort(-values, axis=1, kind="stable")[:, :k]
        usable = np.take_along_axis(values, expected, axis=1) != -np.inf
        order, found = _largest(values, k)
        assert (found == usable).all()
        assert (order[found] == expected[usable]).all()
