"""The monthly batch on Spark gives the DuckDB path's tables and files (local Spark session).

One small synthetic population (3,000 people) goes through both paths: the DuckDB stages
(pseudonymise, train once, score, export) and :func:`riskstrat.scaleout.run_batch` on a real
local Spark session, scoring with the model the DuckDB path registered.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from riskstrat.config import Config
from riskstrat.features import all_features
from riskstrat.modelling.spec import MODELS_DIR
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.pseudonym import pseudonym
from riskstrat.privacy.vault import open_vault
from riskstrat.scaleout import run_batch
from riskstrat.scaleout.score import dataset_checksum
from riskstrat.schema import PERSON_KEY, PSEUDONYM
from riskstrat.scoring import assign_bands, bands_of_ranks
from riskstrat.stages.export import export
from riskstrat.stages.score import score
from riskstrat.stages.train import train
from riskstrat.tracking import tracking_uri
from riskstrat.workdir import WorkDir

from .conftest import REGION_KEY, VAULT_KEY
from .featurekit import spark

D = dt.date(2026, 10, 1)
TRAIN_AS_OF = dt.date(2024, 10, 1)
BANDS = [("very high", 0.005), ("high", 0.05), ("moderate", 0.2), ("low", 1.0)]


def test_bands_of_ranks_is_the_rule_of_assign_bands():
    rng = np.random.default_rng(3)
    risk = pd.Series(np.round(rng.random(997), 2), index=[f"p{i:04d}" for i in range(997)])  # many ties
    model_score = pd.Series(rng.normal(size=997), index=risk.index)
    banded = assign_bands(risk, BANDS, model_score)
    order = pd.DataFrame({"s": risk, "m": model_score, "k": risk.index}).sort_values(
        ["s", "m", "k"], ascending=[False, False, True]
    )
    ranked = pd.Series(bands_of_ranks(np.arange(1, 998), 997, BANDS), index=order.index)
    pd.testing.assert_series_equal(ranked.reindex(risk.index), banded, check_names=False)
    assert (banded == "very high").sum() == 4  # floor(0.005 x 997): shares of the whole population


@pytest.fixture(scope="module")
def both_paths(pseudonymised, clean_population, tmp_path_factory):
    """(DuckDB work directory, Spark work directory, the Spark batch's result)."""
    extracts, _ = clean_population
    base = tmp_path_factory.mktemp("scaleout")
    duck = base / "duck"
    shutil.copytree(pseudonymised, duck)
    (duck / "mlflow.db").unlink(missing_ok=True)
    shutil.rmtree(duck / "mlartifacts", ignore_errors=True)
    spec = yaml.safe_load((MODELS_DIR / "emergency_admission_12m.yaml").read_text())
    spec["learner"].update(candidates=["lightgbm"])  # a quick model will do: no search, one learner
    spec["learner"]["search"].update(max_trials=0)
    spec_path = base / "emergency_admission_12m.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    train(duck, TRAIN_AS_OF, spec_path=spec_path)
    score(duck, D)
    export(duck, D, VAULT_KEY)
    work = base / "spark"
    result = run_batch(spark(), extracts, work, D, Config(), REGION_KEY, VAULT_KEY, tracking_uri=tracking_uri(duck))
    return duck, work, result


def _frame(path: Path, key: list[str] | None = None) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    return frame.sort_values(key or list(frame.columns)).reset_index(drop=True)


@pytest.mark.slow
def test_spark_pseudonymises_to_the_same_tables(both_paths, clean_population):
    duck, work, result = both_paths
    names = sorted(p.name for p in WorkDir(duck).linked.glob("*.parquet"))
    assert {"sus_apc.parquet", "gp_registrations.parquet", "gp_events.parquet", "opt_out_uses.parquet"} <= set(names)
    for name in names:
        a, b = _frame(WorkDir(duck).linked / name), _frame(WorkDir(work).linked / name)
        assert (WorkDir(work).linked / name).exists(), name
        # the single-machine stage also writes each person's integer key for its features stage;
        # Spark's features group by the pseudonym itself, so Spark writes none
        if PERSON_KEY in a.columns:
            assert PERSON_KEY not in b.columns and a[PERSON_KEY].nunique() == a[PSEUDONYM].nunique(), name
            a = a.drop(columns=PERSON_KEY)
            a = a.sort_values(list(a.columns)).reset_index(drop=True)
        pd.testing.assert_frame_equal(b, a, check_dtype=True, obj=name)
    patients = pq.read_table(WorkDir(work).table("gp_registrations"))
    assert "month_of_birth" in patients.column_names and "date_of_birth" not in patients.column_names
    assert not any("nhs_number" in pq.read_table(WorkDir(work).linked / n).column_names for n in names)
    # the published definition: HMAC-SHA256 of the NHS number under the region key
    extracts, _ = clean_population
    first = pq.read_table(extracts / "gp_registrations.parquet", columns=["nhs_number"])["nhs_number"][0].as_py()
    assert pseudonym(first, REGION_KEY) in set(patients["pseudonym"].to_pylist())
    # the same report (every row accounted for) and the same people in the vault
    held = json.loads((duck / "reports" / "pseudonymise.json").read_text())
    assert result.pseudonymise.reconciles
    assert result.pseudonymise.to_dict()["tables"] == held["tables"]
    assert result.pseudonymise.opted_out == held["opted_out_people"] and held["opted_out_people"]["both"] >= 0
    assert result.pseudonymise.vault_rows == held["vault_rows"] > 2500
    code = pq.read_table(extracts / "ref_practices.parquet")["practice_code"][0].as_py()
    lists = [
        open_vault(w / "identifiable" / "vault.bin", VAULT_KEY, AuditLog(w / "identifiable" / "audit.jsonl"))
        .practice(code, D, purpose="test")
        .to_pandas()
        .sort_values("pseudonym")
        .reset_index(drop=True)
        for w in (duck, work)
    ]
    pd.testing.assert_frame_equal(lists[1], lists[0])


@pytest.mark.slow
def test_spark_builds_the_same_features(both_paths):
    duck, work, result = both_paths
    a = _frame(WorkDir(duck).features(D), ["pseudonym"])
    b = _frame(WorkDir(work).features(D), ["pseudonym"])
    assert result.features.people == len(a) > 1500 and WorkDir(work).features(D).is_dir()
    pd.testing.assert_frame_equal(b[a.columns], a, check_dtype=False)  # the same values
    declared = {f.name: str(a[f.name].dtype) if f.dtype == "string" else str(f.dtype) for _, f in all_features()}
    assert {c: str(t) for c, t in b.drop(columns="pseudonym").dtypes.items()} == declared  # the declared types


@pytest.mark.slow
def test_spark_scores_bands_and_reasons_are_the_duckdb_path_s(both_paths):
    duck, work, result = both_paths
    a = _frame(WorkDir(duck).scores(D), ["pseudonym"])
    b = _frame(WorkDir(work).scores(D), ["pseudonym"])
    pd.testing.assert_frame_equal(b[a.columns], a)
    assert result.trained is None  # the DuckDB path's champion was used, not a new model
    assert (a["risk_band"] == "very high").sum() == int(0.005 * len(a))  # bands over the whole population
    assert a["reason_1"].notna().mean() > 0.5
    held = json.loads((duck / "reports" / f"score_{D}.json").read_text())
    made = result.scored.manifest
    for k in ("model_name", "model_version", "run_id", "people_scored", "excluded_by_opt_out_policy", "people_by_band"):
        assert made[k] == held[k], k
    assert made["mean_risk"] == pytest.approx(held["mean_risk"], abs=1e-6)
    assert made["checksums"]["scores"] == dataset_checksum(WorkDir(work).scores(D))


@pytest.mark.slow
def test_spark_path_exports_byte_identical_practice_lists_and_the_same_commissioner_outputs(both_paths):
    duck, work, result = both_paths
    csvs = sorted((duck / "direct_care" / "current").glob("*.csv"))
    assert len(csvs) == 5 == result.exported.practices
    for path in csvs:  # the same people, order, scores, bands, reasons and counts
        made = pd.read_csv(work / "direct_care" / "current" / path.name, dtype={"nhs_number": str})
        pd.testing.assert_frame_equal(made, pd.read_csv(path, dtype={"nhs_number": str}), check_dtype=False)
    for name in ("aggregates.csv", "report.html"):
        assert (work / "commissioner" / "current" / name).read_bytes() == (
            duck / "commissioner" / "current" / name
        ).read_bytes(), name
    pd.testing.assert_frame_equal(
        pq.read_table(work / "commissioner" / "current" / "cohort.parquet").to_pandas(),
        pq.read_table(duck / "commissioner" / "current" / "cohort.parquet").to_pandas(),
    )
    wd = WorkDir(work)
    places = (wd.pseudonymised, wd.linked, wd.features_dir, wd.scores_dir)
    assert not [p for d in places for p in d.glob(".*")]  # no working copies left behind
    exports = [
        r for r in AuditLog(work / "identifiable" / "audit.jsonl").records() if r["event"] == "direct_care_export"
    ]
    assert len(exports) == 5 and sum(r["patients"] for r in exports) == result.exported.patients_listed > 1000
    # the same pipeline as a run on one machine (PIPELINE), with its run record; no training: a champion exists
    record = json.loads(wd.run_report(D).read_text())
    assert [s["stage"] for s in record["stages"]] == [
        "pseudonymise",
        f"features at {D}",
        f"score at {D}",
        f"export at {D}",
        f"monitor at {D}",
    ]


@pytest.mark.slow
def test_practice_list_files_are_byte_identical(both_paths):
    duck, work, _ = both_paths
    month = duck / "direct_care" / "current"
    files = sorted(p for p in month.rglob("*") if p.is_file())  # lists, pages, discharged and import files
    assert any(p.name.endswith("_recently_discharged.csv") for p in files)
    assert any(p.name.endswith("_top_bands_import_1.csv") for p in files)
    for path in files:
        rel = path.relative_to(month)
        assert (work / "direct_care" / "current" / rel).read_bytes() == path.read_bytes(), str(rel)
    # the care register, sealed by either engine, holds the same rows
    registers = [
        open_vault(w / "identifiable" / "vault.bin", VAULT_KEY, AuditLog(w / "t.jsonl"), WorkDir(w).care_register)
        for w in (duck, work)
    ]
    code = pq.read_table(WorkDir(duck).table("ref_practices"))["practice_code"][0].as_py()
    assert registers[0].register(code, D).equals(registers[1].register(code, D))
