"""The pseudonymise stage end to end: zones kept apart, opt-outs applied, every row counted."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from riskstrat.config import Config, load_config
from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog, verify_chain
from riskstrat.privacy.pseudonym import pseudonym, pseudonymise
from riskstrat.privacy.scan import scan_directory, scan_text
from riskstrat.privacy.vault import reidentify_practice
from riskstrat.schema import PERSON_KEY
from riskstrat.stages.features import build_features
from riskstrat.stages.pseudonymise import pseudonymise as run_stage
from riskstrat.workdir import WorkDir

KEY = "test-region-key-0123-4567-89abcdefghijklmnop"
OTHER_KEY = "other-region-key-0123-4567-89abcdefghijklmn"
VAULT_KEY = "test-vault-key-0123-4567-89abcdefghijklmnop"
PATIENT_TABLES = ("gp_registrations", "gp_events", "gp_medications", "sus_apc", "sus_op", "sus_ecds", "deaths")


@pytest.fixture(scope="module")
def faulty_run(faulty_population, tmp_path_factory):
    _, faulty, _truth = faulty_population
    work = tmp_path_factory.mktemp("w") / "W"
    env = {**os.environ, "RISKSTRAT_PSEUDONYM_KEY": KEY, "RISKSTRAT_VAULT_KEY": VAULT_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "riskstrat", "pseudonymise", "--extracts", str(faulty), "--workdir", str(work)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return faulty, work, result.stdout + result.stderr


def test_no_nhs_number_leaves_the_identifiable_zone(faulty_run):
    extracts, work, output = faulty_run
    assert scan_directory(extracts), "the scanner must see the NHS numbers in the extracts"
    for place in ("pseudonymised", "reports"):
        assert scan_directory(work / place) == [], place
    assert scan_text(output) == 0  # the command's own output (its log)
    # nothing but the identifiable zone, pseudonymised zone and reports
    assert {p.name for p in work.iterdir()} == {"identifiable", "pseudonymised", "reports", ".lock"}
    assert not (work / "identifiable" / "staging").exists()  # staged identifiable copies are gone
    for f in (work / "pseudonymised").rglob("*.parquet"):
        names = pq.ParquetFile(f).schema_arrow.names
        assert "nhs_number" not in names and "_row" not in names and "date_of_birth" not in names


def test_every_row_is_accounted_for(faulty_run, faulty_population):
    _, work, output = faulty_run
    report = json.loads((work / "reports" / "pseudonymise.json").read_text())
    assert report["reconciles"] and "reconciled" in output
    injected = json.loads((faulty_population[2] / "faults.json").read_text())["quarantined"]
    for name in PATIENT_TABLES:
        t = report["tables"][name]
        assert t["read"] == t["quarantined"] + t["opted_out"] + t["consumed"] + t["written"], name
        assert t["quarantined"] == sum(injected.get(name, {}).values()), name
        assert pq.ParquetFile(WorkDir(work).table(name)).metadata.num_rows == t["written"]
    assert report["tables"]["gp_medications"]["opted_out"] > 0
    assert report["opted_out_people"]["removed_before_pseudonymisation"] > 100
    assert report["rows_per_second"] > 0


def test_the_care_register_is_kept_sealed_in_the_identifiable_zone_and_never_pseudonymised(faulty_run):
    extracts, work, _ = faulty_run
    wd = WorkDir(work)
    report = json.loads(wd.pseudonymise_report().read_text())["tables"]["care_register"]
    source = pq.read_table(extracts / "care_register.parquet")
    assert report["read"] == source.num_rows > 10 and report["written"] == 0
    assert report["consumed"] == report["read"] - report["quarantined"]  # every accepted row, sealed
    assert stat.S_IMODE(wd.care_register.stat().st_mode) == 0o600
    assert not wd.table("care_register").exists()
    sample = source["nhs_number"].to_pylist()[0].encode()
    assert sample not in wd.care_register.read_bytes()  # encrypted at rest


def test_opted_out_people_are_nowhere(faulty_run):
    extracts, work, _ = faulty_run
    objectors = pq.read_table(extracts / "opt_outs.parquet")["nhs_number"].unique().to_pylist()
    removed = pa.array(pseudonymise(objectors, KEY))
    for name in PATIENT_TABLES:
        out = pq.read_table(WorkDir(work).table(name), columns=["pseudonym"])["pseudonym"]
        assert not pc.any(pc.is_in(out, value_set=removed)).as_py(), name
    everyone = pq.read_table(extracts / "gp_registrations.parquet")["nhs_number"].unique().to_pylist()
    kept = set(pq.read_table(WorkDir(work).table("gp_registrations"))["pseudonym"].to_pylist())
    assert len(kept) > 0.85 * len(everyone)


def test_the_vault_reidentifies_one_practice_and_nobody_else(faulty_run):
    extracts, work, _ = faulty_run
    d = dt.date(2026, 10, 1)
    con = duckdb.connect()
    practice = con.execute(f"SELECT min(practice_code) FROM '{extracts}/ref_practices.parquet'").fetchone()[0]
    regs = WorkDir(work).table("gp_registrations")
    expected = {
        r[0]
        for r in con.execute(
            f"""SELECT DISTINCT pseudonym FROM '{regs}'
                WHERE practice_code = '{practice}' AND registration_start <= DATE '{d}'
                  AND (registration_end IS NULL OR registration_end >= DATE '{d}')"""
        ).fetchall()
    }
    elsewhere = {r[0] for r in con.execute(f"SELECT DISTINCT pseudonym FROM '{regs}'").fetchall()} - expected
    audit = AuditLog(work / "identifiable" / "audit.jsonl")
    got = reidentify_practice(work / "identifiable" / "vault.bin", practice, VAULT_KEY, audit, as_of=d)
    assert set(got["pseudonym"].to_pylist()) == expected and len(expected) > 100
    assert not set(got["pseudonym"].to_pylist()) & elsewhere
    pairs = zip(got["nhs_number"].to_pylist(), got["pseudonym"].to_pylist(), strict=True)
    assert all(pseudonym(n, KEY) == p for n, p in pairs)
    raw = con.execute(
        f"""SELECT DISTINCT nhs_number FROM '{extracts}/gp_registrations.parquet'
            WHERE practice_code = '{practice}' AND TRY_CAST(registration_start AS DATE) <= DATE '{d}'"""
    ).fetchall()
    assert set(got["nhs_number"].to_pylist()) <= {r[0] for r in raw}
    assert stat.S_IMODE(os.stat(work / "identifiable" / "vault.bin").st_mode) == 0o600
    last = audit.records()[-1]
    assert (last["event"], last["practice_code"], last["patients"]) == ("reidentification", practice, len(expected))


def test_the_stage_run_is_audited(faulty_run):
    extracts, work, _ = faulty_run
    log = work / "identifiable" / "audit.jsonl"
    assert verify_chain(log)
    stage = next(r for r in AuditLog(log).records() if r["event"] == "stage")
    assert stage["outcome"] == "succeeded" and "pseudonymise" in stage["command"]
    assert set(stage["inputs"]) == {p.name for p in extracts.iterdir()}
    assert all(len(v) == 64 for v in stage["inputs"].values())
    assert stage["counts"]["sus_apc"]["read"] > 0
    text = log.read_text()
    assert scan_text(text) == 0 and KEY not in text and VAULT_KEY not in text


def test_monthly_runs_link_and_regions_never_mix(clean_population, tmp_path):
    extracts, _ = clean_population
    run_stage(extracts, tmp_path / "m1", Config(), KEY, VAULT_KEY)
    run_stage(extracts, tmp_path / "m2", Config(), KEY, VAULT_KEY)
    for name in PATIENT_TABLES:
        a = pq.read_table(WorkDir(tmp_path / "m1").table(name))
        b = pq.read_table(WorkDir(tmp_path / "m2").table(name))
        assert a.equals(b), name
    run_stage(extracts, tmp_path / "other", Config(), OTHER_KEY, VAULT_KEY)
    mine = set(pq.read_table(WorkDir(tmp_path / "m1").table("gp_registrations"))["pseudonym"].to_pylist())
    theirs = set(pq.read_table(WorkDir(tmp_path / "other").table("gp_registrations"))["pseudonym"].to_pylist())
    assert mine and theirs and not mine & theirs
    with pytest.raises(RiskstratError, match="another region key"):
        run_stage(extracts, tmp_path / "m1", Config(), OTHER_KEY, VAULT_KEY)


def test_batches_of_any_size_give_the_same_table_in_whole_row_groups(clean_population, tmp_path, monkeypatch):
    from riskstrat.stages import pseudonymise as stage

    extracts, _ = clean_population
    run_stage(extracts, tmp_path / "usual", Config(), KEY, VAULT_KEY)
    # tiny batches and row groups: batches end where the staged file's row groups do, never in step
    monkeypatch.setattr(stage, "_BATCH_ROWS", 1000)
    monkeypatch.setattr(stage, "ROW_GROUP_ROWS", 300)
    run_stage(extracts, tmp_path / "small", Config(), KEY, VAULT_KEY)
    for name in PATIENT_TABLES:
        usual, small = WorkDir(tmp_path / "usual").table(name), WorkDir(tmp_path / "small").table(name)
        assert pq.read_table(usual).equals(pq.read_table(small)), name
        meta = pq.read_metadata(small)
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        assert sum(sizes) == meta.num_rows and all(n == 300 for n in sizes[:-1]) and 0 < sizes[-1] <= 300, name


def test_a_narrower_policy_flags_instead_of_removing(clean_population, tmp_path):
    extracts, _ = clean_population
    cfg = tmp_path / "policy.yaml"
    cfg.write_text("opt_out_policy:\n  type1: [commissioner]\n  ndoo: [training, commissioner]\n")
    report = run_stage(extracts, tmp_path / "W", load_config(cfg), KEY, VAULT_KEY)
    assert report.opted_out["removed_before_pseudonymisation"] == 0
    flags = pq.read_table(WorkDir(tmp_path / "W").table("opt_out_uses")).to_pylist()
    assert len(flags) == report.opted_out["people_with_objections"] > 0
    oo = pq.read_table(extracts / "opt_outs.parquet").to_pylist()
    kinds: dict[str, set] = {}
    for r in oo:
        kinds.setdefault(pseudonym(r["nhs_number"], KEY), set()).add(r["opt_out_type"])
    for f in flags:
        k = kinds[f["pseudonym"]]
        assert f["commissioner"] is True and f["direct_care"] is False and f["scoring"] is False
        assert f["training"] is ("ndoo" in k)
    # all their rows are kept, and they stay re-identifiable for direct care
    assert all(t["opted_out"] == 0 for t in report.tables.values())


def test_extracts_pseudonymised_at_source_link_with_ours(clean_population, tmp_path):
    extracts, _ = clean_population
    ours = run_stage(extracts, tmp_path / "ours", Config(), KEY, VAULT_KEY)
    source = tmp_path / "source"
    shutil.copytree(extracts, source)
    for name in ("sus_apc", "sus_op", "sus_ecds", "opt_outs"):  # a provider pseudonymised these
        t = pq.read_table(source / f"{name}.parquet")
        p = pa.array(pseudonymise(t["nhs_number"].to_pylist(), KEY))
        t = t.drop_columns(["nhs_number"]).add_column(0, "pseudonym", p)
        pq.write_table(t, source / f"{name}.parquet")
    theirs = run_stage(source, tmp_path / "theirs", Config(), KEY, VAULT_KEY)
    assert theirs.tables["sus_apc"]["identifier"] == "pseudonym"
    for name in PATIENT_TABLES:
        a = pq.read_table(WorkDir(tmp_path / "ours").table(name))
        b = pq.read_table(WorkDir(tmp_path / "theirs").table(name))
        # every table we pseudonymised carries the person key; a provider's tables cannot
        assert PERSON_KEY in a.column_names
        assert (PERSON_KEY in b.column_names) is (name not in ("sus_apc", "sus_op", "sus_ecds")), name
        a = a.select([c for c in b.column_names if c != PERSON_KEY])
        b = b.select(a.column_names)
        assert a.cast(b.schema).equals(b), name  # same rows and values (nullability aside)
    assert ours.opted_out == theirs.opted_out
    # features by person key (ours) and by pseudonym (theirs: not every table has the key) agree
    as_of = dt.date(2026, 6, 1)
    keyed = pq.read_table(build_features(tmp_path / "ours", as_of).path)
    by_pseudonym = pq.read_table(build_features(tmp_path / "theirs", as_of).path)
    assert keyed.num_rows > 1000 and keyed.equals(by_pseudonym)


def test_registrations_pseudonymised_at_source_mean_no_reidentification(clean_population, tmp_path):
    extracts, _ = clean_population
    source = tmp_path / "source"
    shutil.copytree(extracts, source)
    for name in (
        "gp_registrations",
        "gp_events",
        "gp_medications",
        "sus_apc",
        "sus_op",
        "sus_ecds",
        "deaths",
        "opt_outs",
    ):
        t = pq.read_table(source / f"{name}.parquet")
        p = pa.array(pseudonymise(t["nhs_number"].to_pylist(), KEY))
        pq.write_table(t.drop_columns(["nhs_number"]).add_column(0, "pseudonym", p), source / f"{name}.parquet")
    env = {**os.environ, "RISKSTRAT_PSEUDONYM_KEY": KEY}
    env.pop("RISKSTRAT_VAULT_KEY", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskstrat",
            "pseudonymise",
            "--extracts",
            str(source),
            "--workdir",
            str(tmp_path / "W"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "re-identification not possible: gp_registrations was pseudonymised at source" in " ".join(
        result.stdout.split()
    )
    assert not (tmp_path / "W" / "identifiable" / "vault.bin").exists()


def test_missing_keys_stop_with_one_line(clean_population, tmp_path):
    extracts, _ = clean_population
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTRAT_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskstrat",
            "pseudonymise",
            "--extracts",
            str(extracts),
            "--workdir",
            str(tmp_path / "W"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 5 and "Traceback" not in result.stderr
    message = "no key: set RISKSTRAT_PSEUDONYM_KEY (or RISKSTRAT_PSEUDONYM_KEY_FILE to a file holding it)"
    assert result.stderr.strip() == f"riskstrat: error: {message}"
    env["RISKSTRAT_PSEUDONYM_KEY"] = KEY
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskstrat",
            "pseudonymise",
            "--extracts",
            str(extracts),
            "--workdir",
            str(tmp_path / "W"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 5 and "RISKSTRAT_VAULT_KEY" in result.stderr and "Traceback" not in result.stderr
    records = AuditLog(tmp_path / "W" / "identifiable" / "audit.jsonl").records()
    assert records[-1]["outcome"] == "failed"


def test_extracts_in_date_order_give_the_same_tables(clean_population, tmp_path, monkeypatch):
    """Real deliveries come in date order; the synthetic extracts hold each person's rows
    together. The linked tables hold the same rows whichever the order."""
    from riskstrat.stages import pseudonymise as stage

    from .conftest import benchmark

    extracts, _ = clean_population
    by_date = tmp_path / "by_date"
    benchmark("monthly_batch_benchmark").date_ordered(extracts, by_date)  # as the benchmark's --order date
    # batches of 1,000 rows: a few people's rows in person order, most of the population's in date order
    monkeypatch.setattr(stage, "_BATCH_ROWS", 1000)
    run_stage(extracts, tmp_path / "person", Config(), KEY, VAULT_KEY)
    run_stage(by_date, tmp_path / "date", Config(), KEY, VAULT_KEY)
    for name in PATIENT_TABLES:
        person, date = WorkDir(tmp_path / "person").table(name), WorkDir(tmp_path / "date").table(name)
        a, b = pq.read_table(person), pq.read_table(date)
        order = [(c, "ascending") for c in a.column_names]
        assert a.num_rows > 0 and a.sort_by(order).equals(b.sort_by(order)), name
        assert not a.equals(b) or name == "deaths", name  # the rows do come in another order
