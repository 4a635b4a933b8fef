"""Training end to end against a real MLflow tracking server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from riskstrat.errors import RiskstratError
from riskstrat.modelling.selection import PeopleShare
from riskstrat.modelling.spec import MODELS_DIR, load_spec
from riskstrat.privacy.scan import scan_directory
from riskstrat.stages import manifest
from riskstrat.stages.features import build_features, features_path, sample_of
from riskstrat.stages.features import stage_inputs as features_inputs
from riskstrat.stages.features import stage_name as features_stage
from riskstrat.stages.train import load_dataset, train, training_share
from riskstrat.tracking import load_model
from riskstrat.workdir import WorkDir

from .conftest import REGION_KEY

AS_OF = dt.date(2024, 10, 1)


@pytest.fixture(scope="module")
def first_run(pseudonymised, mlflow_server, clean_population):
    uri, _ = mlflow_server
    _, truth = clean_population
    return train(pseudonymised, AS_OF, tracking_uri=uri, truth_dir=truth, pseudonym_key=REGION_KEY)


def test_training_registers_a_champion_that_loads_and_predicts(first_run, pseudonymised, mlflow_server):
    uri, _ = mlflow_server
    r = first_run
    assert r.version == "1" and r.promoted and "becomes champion" in r.reason
    assert r.validation.startswith("out of time")
    m = r.metrics["model"]
    assert 0.65 < m.auroc < 0.95 and m.auroc_lo < m.auroc < m.auroc_hi
    assert 0 < m.ceiling_auroc - 0.5 and 0.5 < m.share_of_ceiling <= 1.05
    assert m.logged["auroc"] == m.auroc and r.metrics_table().loc["model", "brier"] == m.brier
    assert set(r.metrics) == {"model", "qadmissions_like_logistic", "prior_admissions_rule"}
    import mlflow

    mlflow.set_tracking_uri(uri)
    model = load_model("models:/emergency_admission_12m@champion")
    spec = load_spec()
    data = load_dataset(pseudonymised, dt.date(2025, 10, 1), spec)
    p = np.asarray(model.predict(data[list(spec.features)]))
    assert p.shape == (len(data),) and (p > 0).all() and (p < 1).all()
    assert abs(p.mean() - data["label"].mean()) < 0.03


def test_the_run_holds_the_report_and_no_patient_rows(first_run, mlflow_server, clean_population):
    uri, base = mlflow_server
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(first_run.run_id)
    for key in (
        "auroc",
        "auprc",
        "brier",
        "calibration_slope",
        "calibration_intercept",
        "observed_over_expected",
        "ppv_top1pct",
        "sensitivity_top5pct",
        "nnr_top0_5pct",
        "qadmissions_like_logistic_auroc",
        "prior_admissions_rule_auroc",
        "share_of_ceiling",
    ):
        assert key in run.data.metrics, key
    assert run.data.params["outcome"] == "emergency_admission"
    assert run.data.tags["champion_decision"] == "promoted"
    arts = {a.path for a in client.list_artifacts(first_run.run_id, "plots")}
    assert {
        "plots/calibration.png",
        "plots/roc.png",
        "plots/deciles.png",
        "plots/shap_summary.png",
        "plots/feature_importance.png",
    } <= arts
    tables = {a.path for a in client.list_artifacts(first_run.run_id, "tables")}
    assert "tables/model_subgroups.csv" in tables and "tables/baselines.csv" in tables
    # the fairness audit (issue 14): its tables, a plot of rates over thresholds per variable,
    # the calibration plot, and its headline metrics, with every training run
    assert {
        "tables/fairness_by_group.csv",
        "tables/fairness_by_threshold.csv",
        "tables/fairness_commissioner.csv",
    } <= tables
    assert {f"plots/fairness_fpr_fnr_{v}.png" for v in ("sex", "age_band", "imd_quintile", "ethnicity_group")} | {
        "plots/fairness_calibration.png"
    } <= arts
    assert 0 <= run.data.metrics["fairness_auroc_gap_max"] < 1 and "fairness_oe_deviation_sex" in run.data.metrics
    # counts only: no NHS number, no pseudonym anywhere in the store or the artefacts. The
    # pattern scanner reads every file but the serialised estimator, whose LightGBM trees list
    # leaf counts ("761 357 1241") that look like spaced NHS numbers; that file is checked
    # below against every NHS number of the population, in both ways of writing one.
    # the model's code/ is riskstrat's own source (shipped for serving: its example numbers are
    # checked in the repository), the estimator's leaf counts look like numbers
    shipped = [
        f for f in scan_directory(base) if not f.path.endswith("estimator.joblib") and "/code/riskstrat/" not in f.path
    ]
    assert shipped == []
    numbers = set(pq.read_table(clean_population[0] / "gp_registrations.parquet")["nhs_number"].to_pylist())
    written = {n.encode() for n in numbers} | {f"{n[:3]} {n[3:6]} {n[6:]}".encode() for n in numbers}
    digits = re.compile(rb"(?<![0-9])\d{3} ?\d{3} ?\d{4}(?![0-9])")
    for f in base.rglob("*"):
        if f.is_file():
            assert not (set(digits.findall(f.read_bytes())) & written), f
    hexes = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
    registrations = list(base.parent.glob("**/pseudonymised/linked/gp_registrations.parquet"))
    pseudonyms = (
        {r["pseudonym"].encode() for r in pq.read_table(registrations[0]).to_pylist()} if registrations else set()
    )
    for f in base.rglob("*"):
        if f.is_file() and f.suffix != ".db":
            found = set(hexes.findall(f.read_bytes()))
            assert not (found & pseudonyms), f


def test_a_worse_model_does_not_take_the_champion_alias(first_run, pseudonymised, mlflow_server, tmp_path):
    uri, _ = mlflow_server
    text = (MODELS_DIR / "emergency_admission_12m.yaml").read_text()
    text = (
        text.replace("include: all ", "include: [sex] ")
        .replace("exclude: [practice_code, pcn_code]", "exclude: []")
        .replace("categorical: [sex, ethnicity_group]", "categorical: [sex]")
    )
    weak = tmp_path / "emergency_admission_12m.yaml"
    weak.write_text(text)
    result = train(pseudonymised, AS_OF, spec_path=weak, tracking_uri=uri)
    assert result.version == "2" and not result.promoted
    assert "champion version 1 kept" in result.reason
    from mlflow import MlflowClient

    assert MlflowClient(uri).get_model_version_by_alias("emergency_admission_12m", "champion").version == "1"


def test_training_refuses_an_open_outcome_window(pseudonymised, tmp_path):
    with pytest.raises(RiskstratError, match=r"outcome window of 2026-01-01 .* data end on"):
        train(pseudonymised, dt.date(2026, 1, 1), tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")


def test_truth_under_another_key_is_refused_not_ignored(pseudonymised, clean_population, tmp_path):
    _, truth = clean_population
    with pytest.raises(RiskstratError, match=r"100% of the people validated have no true risk"):
        train(
            pseudonymised,
            AS_OF,
            tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
            truth_dir=truth,
            pseudonym_key="another-region-key-abc-def-ghij-klmn-opqrst",
        )


def test_held_out_practices_are_evaluated_apart_and_training_people_capped(pseudonymised, tmp_path):
    import shutil

    work = tmp_path / "W"
    shutil.copytree(pseudonymised, work)
    shutil.rmtree(work / "pseudonymised" / "features", ignore_errors=True)  # built here, for the kept people
    text = (
        (MODELS_DIR / "emergency_admission_12m.yaml")
        .read_text()
        .replace("held_out_practices: 0.0", "held_out_practices: 0.3")
        .replace("max_people: 300000", "max_people: 1200")
    )
    spec = tmp_path / "emergency_admission_12m.yaml"
    spec.write_text(text)
    result = train(work, AS_OF, spec_path=spec, tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    from mlflow import MlflowClient

    run = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}").get_run(result.run_id)
    assert 0.5 < run.data.metrics["held_out_practices_auroc"] < 1.0
    assert run.data.params["held_out_practices"] == "0.3"
    import json

    summary = json.loads(
        open(
            MlflowClient(f"sqlite:///{tmp_path / 'm.db'}").download_artifacts(result.run_id, "data_summary.json")
        ).read()
    )
    # about 1,200 of the ~2,000 people at the newest date, the same people at every date
    assert 0.45 < summary["training_people_share"] < 0.75
    assert summary["training_people"] < 1200 * 1.2  # people joining at older dates add a few
    # the feature tables of the training dates were built for those people only, and say so
    kept = training_share(work, AS_OF, load_spec(spec))
    assert kept is not None and round(kept.share, 4) == summary["training_people_share"]
    for d in (AS_OF, AS_OF - dt.timedelta(days=365), AS_OF + dt.timedelta(days=365)):
        path = features_path(work, d)
        assert sample_of(path) == kept
        people = pq.read_table(path, columns=["pseudonym"])["pseudonym"].to_pandas()
        assert kept.kept(people).all() and len(people) < 1200 * 1.2


def test_a_training_dates_table_holds_the_kept_people_with_the_same_features(pseudonymised, tmp_path):
    import shutil

    work = tmp_path / "W"
    shutil.copytree(pseudonymised, work)
    spec = load_spec()
    everyone = pq.read_table(build_features(work, AS_OF).path)
    assert sample_of(features_path(work, AS_OF)) is None
    share = PeopleShare(seed=99, share=0.4)
    some = build_features(work, AS_OF, sample=share)
    assert some.sample == share and sample_of(some.path) == share
    table = pq.read_table(some.path)
    expected = everyone.filter(share.kept(everyone["pseudonym"].to_pandas()))
    # the same people, in the same order, with every feature equal to the whole population's table
    assert table.replace_schema_metadata(None).equals(expected.replace_schema_metadata(None))
    assert 0.3 < table.num_rows / everyone.num_rows < 0.5
    # a table of a share is never taken for another share, nor for everyone
    assert features_inputs(work, AS_OF, share) != features_inputs(work, AS_OF)
    assert manifest.is_current(WorkDir(work), features_stage(AS_OF), features_inputs(work, AS_OF, share))
    assert not manifest.is_current(WorkDir(work), features_stage(AS_OF), features_inputs(work, AS_OF))
    other = PeopleShare(seed=99, share=0.2)
    assert len(load_dataset(work, AS_OF, spec, share=other)) < table.num_rows
    assert sample_of(features_path(work, AS_OF)) == other  # rebuilt for the other share
    assert len(load_dataset(work, AS_OF, spec)) > table.num_rows
    assert sample_of(features_path(work, AS_OF)) is None  # rebuilt for everyone


def test_train_command_uses_the_embedded_store_by_default(pseudonymised, tmp_path):
    import shutil

    work = tmp_path / "W"
    shutil.copytree(pseudonymised, work)
    (work / "mlflow.db").unlink(missing_ok=True)
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # no server: the embedded store
    result = subprocess.run(
        [sys.executable, "-m", "riskstrat", "train", "--workdir", str(work), "--as-of", str(AS_OF)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (work / "mlflow.db").exists() and (work / "mlartifacts").is_dir()
    assert "registered emergency_admission_12m version 1" in " ".join(result.stdout.split())
    bad = subprocess.run(
        [sys.executable, "-m", "riskstrat", "train", "--workdir", str(work), "--as-of", "2026-06-01"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "outcome window of 2026-06-01" in bad.stderr


def test_training_stacks_three_dates_and_registers_the_selected_learner(first_run, mlflow_server):
    import json

    uri, _ = mlflow_server
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(first_run.run_id)
    assert json.loads(run.data.params["stacked_as_of_dates"]) == ["2024-10-01", "2023-10-02", "2022-10-02"]
    assert run.data.params["validation_as_of"] == "2025-10-01"
    summary = json.loads(open(client.download_artifacts(first_run.run_id, "data_summary.json")).read())
    # every person at each date: about three rows per person, never fewer rows than people
    assert 2.5 < summary["training_rows"] / summary["training_people"] <= 3.0
    # the selection and report halves of the validation population are disjoint halves
    assert abs(summary["selection_people"] - summary["validation_people"]) < 0.1 * summary["validation_people"]
    selection = first_run.selection
    chosen = selection.loc[selection["chosen"], "learner"].item()
    assert chosen == run.data.tags["learner"] == first_run.learner
    assert selection.loc[selection["chosen"], "selection_auroc"].item() == selection["selection_auroc"].max()
    for learner in selection["learner"]:
        assert f"selection_auroc_{learner}" in run.data.metrics
    trials = client.get_metric_history(first_run.run_id, "search_trial_selection_auroc")
    assert len(trials) >= 1 and [t.step for t in trials] == list(range(len(trials)))
    # the registered model is the chosen learner's estimator
    model = load_model("models:/emergency_admission_12m@champion")
    estimator = model.unwrap_python_model().estimator
    assert type(estimator).__name__ == {"lightgbm": "AdmissionRiskModel", "logistic": "LogisticRiskModel"}[chosen]
