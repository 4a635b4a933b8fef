"""Outputs: each practice sees only its own patients; commissioners see no NHS numbers."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstrat.features.asof import cut
from riskstrat.features.asof import population as asof_population
from riskstrat.outputs.direct_care import KEY_COUNTS, LIST_COLUMNS, practice_list, write_atomically
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.disclosure import SUPPRESSED
from riskstrat.privacy.nhs_number import synthetic_nhs_numbers
from riskstrat.privacy.scan import scan_directory
from riskstrat.privacy.vault import open_vault, write_vault
from riskstrat.stages.export import export
from riskstrat.stages.score import score
from riskstrat.stages.train import train

from .conftest import VAULT_KEY
from .featurekit import backend, person, sources

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


def test_lists_and_pages_written_by_worker_processes_are_the_same_files(exported, tmp_path, monkeypatch):
    """At the size of an ICB the pages are rendered by a pool of processes
    (``PARALLEL_FROM_PEOPLE``); forced here on 3,000 people, every file of every practice's
    folder is byte for byte what the stage's own process wrote, with the same permissions."""
    import riskstrat.stages.export as stage

    work, _ = exported
    again = tmp_path / "W"
    shutil.copytree(work, again, symlinks=True)
    monkeypatch.setattr(stage, "PARALLEL_FROM_PEOPLE", 0)
    export(again, D, VAULT_KEY)
    month = Path("direct_care") / D.isoformat()
    ours = sorted(p.relative_to(work / month) for p in (work / month).rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(again / month) for p in (again / month).rglob("*") if p.is_file())
    assert ours == theirs and len([p for p in ours if p.suffix == ".html"]) == 5
    for rel in ours:
        assert (work / month / rel).read_bytes() == (again / month / rel).read_bytes(), rel
        assert (again / month / rel).stat().st_mode & 0o777 == 0o600, rel


def test_a_list_that_fails_in_a_worker_fails_the_stage_with_its_own_error(tmp_path):
    """A worker's error is the stage's (so a full disk is still the one-line resource error)."""
    from riskstrat.outputs.worklist import CHANGE_COLUMNS
    from riskstrat.stages.export import _Pages
    from riskstrat.workdir import WorkDir

    files = WorkDir(tmp_path / "W").practice_files(tmp_path / "no such folder", "Y90000")
    marked = pd.DataFrame(columns=[*LIST_COLUMNS, *CHANGE_COLUMNS])
    with pytest.raises(FileNotFoundError, match="no such folder"), _Pages(2) as pages:
        pages.write(files, pd.DataFrame(), [], pd.Series(dtype=object), D, marked, "model")


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
        lst = pd.read_csv(work / "direct_care" / "current" / f"{p}.csv", dtype={"nhs_number": str})
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


SEX = {"M", "F", "I", "U"}


def test_sex_is_written_the_same_way_in_every_output(exported):
    """M, F (I indeterminate, U not known) on practice lists and pages, in the commissioner
    cohort table, aggregates and report, and in the fairness audit the report shows."""
    work, _ = exported
    month = work / "direct_care" / "current"
    lists = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(month.glob("*.csv"))]
    sexes = pd.concat([lst["sex"] for lst in lists])
    assert set(sexes) <= SEX and {"M", "F"} <= set(sexes)
    page = sorted(month.glob("*.html"))[0].read_text()  # the page of the first list's practice
    first = lists[0].iloc[0]
    cells = page.split(f'data-nhs="{first["nhs_number"]}"', 1)[1].split("</tr>", 1)[0]
    assert f">{first['age']}</td><td>{first['sex']}</td>" in cells
    commissioner = work / "commissioner" / "current"
    cohort = pq.read_table(commissioner / "cohort.parquet").to_pandas()
    assert set(cohort["sex"]) <= SEX and {"M", "F"} <= set(cohort["sex"])
    agg = pd.read_csv(commissioner / "aggregates.csv", dtype=str)
    assert set(agg.loc[agg["dimension"] == "sex", "value"]) - {"Total"} <= SEX
    report = (commissioner / "report.html").read_text()
    fairness = report.split("How fair is the model?", 1)[1]
    assert "<td>F</td>" in fairness and "<td>M</td>" in fairness
    assert "female" not in fairness and "<td>male</td>" not in report
    assert "Sex: M male, F female, I indeterminate, U not known." in report


