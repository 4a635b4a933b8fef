"""The synthetic population: contract-valid, realistic, with a truth that is the ceiling."""

from __future__ import annotations

import csv
import datetime as dt
import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from riskstrat.config import Config
from riskstrat.ingest.validate import validate_extracts
from riskstrat.privacy.nhs_number import is_valid
from riskstrat.synth import SynthOptions, generate
from riskstrat.synth.realism import TARGETS, measure

AS_OF = dt.date(2025, 10, 1)


@pytest.fixture(scope="module")
def population_100k(tmp_path_factory):
    base = tmp_path_factory.mktemp("p100k")
    generate(base / "x", SynthOptions(patients=100_000, seed=2026), base / "truth")
    return base / "x", base / "truth"


@pytest.mark.slow
def test_realism_targets_are_met(population_100k):
    extracts, _ = population_100k
    figures = measure(extracts, AS_OF)
    misses = {
        k: (round(figures[k], 4), target, tol)
        for k, (target, tol) in TARGETS.items()
        if abs(figures[k] - target) > tol * target
    }
    assert not misses, f"outside tolerance (value, target, relative tolerance): {misses}"
    # England-like pyramid: children, working age, older people.
    under_20 = sum(figures[f"age_band_{b:02d}"] for b in (0, 5, 10, 15))
    over_65 = sum(figures.get(f"age_band_{b:02d}", 0) for b in range(65, 100, 5))
    over_85 = sum(figures.get(f"age_band_{b:02d}", 0) for b in (85, 90, 95))
    assert 0.20 < under_20 < 0.26
    assert 0.16 < over_65 < 0.22
    assert 0.02 < over_85 < 0.04
    assert 0.55 < figures["female_share_85_plus"] < 0.70
    assert 0.005 < figures["opt_out_both"] < 0.02  # overlapping opt-outs


@pytest.mark.slow
def test_admission_risk_is_age_graded_and_the_truth_is_informative(population_100k):
    extracts, truth = population_100k
    con = duckdb.connect()
    # true risk at AS_OF against what happened in [AS_OF, AS_OF + 365)
    rows = con.execute(
        f"""
        WITH t AS (SELECT * FROM read_parquet('{truth}/true_risk.parquet') WHERE as_of = DATE '{AS_OF}'),
        em AS (SELECT DISTINCT nhs_number FROM read_parquet('{extracts}/sus_apc.parquet')
               WHERE admission_method IN ('21','22','23','24','25','2A','2B','2C','2D','28')
                 AND admission_date >= DATE '{AS_OF}' AND admission_date < DATE '{AS_OF}' + INTERVAL 365 DAY)
        SELECT t.true_risk, (em.nhs_number IS NOT NULL)::INT AS y FROM t LEFT JOIN em USING (nhs_number)
        """
    ).fetchnumpy()
    risk, y = rows["true_risk"], rows["y"]
    assert 60_000 < risk.size < 80_000
    # calibrated: expected = observed within sampling error
    assert abs(risk.sum() - y.sum()) < 4 * np.sqrt(risk.sum())
    # informative: the ceiling AUROC is well above chance, below perfection
    order = np.argsort(risk)
    ranks = np.empty_like(order, dtype=float)
    ranks[order] = np.arange(1, risk.size + 1)
    auc = (ranks[y == 1].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (risk.size - y.sum()))
    assert 0.78 < auc < 0.95
    # the top 1% by true risk are many times more likely to be admitted than average
    top = risk >= np.quantile(risk, 0.99)
    assert y[top].mean() > 5 * y.mean()


@pytest.mark.slow
def test_100k_clean_population_validates_with_nothing_quarantined(population_100k, tmp_path):
    extracts, _ = population_100k
    report = validate_extracts(extracts, Config(), tmp_path / "q", None)
    assert report.rows_read > 10_000_000
    assert report.quarantined_rows == 0, {k: dict(v.quarantined) for k, v in report.tables.items()}
    assert all(sum(t.unknown_codes.values()) == 0 for t in report.tables.values())


@pytest.mark.slow
def test_truth_is_written_apart_for_every_as_of_date(population_100k):
    extracts, truth = population_100k
    manifest = json.loads((truth / "manifest.json").read_text())
    assert manifest["as_of_dates"][-1] == "2026-10-01" and len(manifest["as_of_dates"]) == 8
    t = pq.read_table(truth / "true_risk.parquet")
    assert sorted({d.isoformat() for d in t["as_of"].to_pylist()}) == manifest["as_of_dates"]
    assert not any("risk" in p.name or "truth" in p.name for p in extracts.iterdir())
    r = t["true_risk"].to_numpy()
    assert (r > 0).all() and (r < 1).all()


