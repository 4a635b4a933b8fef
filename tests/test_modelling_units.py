"""Model specifications, baselines and evaluation figures on small known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from riskstrat.errors import ConfigError
from riskstrat.labels import Outcome
from riskstrat.modelling.estimators import PriorAdmissionsRule
from riskstrat.modelling.evaluation import calibration_slope_intercept, evaluate, share_of_ceiling, top_share_table
from riskstrat.modelling.spec import MODELS_DIR, load_spec


def test_shipped_specifications_load():
    a = load_spec(MODELS_DIR / "emergency_admission_12m.yaml")
    b = load_spec(MODELS_DIR / "emergency_admission_or_death_12m.yaml")
    assert (a.outcome, b.outcome) == (Outcome.EMERGENCY_ADMISSION, Outcome.EMERGENCY_ADMISSION_OR_DEATH)
    assert a.horizon_days == 365 and "practice_code" not in a.features and "age_years" in a.features
    assert [x.top_share for x in a.risk_bands] == [0.005, 0.05, 0.20, 1.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("outcome: admission", "outcome must be one of"),
        ("horizon_days: 10", "horizon_days must be"),
        ("calibration: beta", "calibration must be isotonic or sigmoid"),
    ],
)
def test_bad_specifications_are_named(tmp_path, change, message):
    text = (MODELS_DIR / "emergency_admission_12m.yaml").read_text()
    key = change.split(":")[0]
    lines = [change if line.startswith(f"{key}:") else line for line in text.splitlines()]
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_spec(path)
    assert message in str(exc.value) and "m.yaml" in str(exc.value)


def test_unknown_feature_is_named(tmp_path):
    text = (
        (MODELS_DIR / "emergency_admission_12m.yaml")
        .read_text()
        .replace("exclude: [practice_code, pcn_code]", "exclude: [practice_code, shoe_size]")
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"\['shoe_size'\] are not in the feature table"):
        load_spec(path)


def test_prior_admissions_rule_is_the_observed_rate_per_count():
    X = pd.DataFrame({"emergency_admissions_365d": [0] * 8 + [1] * 4 + [7] * 2})
    y = np.array([0] * 7 + [1] + [0, 1, 1, 0] + [1, 1])
    rule = PriorAdmissionsRule(cap=5).fit(X, y)
    p = rule.predict_proba(pd.DataFrame({"emergency_admissions_365d": [0, 1, 9]}))[:, 1]
    overall = y.mean()
    assert p[0] == pytest.approx((1 + overall) / 9)
    assert p[1] == pytest.approx((2 + overall) / 5)
    assert p[2] == pytest.approx((2 + overall) / 3)  # counts above the cap share its rate


def test_top_share_ppv_sensitivity_and_number_needed_to_review():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0] * 20)
    p = np.linspace(1, 0, y.size)
    t = top_share_table(y, p, shares=(0.05, 0.10))
    assert t.loc[0, "people"] == 10 and t.loc[0, "ppv"] == pytest.approx(0.3)
    assert t.loc[0, "sensitivity"] == pytest.approx(3 / 60)
    assert t.loc[0, "number_needed_to_review"] == pytest.approx(10 / 3)


def test_calibration_of_true_probabilities_is_near_perfect():
    rng = np.random.default_rng(1)
    p = rng.beta(1, 12, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    slope, intercept = calibration_slope_intercept(y, p)
    assert abs(slope - 1) < 0.03 and abs(intercept) < 0.03
    slope2, _ = calibration_slope_intercept(y, np.clip(p * 2, 0, 0.999))  # over-confident at the top
    assert slope2 < 0.95


def test_evaluate_reports_the_ceiling_share():
    rng = np.random.default_rng(2)
    truth = rng.beta(1, 10, 50_000)
    y = (rng.random(truth.size) < truth).astype(int)
    noisy = np.clip(truth + rng.normal(0, 0.03, truth.size), 0.0005, 0.999)
    ev = evaluate(y, noisy, truth=truth, n_boot=50)
    m = ev.metrics
    assert m["ceiling_auroc"] == pytest.approx(roc_auc_score(y, truth))
    assert m["share_of_ceiling"] == pytest.approx(share_of_ceiling(m["auroc"], m["ceiling_auroc"]))
    assert 0.5 < m["share_of_ceiling"] < 1.0
    assert m["auroc_lo"] < m["auroc"] < m["auroc_hi"]
    assert list(ev.tables["deciles"]["decile"]) == list(range(1, 11))


def test_admission_risk_model_passes_the_scikit_learn_estimator_checks():
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    from riskstrat.modelling.estimators import AdmissionRiskModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            AdmissionRiskModel(n_estimators=20, min_child_samples=2, early_stopping_rounds=5), on_fail=None
        )
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    assert len(results) > 40 and not failed, failed


def test_admission_risk_model_learns_a_known_signal_and_is_calibrated():
    from riskstrat.modelling.estimators import AdmissionRiskModel

    rng = np.random.default_rng(7)
    n = 40_000
    X = pd.DataFrame(
        {
            "age_years": rng.integers(0, 100, n),
            "prior": rng.poisson(0.2, n),
            "sex": rng.choice(["1", "2"], n),
            "noise": rng.normal(size=n),
        }
    )
    lp = -4 + 0.03 * X["age_years"] + 0.8 * X["prior"] + 0.3 * (X["sex"] == "1")
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    model = AdmissionRiskModel(categorical=("sex",), n_estimators=500, early_stopping_rounds=30).fit(X, y)
    assert model.best_iteration_ < 500 and model.n_calibration_ == pytest.approx(0.15 * n, rel=0.01)
    p = model.predict_proba(X)[:, 1]
    ceiling = roc_auc_score(y, lp)
    assert (roc_auc_score(y, p) - 0.5) / (ceiling - 0.5) > 0.97
    assert abs(p.sum() / y.sum() - 1) < 0.05
    contrib = model.contributions(X.head(100))
    assert list(contrib.columns) == ["age_years", "prior", "sex", "noise", "bias"]
    assert contrib["noise"].abs().mean() < contrib["prior"].abs().mean()
    assert model.feature_importance().index[0] in ("age_years", "prior")


def test_ranking_figures_follow_rank_by_and_calibration_follows_p():
    # Calibration ties four people at 0.5; the model's own score orders them perfectly.
    y = np.array([0, 1, 0, 1] * 50)
    p = np.full(200, 0.5)
    raw = np.where(y == 1, 0.7, 0.3) + np.linspace(0, 0.01, 200)
    tied = evaluate(y, p, n_boot=0)
    ranked = evaluate(y, p, n_boot=0, rank_by=raw)
    assert tied.metrics["auroc"] == pytest.approx(0.5)
    assert ranked.metrics["auroc"] == pytest.approx(1.0) and ranked.metrics["ppv_top5pct"] == 1.0
    assert ranked.metrics["brier"] == tied.metrics["brier"] == pytest.approx(0.25)  # calibration uses p
    assert ranked.metrics["observed_over_expected"] == pytest.approx(1.0)
    assert list(ranked.tables["deciles"]["observed"]) == [0] * 5 + [20] * 5