def test_practice_lists_show_reasons_to_act_on_and_background_and_activity_in_words(exported):
    work, _ = exported
    month = work / "direct_care" / "current"
    lists = pd.concat(
        [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(month.glob("*.csv"))], ignore_index=True
    )
    # every top reason is in one of the two groups, and the groups hold no more than three each
    for _, row in lists.head(300).iterrows():
        groups = [r for g in ("actionable_reasons", "background_reasons") for r in row[g].split("; ") if r]
        assert all(row[f"reason_{i}"] in groups for i in (1, 2, 3) if row[f"reason_{i}"]), row["rank_in_practice"]
        assert all(len([r for r in row[g].split("; ") if r]) <= 3 for g in ("actionable_reasons", "background_reasons"))
    assert (lists["actionable_reasons"] != "").any() and (lists["background_reasons"] != "").any()
    shown = [r for g in ("actionable_reasons", "background_reasons") for cell in lists[g] for r in cell.split("; ")]
    assert not [r for r in shown if re.fullmatch(r"[0-9]+ long-term conditions?", r)]  # named, never counted
    assert not [r for r in shown if "frail" in r and "(fit)" in r]
    assert not [r for r in shown if r.startswith("frailty")]  # always its category
    pages = "".join(p.read_text() for p in sorted(month.glob("*.html")))
    assert "<strong>To act on:</strong>" in pages and "Background: " in pages
    # activity in words: ICD-10 descriptions with the code, treatment functions by name, providers by name
    assert re.search(r"<td>[A-Z][^<(]+ \([A-Z][0-9]{2}(\.[0-9])?\); discharged 20", pages)
    assert re.search(r"<td>[A-Z][A-Za-z ]+ Service \([0-9]{3}\)", pages)
    assert "<td>Synthetic Hospitals NHS Trust A</td>" in pages
    assert "treatment function " not in pages  # every synthetic clinic code has its Data Dictionary name


def test_commissioner_outputs_hold_no_nhs_numbers_and_obey_suppression(exported):
    work, _ = exported
    assert scan_directory(work / "commissioner" / "current") == []
    cohort = pq.read_table(work / "commissioner" / "current" / "cohort.parquet").to_pandas()
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
    agg = pd.read_csv(work / "commissioner" / "current" / "aggregates.csv", dtype=str)
    counts = agg[agg["measure"].str.startswith("people")]["published"]
    published = counts[counts != SUPPRESSED].astype(int)
    assert not ((published >= 1) & (published <= 7)).any()
    assert (published % 5 == 0).all()
    assert (counts == SUPPRESSED).any()  # small practice-by-band cells exist and are hidden
    # every published count is the rounded true count; only true counts of 1-7 are redacted, or a
    # complementary cell, one of 100 people or more only when its line had no smaller one to hide
    # (here: 1 person of unknown sex in the low band, pinned by the rounded column 780 + 785 of
    # 1560, forces one of the low band's cells of hundreds to be hidden)
    log = pd.read_csv(work / "commissioner" / "current" / "disclosure_log.csv", dtype=str)
    bands = ["very high", "high", "moderate", "low"]
    for dim in ("practice_code", "pcn_code", "age_band", "sex", "imd_quintile"):
        truth = pd.crosstab(cohort[dim], cohort["risk_band"]).reindex(columns=bands, fill_value=0)
        for value, row in truth.iterrows():
            for band, n in row.items():
                measure = "people_" + band.replace(" ", "_")
                at = (agg["dimension"] == dim) & (agg["value"] == str(value)) & (agg["measure"] == measure)
                shown = agg.loc[at, "published"].item()
                if shown != SUPPRESSED:
                    assert abs(int(shown) - n) <= 2 and (n == 0) == (int(shown) == 0), (dim, value, band, n)
                elif n >= 100:
                    rule = log.loc[at, "rule"].item()
                    assert rule.startswith("redacted: secondary"), (dim, value, band, n, rule)
                    line = truth[band] if rule.endswith("its column)") else row
                    others = line.drop(value if rule.endswith("its column)") else band)
                    assert (others[others > 7] >= n).all(), (dim, value, band, n, rule)
    # the scoring model's fairness summary, from its training run, counts protected
    report = (work / "commissioner" / "current" / "report.html").read_text()
    assert "How fair is the model?" in report and "<td>F</td>" in report and "<td>65-79</td>" in report
    # the decision record accounts for every published cell, with no true value in it
    keys = ["dimension", "value", "measure"]
    assert log[keys].equals(agg[keys])
    redacted = agg["published"] == SUPPRESSED
    assert log.loc[redacted, "rule"].str.match(r"^(redacted|withheld)").all()
    assert not log.loc[~redacted, "rule"].str.match(r"^(redacted|withheld)").any()
    assert set(log.columns) == {*keys, "rule", "as_of", "model_version"}


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