def test_clean_population_is_valid_with_nothing_quarantined(clean_population, tmp_path):
    extracts, _ = clean_population
    report = validate_extracts(extracts, Config(), tmp_path / "q", None)
    assert report.quarantined_rows == 0, {k: dict(v.quarantined) for k, v in report.tables.items()}
    assert all(sum(t.unknown_codes.values()) == 0 for t in report.tables.values())
    assert report.tables["sus_apc"].rows_read > 1000
    assert set(report.tables) == {
        "gp_registrations",
        "gp_events",
        "gp_medications",
        "sus_apc",
        "sus_op",
        "sus_ecds",
        "deaths",
        "opt_outs",
        "ref_practices",
        "ref_lsoa",
        "ref_providers",
        "care_register",
    }
    assert report.tables["care_register"].rows_read > 10  # the practices' registers (contract v1.1)


def test_every_nhs_number_is_synthetic(clean_population):
    extracts, _ = clean_population
    numbers = pq.read_table(extracts / "gp_registrations.parquet")["nhs_number"].unique()
    assert is_valid(numbers).all()
    assert all(n.startswith("999") for n in numbers.to_pylist())


def test_population_structure(clean_population):
    extracts, _ = clean_population
    con = duckdb.connect()
    q = lambda sql: con.execute(sql.replace("X/", f"{extracts}/")).fetchone()  # noqa: E731
    # registrations start and end; some people change practice within the region
    n_people, n_rows, ended = q(
        "SELECT count(DISTINCT nhs_number), count(*), count(registration_end) FROM 'X/gp_registrations.parquet'"
    )
    assert n_people == 3000 and n_rows > n_people and 0.15 < ended / n_rows < 0.45
    # births in the period
    assert (
        q(
            "SELECT count(*) FROM 'X/gp_registrations.parquet' "
            "WHERE registration_start - date_of_birth < 60 AND date_of_birth >= DATE '2019-10-03'"
        )[0]
        > 50
    )
    # every death ends the registration (within 31 days) and nothing is recorded after it
    assert (
        q("""SELECT count(*) FROM 'X/deaths.parquet' d JOIN 'X/gp_registrations.parquet' r USING (nhs_number)
               WHERE r.registration_end IS NULL AND d.date_of_death < DATE '2026-09-01'""")[0]
        == 0
    )
    assert (
        q("""SELECT count(*) FROM 'X/deaths.parquet' d JOIN 'X/gp_medications.parquet' m USING (nhs_number)
               WHERE m.issue_date > d.date_of_death""")[0]
        == 0
    )
    # practices belong to PCNs under one sub-ICB
    assert q("SELECT count(DISTINCT sub_icb_code) FROM 'X/ref_practices.parquet'")[0] == 1
    # multi-episode spells exist, and episodes of a spell share its dates
    assert q("SELECT count(*) FROM 'X/sus_apc.parquet' WHERE episode_number > 1")[0] > 0
    assert (
        q("""SELECT count(*) FROM (SELECT spell_id FROM 'X/sus_apc.parquet' GROUP BY 1
               HAVING count(DISTINCT admission_date) > 1)""")[0]
        == 0
    )
    # some emergency admissions come through A&E on the same day, ending in admission
    assert (
        q("""SELECT count(*) FROM 'X/sus_ecds.parquet' e JOIN 'X/sus_apc.parquet' a
               ON e.nhs_number = a.nhs_number AND e.arrival_date = a.admission_date
               WHERE e.admitted AND a.admission_method = '21' AND a.episode_number = 1""")[0]
        > 100
    )
    # BNF codes are 15 characters from the shipped list, with costs
    assert q(
        "SELECT min(length(bnf_code)), max(length(bnf_code)), min(actual_cost) > 0 FROM 'X/gp_medications.parquet'"
    ) == (15, 15, True)


def test_medicines_follow_conditions(clean_population):
    extracts, _ = clean_population
    con = duckdb.connect()
    hf = ",".join(f"'{c}'" for c in __import__("riskstrat").codelists.snomed_cluster("hf"))
    share = con.execute(
        f"""
        WITH hf AS (SELECT DISTINCT nhs_number FROM '{extracts}/gp_events.parquet' WHERE snomed_code IN ({hf})),
        loop AS (SELECT DISTINCT nhs_number FROM '{extracts}/gp_medications.parquet' WHERE bnf_code LIKE '020202%')
        SELECT avg((loop.nhs_number IS NOT NULL)::INT) FROM hf LEFT JOIN loop USING (nhs_number)
        """
    ).fetchone()[0]
    overall = con.execute(
        f"SELECT count(DISTINCT nhs_number) / 3000 FROM '{extracts}/gp_medications.parquet' "
        "WHERE bnf_code LIKE '020202%'"
    ).fetchone()[0]
    assert share > 0.5 and share > 10 * overall  # loop diuretics go to people with heart failure


def test_same_seed_same_data(tmp_path):
    for name in ("a", "b"):
        generate(tmp_path / name, SynthOptions(patients=500, seed=9), workers=1)
    for f in (tmp_path / "a").iterdir():
        assert pq.read_table(f).equals(pq.read_table(tmp_path / "b" / f.name)), f.name


