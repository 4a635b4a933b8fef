"""Safe monthly operation (issue 17): exposure log, randomised hold-out, monitoring, champion history.

Two monthly runs (2025-09-01, 2026-10-01) with a model trained at 2023-10-02 on the session's
clean population (3,000 people), against a real MLflow server; the same model scoring a
population of the alternative synthetic structure; one retraining at 2024-10-01 that leaves out
the rows the 2025-09-01 lists may have changed; a manual promotion.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from riskstrat.cli import main
from riskstrat.config import Config, ExposureHandling, MonitoringSettings
from riskstrat.modelling.monitoring import (
    SCORE_DECIMALS,
    anticipated,
    as_stored,
    expected_auroc,
    expected_performance,
    list_order,
    profile_of,
    psi,
    realised_performance,
    reference_profile,
)
from riskstrat.privacy.audit import AuditLog, verify_chain
from riskstrat.privacy.holdout import held_out
from riskstrat.privacy.pseudonym import pseudonymise as pseudonyms_of
from riskstrat.stages.export import export
from riskstrat.stages.monitor import monitor
from riskstrat.stages.pipeline import Run, run_pipeline
from riskstrat.stages.pseudonymise import pseudonymise
from riskstrat.stages.score import score
from riskstrat.stages.train import train
from riskstrat.synth import SynthOptions, generate
from riskstrat.workdir import WorkDir

from .conftest import REGION_KEY, VAULT_KEY

TRAIN_AT, RETRAIN_AT = dt.date(2023, 10, 2), dt.date(2024, 10, 1)
D1, D2 = dt.date(2025, 9, 1), dt.date(2026, 10, 1)
HOLDOUT = Config(monitoring=MonitoringSettings(holdout_share=0.1))
NAME = "emergency_admission_12m"
BANDS = [("very high", 0.005), ("high", 0.05), ("moderate", 0.2), ("low", 1.0)]


# --------------------------------------------------------------------------- the arithmetic


def test_expected_auroc_is_the_auroc_of_outcomes_drawn_from_the_probabilities():
    rng = np.random.default_rng(3)
    p = rng.beta(1, 9, 4000)
    rank = list_order(np.round(p + rng.normal(0, 0.03, p.size), 2))  # a noisy ranking with ties
    # every person counted once as an event (weight p) and once as a non-event (weight 1 - p)
    weighted = roc_auc_score(np.r_[np.ones(p.size), np.zeros(p.size)], np.r_[rank, rank], sample_weight=np.r_[p, 1 - p])
    assert expected_auroc(p, rank) == pytest.approx(weighted, abs=1e-12)
    # and the mean of many realised AUROCs of outcomes drawn from p
    draws = [roc_auc_score(rng.random(p.size) < p, rank) for _ in range(200)]
    assert expected_auroc(p, rank) == pytest.approx(np.mean(draws), abs=0.005)
    # expected PPV at the top 5%: the mean probability of the people flagged there
    e = expected_performance(p, rank, BANDS)
    top = np.argsort(-rank, kind="stable")[: int(0.05 * p.size)]
    assert e["expected_ppv_high"] == pytest.approx(p[top].mean(), rel=1e-9)
    assert e["expected_events"] == pytest.approx(p.sum())


def test_realised_figures_and_the_anticipated_level():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.1, 0.3, 0.05, 0.05])
    r = realised_performance(y, p, list_order(p), BANDS)
    assert r["events"] == 3 and r["observed_over_expected"] == pytest.approx(3 / p.sum())
    assert r["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert r["oe_z"] == pytest.approx((3 - p.sum()) / np.sqrt(np.sum(p * (1 - p))))
    # the validation figure moved by the label-free change; without one, the estimate itself
    assert anticipated(0.80, 0.88, 0.90) == pytest.approx(0.78)
    assert anticipated(None, 0.88, 0.90) == 0.88


def test_psi_is_zero_against_itself_and_the_textbook_value_for_a_shift():
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    profile = profile_of(ref, categorical=True)
    assert psi(profile, ref) == 0
    now = pd.Series(["a"] * 80 + ["b"] * 20)
    assert psi(profile, now) == pytest.approx(0.3 * np.log(0.8 / 0.5) + 0.3 * np.log(0.5 / 0.2))
    # a count that is mostly zero gets bins at its distinct deciles, not ten empty ones
    counts = pd.Series(np.r_[np.zeros(700), np.ones(200), np.full(100, 5)])
    assert profile_of(counts, categorical=False)["edges"] == [0.0, 1.0]
    assert psi(profile_of(counts, False), counts) == 0


def test_an_unchanged_calibrated_score_stored_to_its_decimals_does_not_drift():
    # a calibrated risk is a step function: whole steps of people share a value, often a decile edge
    rng = np.random.default_rng(3)
    steps = np.sort(rng.uniform(0.01, 0.4, 40)) + 1e-9 / 3  # values with more decimals than are stored
    risk = steps[np.minimum(rng.geometric(0.12, 50_000) - 1, 39)]
    stored = pd.Series(np.round(risk, SCORE_DECIMALS))  # as the score stage writes them
    unrounded = profile_of(pd.Series(risk), False)  # a reference binned at full precision
    assert psi(unrounded, stored) > 0.25  # the false alarm: steps pushed over their edges
    assert psi(as_stored(unrounded), stored) == pytest.approx(0, abs=1e-9)
    profile = reference_profile(pd.DataFrame({"x": risk}), [], risk, {}, "training")
    assert psi(profile["score"], stored) == pytest.approx(0, abs=1e-9)  # references are binned as stored
    assert as_stored(profile["score"]) == profile["score"]


def test_the_hold_out_is_keyed_stable_and_nested():
    people = pseudonyms_of([f"999{i:07d}" for i in range(20_000)], REGION_KEY)
    ten = held_out(people, REGION_KEY, 0.10)
    assert ten.mean() == pytest.approx(0.10, abs=0.01)
    assert np.array_equal(ten, held_out(list(reversed(people)), REGION_KEY, 0.10)[::-1])  # order does not matter
    assert not (held_out(people, REGION_KEY, 0.05) & ~ten).any()  # raising the share keeps everyone held out
    other = held_out(people, "another-region-key-abcdefghij-klmnopqr", 0.10)
    assert (ten != other).mean() > 0.1  # another key, another choice
    assert not held_out(people, REGION_KEY, 0.0).any()


# --------------------------------------------------------------------------- two monthly runs


@pytest.fixture(scope="module")
def stable(pseudonymised, mlflow_server, tmp_path_factory):
    """The model trained at 2023-10-02; scores, lists (10% held out) and monitoring at D1 and D2."""
    uri, _ = mlflow_server
    work = tmp_path_factory.mktemp("monitoring") / "W"
    shutil.copytree(pseudonymised, work)
    (work / "mlflow.db").unlink(missing_ok=True)
    shutil.rmtree(work / "mlartifacts", ignore_errors=True)
    trained = train(work, TRAIN_AT, tracking_uri=uri)
    monitored = {}
    for d in (D1, D2):
        score(work, d, None, uri)
        export(work, d, VAULT_KEY, HOLDOUT, REGION_KEY)
        monitored[d] = monitor(work, d, uri, HOLDOUT)
    return work, uri, trained, monitored


@pytest.fixture(scope="module")
def shifted(stable, tmp_path_factory):
    """A population of the alternative structure scored and monitored with the same model."""
    _, uri, _, _ = stable
    base = tmp_path_factory.mktemp("shifted")
    opts = SynthOptions(patients=3000, seed=11, chunk_size=1500, practices=5)
    generate(base / "extracts", opts, None, workers=1, structure="alt")
    work = base / "W"
    pseudonymise(base / "extracts", work, Config(), REGION_KEY, VAULT_KEY)
    for d in (D1, D2):
        score(work, d, None, uri)
    return base / "extracts", work, monitor(work, D2, uri, HOLDOUT)


@pytest.mark.slow
def test_a_stable_population_raises_no_warning_and_its_realised_figures_meet_the_expected(stable):
    work, uri, _, monitored = stable
    first, second = monitored[D1], monitored[D2]
    assert first.warnings == [] and second.warnings == []
    assert first.realised is None  # nothing has matured a horizon after the first run
    assert second.realised["as_of"] == D1.isoformat() and second.realised["model"] == f"{NAME} version 1"
    r, e = second.realised["realised"], second.realised["expected"]
    assert abs(r["auroc"] - e["anticipated_auroc"]) < 0.05
    assert r["observed_over_expected"] == pytest.approx(1, abs=0.15)
    assert second.psi_score < 0.1 and max(second.psi_features.values()) < 0.25
    # the record, the page and the MLflow run say the same
    wd = WorkDir(work)
    record = json.loads(wd.monitoring_record(D2).read_text())
    assert record["warnings"] == [] and record["psi_score"] == second.psi_score
    page = wd.monitoring_page(D2).read_text()
    assert "No warnings" in page and "Realised performance" in page and f"{r['auroc']:.3f}" in page
    from mlflow import MlflowClient

    run = MlflowClient(uri).get_run(second.run_id)
    assert run.data.tags["warnings"] == "none" and run.data.tags["model_version"] == "1"
    assert run.data.metrics["realised_auroc"] == pytest.approx(r["auroc"])
    assert run.data.metrics["psi_score"] == pytest.approx(second.psi_score)


@pytest.mark.slow
def test_a_shifted_structure_raises_drift_and_performance_warnings(shifted):
    _, work, result = shifted
    drift = [w for w in result.warnings if w.startswith(("population shift", "score shift"))]
    performance = [w for w in result.warnings if "AUROC" in w or "PPV" in w or "observed/expected" in w]
    assert drift and performance, result.warnings
    assert result.realised is not None and result.realised["realised"]["auroc"] < result.realised["validation"]["auroc"]
    page = WorkDir(work).monitoring_page(D2).read_text()
    assert 'id="warnings"' in page and all(w.split(":")[0] in page for w in result.warnings)


@pytest.mark.slow
def test_warnings_reach_the_run_summary(shifted, stable):
    extracts, work, _ = shifted
    _, uri, _, _ = stable
    said: list[str] = []
    run = Run(extracts, work, D2, HOLDOUT, REGION_KEY, VAULT_KEY, uri, say=said.append)
    run_pipeline(run)
    summary = json.loads(WorkDir(work).run_report(D2).read_text())
    assert summary["warnings"] == run.warnings and any(w.startswith("population shift") for w in summary["warnings"])
    assert summary["stages"][-1]["stage"] == f"monitor at {D2}"
    assert WorkDir(work).exposure_record(D2).exists()


@pytest.mark.slow
def test_the_hold_out_is_stable_across_months_and_on_no_list(stable):
    work, _, _, _ = stable
    wd = WorkDir(work)
    months = {d: pq.read_table(wd.exposure_record(d)).to_pandas().set_index("pseudonym") for d in (D1, D2)}
    both = months[D1].index.intersection(months[D2].index)
    assert len(both) > 1500
    assert months[D1].loc[both, "held_out"].equals(months[D2].loc[both, "held_out"])
    for d, log in months.items():
        assert log["held_out"].mean() == pytest.approx(0.10, abs=0.03)
        assert not (log["held_out"] & log["shown"]).any()
        assert (log["model_version"] == "1").all() and (log["as_of"] == d).all()
        assert log.loc[log["at_risk"], "risk_band"].isin(["very high", "high"]).all()
        lists = pd.concat(
            [pd.read_csv(p, dtype={"nhs_number": str}) for p in wd.month(wd.direct_care, d).glob("*.csv")]
        )
        listed = pd.Series(lists["risk_band"].to_numpy(), index=pseudonyms_of(lists["nhs_number"], REGION_KEY))
        assert set(listed.index) == set(log.index[log["shown"]])  # shown = on a list, and no one else
        assert not log.loc[listed.index, "held_out"].any()
        assert (log.loc[listed.index, "risk_band"] == listed).all()
        cohort = pq.read_table(wd.month(wd.commissioner, d) / "cohort.parquet").to_pandas()
        held = set(log.index[log["held_out"]])
        assert len(held & set(cohort["pseudonym"])) >= 0.95 * len(held)  # commissioners still count them
    assert all(AuditLog(wd.audit).records()) and verify_chain(wd.audit)


@pytest.mark.slow
def test_retraining_leaves_out_exposed_rows_and_the_champion_history_records_a_manual_promotion(stable):
    work, uri, _, _ = stable
    wd = WorkDir(work)
    leave_out = Config(monitoring=MonitoringSettings(exposure_handling=ExposureHandling.EXCLUDE))
    # the rows at 2024-10-01 of the people shown in an at-risk band at 2025-09-01 (within a horizon)
    second = train(work, RETRAIN_AT, tracking_uri=uri, config=leave_out)
    counts = [r for r in AuditLog(wd.audit).records() if r.get("command", "").startswith("riskstrat train")][-1]
    exposure = counts["counts"]
    shown_at_risk = pq.read_table(wd.exposure_record(D1)).to_pandas().query("shown and at_risk")
    assert 0 < exposure["exposed_training_rows"] <= len(shown_at_risk)
    assert exposure["exposed_rows_left_out"] == exposure["exposed_training_rows"]
    assert exposure["exposure_handling"] == "exclude"
    # a manual promotion of the version that is not champion, by the command line
    other = "1" if second.promoted else "2"
    runner = CliRunner()
    args = ["--workdir", str(work), "--tracking-uri", uri]
    promoted = runner.invoke(main, ["models", "promote", NAME, other, "--reason", "rollback drill, issue 17", *args])
    assert promoted.exit_code == 0, promoted.output
    history = runner.invoke(main, ["models", "history", NAME, *args], terminal_width=200)
    assert history.exit_code == 0 and "rollback drill, issue 17" in history.output and "manual" in history.output
    listing = runner.invoke(main, ["models", "list", NAME, *args], terminal_width=200)
    assert listing.exit_code == 0 and "champion" in listing.output
    from riskstrat import tracking

    tracking.point_at(work, uri)
    moves = tracking.champion_history(NAME)
    assert moves[0].how == "training" and moves[0].to_version == "1" and moves[0].from_version is None
    assert moves[-1].how == "manual" and moves[-1].to_version == other and moves[-1].metrics["auroc"] > 0.6
    assert len(moves) == (3 if second.promoted else 2)
    assert tracking.champion_version(NAME) == other
    audited = [r for r in AuditLog(wd.audit).records() if r["event"] == "champion_move"]
    assert [(r["to_version"], r["how"]) for r in audited] == [(m.to_version, m.how) for m in moves]
    assert verify_chain(wd.audit)
    # a version that does not exist: one line, exit 1, nothing moved
    bad = runner.invoke(main, ["models", "promote", NAME, "99", "--reason", "x", *args])
    assert bad.exit_code == 1 and "no version 99" in bad.output and tracking.champion_version(NAME) == other