_PRACTICES = ("Y90001", "Y90002", "Y90003")
_spell = st.tuples(
    st.sampled_from(_PRACTICES),
    st.integers(-900, 3),  # registration start, days from D (around D on purpose)
    st.one_of(st.none(), st.integers(0, 900)),  # length in days; None: still registered
)
_history = st.tuples(st.lists(_spell, min_size=1, max_size=3), st.one_of(st.none(), st.integers(-5, 5)))


@settings(max_examples=40, deadline=None)
@given(histories=st.lists(_history, min_size=1, max_size=20), seed=st.integers(0, 2**16))
def test_property_lists_hold_exactly_the_people_registered_at_each_practice_on_d(histories, seed):
    """Moves between practices, registrations starting or ending on D, deaths either side of D:
    each person registered (and alive) on D is in exactly one list, their practice's, and no
    list holds anyone else."""
    nhs = synthetic_nhs_numbers(len(histories), np.random.default_rng(seed))
    spells, deaths = [], []
    for i, (history, death) in enumerate(histories):
        for practice, start, length in history:
            begin = D + dt.timedelta(days=start)
            end = None if length is None else begin + dt.timedelta(days=length)
            spells.append((f"p{i:03d}", nhs[i], practice, begin, end))
        if death is not None:
            deaths.append({"pseudonym": f"p{i:03d}", "date_of_death": D + dt.timedelta(days=death)})
    regs = [person(p, start=s, end=e, practice=c) for p, _, c, s, e in spells]
    src = sources("duckdb", {"gp_registrations": regs, "deaths": deaths}, practices=_PRACTICES)
    population = backend("duckdb").to_pyarrow(asof_population(cut(src, D), D)).to_pandas()
    rng = np.random.default_rng(seed)
    scored = population[["pseudonym", "practice_code"]].assign(
        risk_score=rng.choice([0.1, 0.2, 0.3], len(population)),  # ties, as isotonic calibration makes
        model_score=rng.normal(size=len(population)),
        risk_band="low",
        reason_1=None,
        reason_2=None,
        reason_3=None,
        actionable_reasons=None,
        background_reasons=None,
        age_years=50,
        sex="2",
        **dict.fromkeys(KEY_COUNTS, 0),
    )
    with tempfile.TemporaryDirectory() as tmp:
        vault_rows = pa.table(
            {
                "pseudonym": [s[0] for s in spells],
                "nhs_number": [s[1] for s in spells],
                "practice_code": [s[2] for s in spells],
                "registration_start": pa.array([s[3] for s in spells], pa.date32()),
                "registration_end": pa.array([s[4] for s in spells], pa.date32()),
                "date_of_birth": pa.array([dt.date(1976, 1, 1)] * len(spells), pa.date32()),
            }
        )
        write_vault(Path(tmp) / "vault.bin", vault_rows, VAULT_KEY)
        vault = open_vault(Path(tmp) / "vault.bin", VAULT_KEY, AuditLog(Path(tmp) / "audit.jsonl"))
        lists = {p: practice_list(vault, p, D, scored) for p in _PRACTICES}
    dead_before_d = {d["pseudonym"] for d in deaths if d["date_of_death"] < D}
    listed = []
    for practice, lst in lists.items():
        assert list(lst["rank_in_practice"]) == list(range(1, len(lst) + 1))
        assert lst["risk_score"].is_monotonic_decreasing
        by_nhs = scored.assign(nhs_number=[nhs[int(p[1:])] for p in scored["pseudonym"]]).set_index("nhs_number")
        model_score = by_nhs.loc[lst["nhs_number"], "model_score"].to_numpy()
        for tie in lst.groupby("risk_score").indices.values():
            assert (np.diff(model_score[tie]) <= 0).all()  # ties in risk ordered by the model's score
        for number in lst["nhs_number"]:
            i = int(np.flatnonzero(nhs == number)[0])
            assert f"p{i:03d}" not in dead_before_d
            assert any(
                p == f"p{i:03d}" and c == practice and s <= D and (e is None or e >= D) for p, _, c, s, e in spells
            ), (practice, spells)
        listed += list(lst["nhs_number"])
    assert len(listed) == len(set(listed))  # no one is on two lists, or twice on one
    alive_registered = {p for p, _, _, s, e in spells if s <= D and (e is None or e >= D) and p not in dead_before_d}
    assert {f"p{int(np.flatnonzero(nhs == n)[0]):03d}" for n in listed} == alive_registered


