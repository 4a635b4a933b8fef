"""Outputs: each practice sees only its own patients; commissioners see no NHS numbers."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from riskstrat.outputs.direct_care import write_atomically
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.disclosure import SUPPRESSED
from riskstrat.privacy.scan import scan_directory
from riskstrat.stages.export import export
from riskstrat.stages.score import score
from riskstrat.stages.train import train

from .conftest import VAULT_KEY

D = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def exported(pseudonymised, tmp_path_factory):
    work = tmp_path_factory.mktemp("export") / "W"
    shutil.copytree(pseudonymised, work)
    (work / "mlflow.db").unlink(missing_ok=True)
    shutil.rmtree(work / "mlartifacts", ignore_errors=True)
    train(work, dt.date(2024, 10, 1))
    score(work, D)
    result = export(work, D, VAULT_KEY)
    return work, result


def test_each_list_holds_only_the_practice_s_own_patients_registered_on_d(exported, clean_population):
    work, result = exported
    extracts, _ = clean_population
    reg = pq.read_table(extracts / "gp_registrations.parquet").to_pandas()
    on_d = reg[(reg["registration_start"] <= D) & (reg["registration_end"].isna() | (reg["registration_end"] >= D))]
    deaths = pq.read_table(extracts / "deaths.parquet").to_pandas()
    dead = set(deaths.loc[deaths["date_of_death"] < D, "nhs_number"])
    objectors = set(pq.read_table(extracts / "opt_outs.parquet")["nhs_number"].to_pylist())
    practices = pq.read_table(extracts / "ref_practices.parquet")["practice_code"].to_pylist()
    assert len(practices) == 5 and result.practices == 5
    seen = 0
    for p in practices:
        lst = pd.read_csv(work / "direct_care" / f"{p}.csv", dtype={"nhs_number": str})
        allowed = set(on_d.loc[on_d["practice_code"] == p, "nhs_number"])
        assert set(lst["nhs_number"]) <= allowed, p
        assert not set(lst["nhs_number"]) & dead and not set(lst["nhs_number"]) & objectors
        assert list(lst["rank_in_practice"]) == list(range(1, len(lst) + 1))
        assert lst["risk_score"].is_monotonic_decreasing
        seen += len(lst)
    assert seen == result.patients_listed > 1000
    exports = [
        r for r in AuditLog(work / "identifiable" / "audit.jsonl").records() if r["event"] == "direct_care_export"
    ]
    assert sorted(r["practice_code"] for r in exports) == sorted(practices)


def test_commissioner_outputs_hold_no_nhs_numbers_and_obey_suppression(exported):
    work, _ = exported
    assert scan_directory(work / "commissioner") == []
    cohort = pq.read_table(work / "commissioner" / "cohort.parquet").to_pandas()
    assert "nhs_number" not in cohort.columns and cohort["pseudonym"].str.len().eq(64).all()
    for c in (
        "highest_risk_of_admission",
        "high_cost",
        "frail_and_elderly",
        "currently_in_hospital",
        "most_referrals_to_secondary_care",
        "most_emergency_activity",
        "most_expensive_prescriptions",
        "recently_discharged",
    ):
        assert cohort[c].dtype == bool, c
    assert cohort["high_cost"].mean() == pytest.approx(0.15, abs=0.03)
    agg = pd.read_csv(work / "commissioner" / "aggregates.csv", dtype=str)
    counts = agg[agg["measure"].str.startswith("people")]["published"]
    published = counts[counts != SUPPRESSED].astype(int)
    assert not ((published >= 1) & (published <= 7)).any()
    assert (published % 5 == 0).all()
    assert (counts == SUPPRESSED).any()  # small practice-by-band cells exist and are hidden
    # no suppressed cell is alone in its row (bands and total): none can be recovered
    bands = agg["measure"].isin(["people_very_high", "people_high", "people_moderate", "people_low", "people_Total"])
    for (dim, value), rows in agg[bands].groupby(["dimension", "value"]):
        assert (rows["published"] == SUPPRESSED).sum() != 1, (dim, value)


def test_an_interrupted_export_leaves_no_partial_file(tmp_path, monkeypatch):
    frame = pd.DataFrame({"nhs_number": ["9990000018"] * 1000, "risk_score": np.linspace(0, 1, 1000)})
    target = tmp_path / "Y90001.csv"

    def boom(src, dst):
        raise KeyboardInterrupt  # the job is killed just before the rename

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(frame, target)
    assert not target.exists()
    monkeypatch.undo()
    write_atomically(frame, target)
    assert len(pd.read_csv(target)) == 1000
    assert oct(target.stat().st_mode & 0o777) == "0o600"