def test_faults_are_all_accounted_for(faulty_population, tmp_path):
    clean, faulty, truth = faulty_population
    injected = json.loads((truth / "faults.json").read_text())
    base = validate_extracts(clean, Config(), tmp_path / "q0", None)
    got = validate_extracts(faulty, Config(), tmp_path / "q1", None)
    assert base.quarantined_rows == 0
    assert sum(sum(v.values()) for v in injected["quarantined"].values()) > 100
    for table, report in got.tables.items():
        assert dict(report.quarantined) == injected["quarantined"].get(table, {}), table
        assert {k: v for k, v in report.unknown_codes.items() if v} == injected["unknown_codes"].get(table, {}), table
        # missing values = the clean run's, less those on rows quarantined for another fault,
        # plus the injected ones
        qfile = tmp_path / "q1" / f"{table}.csv"
        bad = [r for r in csv.DictReader(qfile.open())] if qfile.exists() else []
        bad = [r for r in bad if r["rule"] != "duplicate_row"]
        extra_missing = {
            col: report.missing_optional[col]
            - base.tables[table].missing_optional[col]
            + sum(1 for r in bad if r[col] == "")
            for col in report.missing_optional
        }
        assert {k: v for k, v in extra_missing.items() if v} == injected["missing_optional"].get(table, {}), table
        # de-duplication leaves exactly the clean rows
        assert report.accepted == base.tables[table].accepted - sum(
            v for k, v in injected["quarantined"].get(table, {}).items() if k != "*:duplicate_row"
        ), table
        assert report.reconciles


def test_csv_and_parquet_extracts_validate_to_the_same_tables(tmp_path):
    opts = SynthOptions(patients=800, seed=3)
    generate(tmp_path / "pq", opts, workers=1)
    generate(tmp_path / "csv", opts, fmt="csv", workers=1)
    assert (tmp_path / "csv" / "sus_apc.csv").exists()
    validate_extracts(tmp_path / "pq", Config(), tmp_path / "q1", tmp_path / "ok1")
    validate_extracts(tmp_path / "csv", Config(), tmp_path / "q2", tmp_path / "ok2")
    for f in (tmp_path / "ok1").glob("*.parquet"):
        a, b = pq.read_table(f), pq.read_table(tmp_path / "ok2" / f.name)
        assert a.num_rows > 0
        assert a.equals(b), f.name


def test_parallel_and_serial_generation_agree(tmp_path):
    opts = SynthOptions(patients=2400, seed=4, chunk_size=1200)
    generate(tmp_path / "serial", opts, workers=1)
    generate(tmp_path / "parallel", opts, workers=2)
    for f in (tmp_path / "serial").iterdir():
        assert pq.read_table(f).equals(pq.read_table(tmp_path / "parallel" / f.name)), f.name


def _canonical(table) -> list[dict]:
    return table.sort_by([(c, "ascending") for c in table.column_names]).to_pylist()


def test_date_order_holds_the_same_rows_sorted_by_date(tmp_path):
    """``--order date``: every table that names people sorted by its first date column, the same
    rows as in person order; the same seed gives the same files, row for row; faulted dates
    (text) sort as text; and date order is refused for CSV, which it cannot write."""
    import pyarrow.compute as pc

    from riskstrat.synth import Order
    from riskstrat.synth.order import date_column

    opts = SynthOptions(patients=1200, seed=21, chunk_size=600, fault_rate=0.002)
    generate(tmp_path / "person", opts, tmp_path / "truth", workers=1)
    for name in ("date", "again"):
        generate(tmp_path / name, opts, workers=1, order=Order.DATE)
    assert date_column("gp_medications") == "issue_date" and date_column("ref_practices") is None
    assert sorted(p.name for p in (tmp_path / "date").iterdir()) == sorted(
        p.name for p in (tmp_path / "person").iterdir()
    )  # no spill or partial file left behind
    sorted_tables = 0
    for path in sorted((tmp_path / "person").iterdir()):
        person, by_date = pq.read_table(path), pq.read_table(tmp_path / "date" / path.name)
        assert by_date.schema.names == person.schema.names, path.name
        assert _canonical(by_date) == _canonical(person), path.name  # not a row lost, added or changed
        assert by_date.equals(pq.read_table(tmp_path / "again" / path.name)), path.name
        column = date_column(path.stem)
        if column is None:
            assert by_date.equals(person), path.name
            continue
        dates = pc.drop_null(by_date[column].combine_chunks())
        assert pc.all(pc.less_equal(dates[:-1], dates[1:])).as_py(), path.name
        if person.num_rows > 1000:  # simulated in person order, which is not date order
            first = pc.drop_null(person[column].combine_chunks())
            assert not pc.all(pc.less_equal(first[:-1], first[1:])).as_py(), path.name
            sorted_tables += 1
    assert sorted_tables >= 5
    assert json.loads((tmp_path / "truth" / "manifest.json").read_text()).get("order") is None
    with pytest.raises(ValueError, match="Parquet only"):
        generate(tmp_path / "csv", SynthOptions(patients=100, seed=1), fmt="csv", order="date", workers=1)