def test_exporting_again_gives_the_same_files(exported):
    work, _ = exported

    def digests() -> dict[str, str]:
        import hashlib

        folders = (work / "direct_care" / "current", work / "commissioner" / "current")
        files = sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())
        return {str(f.relative_to(work)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    before = digests()
    # per practice: the list (CSV and HTML), the recently discharged, the top bands' and the
    # discharged's import files (at least their NHS-number lists); commissioner: cohort,
    # aggregates, log, report
    assert sum(k.startswith("commissioner/") for k in before) == 4
    for code in (Path(k).stem for k in before if k.endswith(".html") and "direct_care" in k):
        mine = [k for k in before if f"/{code}" in k]
        assert {f"{code}.csv", f"{code}.html", f"{code}_recently_discharged.csv"} <= {k.split("/")[-1] for k in mine}
        assert {f"{code}_top_bands_nhs_numbers.txt", f"{code}_recently_discharged_nhs_numbers.txt"} <= {
            k.split("/")[-1] for k in mine
        }
    export(work, D, VAULT_KEY)
    assert digests() == before


def test_bands_come_from_the_model_so_renamed_bands_give_correct_figures(pseudonymised, tmp_path):
    """A model whose bands are called otherwise (and split otherwise): lists, aggregates and
    the report use its names, and the at-risk figures are the sums of its top-5% bands."""
    from riskstrat.modelling.spec import DEFAULT_SPEC

    work = tmp_path / "W"
    shutil.copytree(pseudonymised, work)
    (work / "mlflow.db").unlink(missing_ok=True)
    shutil.rmtree(work / "mlartifacts", ignore_errors=True)
    text = DEFAULT_SPEC.read_text()
    old = text[text.index("risk_bands:") : text.index("seed:")]
    new = (
        "risk_bands:\n"
        "  - {name: urgent, top_share: 0.01}\n"
        "  - {name: priority review, top_share: 0.05}\n"
        "  - {name: routine, top_share: 1.0}\n"
    )
    text = text.replace(old, new).replace("candidates: [lightgbm, logistic]", "candidates: [lightgbm]")
    text = text.replace("max_trials: 20", "max_trials: 1").replace("name: emergency_admission_12m", "name: renamed")
    spec = tmp_path / "renamed.yaml"
    spec.write_text(text)
    train(work, dt.date(2024, 10, 1), spec)
    score(work, D, "models:/renamed@champion")
    export(work, D, VAULT_KEY)
    folder = work / "commissioner" / "current"
    agg = pd.read_csv(folder / "aggregates.csv", dtype=str)
    cohort = pq.read_table(folder / "cohort.parquet").to_pandas()
    assert set(cohort["risk_band"]) == {"urgent", "priority review", "routine"}
    assert cohort["highest_risk_of_admission"].sum() == cohort["risk_band"].isin(["urgent", "priority review"]).sum()
    total = agg[(agg["dimension"] == "sex") & (agg["value"] == "Total")].set_index("measure")["published"]
    assert {"people_urgent", "people_priority_review", "people_routine"} <= set(total.index)
    assert "people_very_high" not in set(agg["measure"])
    assert int(total["people_at_risk"]) == int(total["people_urgent"]) + int(total["people_priority_review"])
    n = len(cohort)
    assert int(total["people_urgent"]) == pytest.approx(0.01 * n, abs=3)
    assert int(total["people_at_risk"]) == pytest.approx(0.05 * n, abs=5)
    assert float(total["percent_at_risk"]) == pytest.approx(
        100 * int(total["people_at_risk"]) / int(total["people_Total"]), abs=0.05
    )
    report = (folder / "report.html").read_text()
    assert "urgent and priority review band(s)" in report
    lists = list((work / "direct_care" / "current").glob("*.csv"))
    bands_listed = set(pd.concat([pd.read_csv(p, dtype=str) for p in lists])["risk_band"])
    assert bands_listed <= {"urgent", "priority review", "routine"} and "urgent" in bands_listed
