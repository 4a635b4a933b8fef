"""Spec tests, one per contract rule: a tiny extract with one bad value, and where it goes."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.config import Config, TableMapping, ValidationSettings
from riskstrat.errors import ContractError
from riskstrat.ingest import validate as validate_module
from riskstrat.ingest.read import locate_tables
from riskstrat.ingest.validate import _repeated_hashes, validate_extracts
from riskstrat.privacy.pseudonym import pseudonym
from riskstrat.schema import TABLES, Severity
from riskstrat.stages.pseudonymise import pseudonymise as pseudonymise_stage
from riskstrat.workdir import WorkDir

TODAY = dt.date(2026, 11, 1)
A, B = "9990000018", "9990000026"  # valid synthetic NHS numbers (999 test range)

GOOD: dict[str, dict[str, str]] = {
    "gp_registrations": {
        "nhs_number": A,
        "practice_code": "Y90001",
        "registration_start": "2010-01-01",
        "registration_end": "",
        "date_of_birth": "1950-02-03",
        "sex": "1",
        "ethnic_category": "A",
        "lsoa_code": "E01900001",
    },
    "gp_events": {"nhs_number": A, "event_date": "2020-01-01", "snomed_code": "38341003", "value": ""},
    "gp_medications": {
        "nhs_number": A,
        "issue_date": "2020-01-01",
        "bnf_code": "0206020A0AAAAAA",
        "dmd_code": "",
        "quantity": "28",
        "actual_cost": "1.23",
    },
    "sus_apc": {
        "nhs_number": A,
        "spell_id": "S1",
        "episode_number": "1",
        "provider_code": "R9A",
        "admission_date": "2020-01-01",
        "discharge_date": "2020-01-03",
        "episode_start": "2020-01-01",
        "episode_end": "2020-01-03",
        "admission_method": "21",
        "patient_classification": "1",
        "treatment_function_code": "300",
        "primary_diagnosis": "J441",
        "secondary_diagnoses": "I10X;E119",
        "primary_procedure": "",
        "discharge_destination": "19",
        "cost": "2500",
        "gp_practice_code": "Y90001",
    },
    "sus_op": {
        "nhs_number": A,
        "appointment_date": "2020-01-01",
        "provider_code": "R9A",
        "treatment_function_code": "320",
        "first_attendance": "1",
        "attendance_status": "5",
        "referral_source": "03",
        "cost": "160",
    },
    "sus_ecds": {
        "nhs_number": A,
        "arrival_date": "2020-01-01",
        "provider_code": "R9A",
        "department_type": "01",
        "ambulance_arrival": "true",
        "chief_complaint": "29857009",
        "diagnosis": "",
        "admitted": "false",
        "cost": "250",
    },
    "deaths": {"nhs_number": B, "date_of_death": "2021-05-05", "underlying_cause": "I219"},
    "opt_outs": {"nhs_number": B, "opt_out_type": "ndoo", "recorded_date": "2019-01-01"},
    "care_register": {
        "practice_code": "Y90001",
        "nhs_number": B,
        "status": "case_managed",
        "recorded_date": "2019-01-01",
    },
    "ref_practices": {
        "practice_code": "Y90001",
        "practice_name": "P",
        "pcn_code": "U90001",
        "pcn_name": "N",
        "sub_icb_code": "99X",
    },
    "ref_lsoa": {"lsoa_code": "E01900001", "imd_decile": "3"},
    "ref_providers": {"provider_code": "R9A", "provider_name": "Synthetic Hospitals NHS Trust A"},
}


def write_extracts(root: Path, overrides: dict[str, list[dict[str, str]]] | None = None) -> Path:
    """One good row per table, plus rows given in ``overrides`` (table -> rows of changes)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, good in GOOD.items():
        rows = [good] + [{**good, **change} for change in (overrides or {}).get(name, [])]
        with (root / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(good))
            w.writeheader()
            w.writerows(rows)
    return root


def run(tmp_path: Path, overrides=None, config: Config | None = None):
    extracts = write_extracts(tmp_path / "x", overrides)
    return validate_extracts(extracts, config or Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)


def quarantine(tmp_path: Path, table: str) -> list[dict[str, str]]:
    path = tmp_path / "q" / f"{table}.csv"
    return list(csv.DictReader(path.open(encoding="utf-8"))) if path.exists() else []


RULES = [
    # table, change, column, rule
    ("gp_registrations", {"nhs_number": "9990000017"}, "nhs_number", "nhs_number_mod11"),
    ("gp_registrations", {"nhs_number": "999000001"}, "nhs_number", "nhs_number_mod11"),
    ("gp_registrations", {"nhs_number": ""}, "nhs_number", "required"),
    ("gp_registrations", {"practice_code": "G8200"}, "practice_code", "code_shape_ods_practice"),
    ("gp_registrations", {"date_of_birth": "1950-02-30"}, "date_of_birth", "type_date"),
    ("gp_registrations", {"date_of_birth": "03/02/1950"}, "date_of_birth", "type_date"),
    ("gp_registrations", {"date_of_birth": "1850-01-01"}, "date_of_birth", "date_plausible"),
    ("gp_registrations", {"registration_start": "2030-01-01"}, "registration_start", "date_plausible"),
    ("gp_registrations", {"sex": "M"}, "sex", "allowed_values"),
    ("gp_registrations", {"ethnic_category": "I"}, "ethnic_category", "allowed_values"),
    ("gp_registrations", {"lsoa_code": "E0190000"}, "lsoa_code", "code_shape_lsoa"),
    ("gp_registrations", {"registration_end": "2009-12-31"}, "registration_end", "registration_end_before_start"),
    ("gp_registrations", {"registration_start": "1949-01-01"}, "registration_start", "registration_before_birth"),
    ("gp_events", {"snomed_code": "38341O03"}, "snomed_code", "code_shape_snomed"),
    ("gp_events", {"value": "high"}, "value", "type_float"),
    ("gp_events", {"event_date": ""}, "event_date", "required"),
    ("gp_medications", {"bnf_code": "0206020A0AAAAA"}, "bnf_code", "code_shape_bnf"),
    ("gp_medications", {"quantity": "-1"}, "quantity", "value_range"),
    ("gp_medications", {"actual_cost": "1,23"}, "actual_cost", "type_float"),
    ("gp_medications", {"dmd_code": "abc"}, "dmd_code", "code_shape_dmd"),
    ("sus_apc", {"episode_number": "1.5"}, "episode_number", "type_integer"),
    ("sus_apc", {"episode_number": "0"}, "episode_number", "value_range"),
    ("sus_apc", {"admission_method": "2E"}, "admission_method", "allowed_values"),
    ("sus_apc", {"patient_classification": "6"}, "patient_classification", "allowed_values"),
    ("sus_apc", {"primary_diagnosis": "J44.1"}, "primary_diagnosis", "code_shape_icd10"),
    ("sus_apc", {"secondary_diagnoses": "I10X,E119"}, "secondary_diagnoses", "code_shape_icd10_list"),
    ("sus_apc", {"primary_procedure": "W37.1"}, "primary_procedure", "code_shape_opcs4"),
    ("sus_apc", {"treatment_function_code": "30"}, "treatment_function_code", "code_shape_treatment_function"),
    ("sus_apc", {"discharge_destination": "1"}, "discharge_destination", "code_shape_discharge_destination"),
    ("sus_apc", {"discharge_date": "2019-12-31"}, "discharge_date", "discharge_before_admission"),
    ("sus_apc", {"episode_end": "2019-12-31", "discharge_date": ""}, "episode_end", "episode_end_before_start"),
    ("sus_apc", {"episode_start": "2019-12-31"}, "episode_start", "episode_before_admission"),
    ("sus_apc", {"provider_code": "R9-A"}, "provider_code", "code_shape_ods_provider"),
    ("sus_op", {"first_attendance": "5"}, "first_attendance", "allowed_values"),
    ("sus_op", {"attendance_status": "1"}, "attendance_status", "allowed_values"),
    ("sus_ecds", {"department_type": "1"}, "department_type", "allowed_values"),
    ("sus_ecds", {"ambulance_arrival": "maybe"}, "ambulance_arrival", "type_boolean"),
    ("sus_ecds", {"admitted": ""}, "admitted", "required"),
    ("deaths", {"underlying_cause": "I21.9"}, "underlying_cause", "code_shape_icd10"),
    ("opt_outs", {"opt_out_type": "type2"}, "opt_out_type", "allowed_values"),
    ("ref_practices", {"pcn_code": "X12345"}, "pcn_code", "code_shape_pcn"),
    ("ref_practices", {"sub_icb_code": "99XX"}, "sub_icb_code", "code_shape_sub_icb"),
    ("ref_lsoa", {"imd_decile": "11"}, "imd_decile", "value_range"),
    # NaN and the infinities are numbers no range holds (CSV spellings, any case)
    ("sus_apc", {"cost": "nan"}, "cost", "value_range"),
    ("sus_apc", {"cost": "NaN"}, "cost", "value_range"),
    ("sus_op", {"cost": "inf"}, "cost", "value_range"),
    ("sus_ecds", {"cost": "-inf"}, "cost", "value_range"),
    ("gp_medications", {"actual_cost": "Infinity"}, "actual_cost", "value_range"),
    ("gp_medications", {"quantity": "-Infinity"}, "quantity", "value_range"),
    ("gp_events", {"value": "nan"}, "value", "type_float"),  # no range: not a number, as before
]


@pytest.mark.parametrize(
    ("table", "change", "column", "rule"), RULES, ids=[f"{r[0]}-{r[3]}-{i}" for i, r in enumerate(RULES)]
)
def test_each_rule_quarantines_the_bad_row_only(tmp_path, table, change, column, rule):
    report = run(tmp_path, {table: [change]})
    t = report.tables[table]
    assert t.rows_read == 2
    assert t.accepted == 1
    assert dict(t.quarantined) == {f"{column}:{rule}": 1}
    rows = quarantine(tmp_path, table)
    assert len(rows) == 1
    assert rows[0]["source_file"] == f"{table}.csv"
    assert rows[0]["row"] == "2"  # the bad row is the second data row
    assert (rows[0]["column"], rows[0]["rule"]) == (column, rule)
    for other, tr in report.tables.items():
        if other != table:
            assert tr.quarantined_rows == 0 and tr.accepted == 1
    assert report.reconciles


REQUIRED = [(t.name, c.name) for t in TABLES.values() for c in t.columns if c.required]


@pytest.mark.parametrize(("table", "column"), REQUIRED, ids=[f"{t}.{c}" for t, c in REQUIRED])
def test_every_required_value_is_required(tmp_path, table, column):
    report = run(tmp_path, {table: [{column: ""}]})
    assert dict(report.tables[table].quarantined) == {f"{column}:required": 1}
    assert report.tables[table].accepted == 1


def test_every_declared_rule_has_a_spec_test():
    tested = {(t, r) for t, _, _, r in RULES}
    tested_kinds = {r for _, _, _, r in RULES}
    missing = []
    for tbl in TABLES.values():
        for col in tbl.columns:
            for rule in col.all_rules:
                if rule.name == "required" or rule.severity is not Severity.ERROR:
                    continue  # required: test above; unknown codes and missing values: tests below
                if rule.name not in tested_kinds:
                    missing.append((tbl.name, col.name, rule.name))
        for check in tbl.checks:
            if (tbl.name, check.name) not in tested:
                missing.append((tbl.name, check.column, check.name))
    assert not missing, f"rules without a spec test: {missing}"


def test_typed_values_are_parsed(tmp_path):
    run(tmp_path)
    apc = pq.read_table(tmp_path / "ok" / "sus_apc.parquet")
    assert apc.schema.field("admission_date").type == pa.date32()
    assert apc.schema.field("episode_number").type == pa.int64()
    assert apc["cost"][0].as_py() == 2500.0
    ecds = pq.read_table(tmp_path / "ok" / "sus_ecds.parquet")
    assert ecds["ambulance_arrival"][0].as_py() is True and ecds["admitted"][0].as_py() is False
    reg = pq.read_table(tmp_path / "ok" / "gp_registrations.parquet")
    assert reg["registration_end"][0].as_py() is None
    assert reg["_row"][0].as_py() == 1


def test_exact_duplicates_are_quarantined_after_the_first_copy(tmp_path):
    report = run(tmp_path, {"gp_events": [{}, {}, {"value": "1.5"}]})
    t = report.tables["gp_events"]
    assert (t.rows_read, t.accepted, t.duplicates) == (4, 2, 2)
    rows = quarantine(tmp_path, "gp_events")
    assert sorted(r["row"] for r in rows) == ["2", "3"]
    assert {r["rule"] for r in rows} == {"duplicate_row"}


def test_repeated_hashes_are_found_in_every_partition_and_nothing_is_left_behind(tmp_path):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**64, 5_000, dtype=np.uint64)
    repeated = np.concatenate([values[:40], values[:3]])  # 40 values twice, 3 of them thrice
    hashes = pa.table({"h": pa.array(rng.permutation(np.concatenate([values, repeated])), pa.uint64())})
    spill = tmp_path / "spill"
    found = _repeated_hashes(hashes.to_reader(max_chunksize=700), hashes.num_rows, spill, at_once=600)
    assert sorted(found.to_pylist()) == sorted(values[:40].tolist())
    assert list(spill.iterdir()) == []  # 16 partition files (5,043 hashes, 600 at a time), all removed


def test_duplicates_are_found_when_the_hashes_are_sorted_in_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(validate_module, "HASHES_AT_ONCE", 3)
    report = run(tmp_path, {"gp_events": [{"value": str(i)} for i in range(9)] + [{"value": "4"}, {}]})
    t = report.tables["gp_events"]
    assert (t.rows_read, t.accepted, t.duplicates) == (12, 10, 2)
    assert sorted(int(r["row"]) for r in quarantine(tmp_path, "gp_events")) == [11, 12]


def test_unknown_codes_are_kept_and_counted(tmp_path):
    report = run(
        tmp_path,
        {
            "gp_events": [{"snomed_code": "38341004"}],  # check digit broken
            "gp_medications": [{"bnf_code": "1706020A0AAAAAA"}],
            "sus_apc": [
                {"spell_id": "S2", "primary_diagnosis": "E95X"},
                {"spell_id": "S3", "secondary_diagnoses": "I10X;H97"},
            ],
        },
    )
    assert report.tables["gp_events"].accepted == 2
    assert dict(report.tables["gp_events"].unknown_codes) == {"snomed_code": 1}
    assert dict(report.tables["gp_medications"].unknown_codes) == {"bnf_code": 1}
    assert dict(report.tables["sus_apc"].unknown_codes) == {"primary_diagnosis": 1, "secondary_diagnoses": 1}


def test_missing_optional_values_are_counted_not_quarantined(tmp_path):
    report = run(tmp_path, {"sus_ecds": [{"cost": "", "chief_complaint": ""}]})
    t = report.tables["sus_ecds"]
    assert t.quarantined_rows == 0
    assert t.missing_optional["cost"] == 1
    assert t.missing_optional["chief_complaint"] == 1
    assert t.missing_optional["diagnosis"] == 2


def test_a_line_with_the_wrong_number_of_fields_is_quarantined_with_its_text(tmp_path):
    extracts = write_extracts(tmp_path / "x", {"sus_op": [{"cost": "10"}, {"cost": "20"}]})
    path = extracts / "sus_op.csv"
    lines = path.read_text().splitlines()
    lines.insert(2, "9990000018,2020-01-01,R9A")
    path.write_text("\n".join(lines) + "\n")
    report = validate_extracts(extracts, Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)
    t = report.tables["sus_op"]
    assert (t.rows_read, t.accepted, t.quarantined_rows) == (4, 3, 1)
    rows = quarantine(tmp_path, "sus_op")
    assert rows[0]["rule"] == "csv_field_count" and rows[0]["row"] == "2"
    assert rows[0]["raw_line"] == "9990000018,2020-01-01,R9A"
    # rows after the bad line keep their own row numbers
    ok = pq.read_table(tmp_path / "ok" / "sus_op.parquet")
    assert ok["_row"].to_pylist() == [1, 3, 4]
    assert ok["cost"].to_pylist() == [160.0, 10.0, 20.0]


def test_batches_do_not_change_the_outcome(tmp_path):
    changes = [{"value": str(i)} for i in range(25)] + [{"snomed_code": "x"}] + [{"value": "3"}]
    small = validate_extracts(
        write_extracts(tmp_path / "x", {"gp_events": changes}),
        Config(validation=ValidationSettings(batch_rows=4)),
        tmp_path / "q1",
        tmp_path / "ok1",
        today=TODAY,
    )
    big = validate_extracts(tmp_path / "x", Config(), tmp_path / "q2", tmp_path / "ok2", today=TODAY)
    assert small.tables["gp_events"].to_dict() == big.tables["gp_events"].to_dict()
    assert small.tables["gp_events"].duplicates == 1
    assert pq.read_table(tmp_path / "ok1" / "gp_events.parquet").equals(
        pq.read_table(tmp_path / "ok2" / "gp_events.parquet")
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda x: (x / "sus_apc.csv").unlink(), "required table sus_apc is missing"),
        (
            lambda x: _drop_column(x / "gp_events.csv", "snomed_code"),
            "gp_events.csv: required column snomed_code is missing",
        ),
        (
            lambda x: (x / "gp_events.csv").write_bytes(b"nhs_number,event_date,snomed_code\n\xff\xfe,1,2\n"),
            "gp_events.csv: not UTF-8",
        ),
        (
            lambda x: ((x / "sus_op.csv").unlink(), (x / "sus_op.parquet").write_bytes(b"not parquet")),
            "sus_op.parquet: not a readable Parquet file",
        ),
        (
            lambda x: (
                (x / "sus_op.csv").unlink(),
                pq.write_table(
                    pa.table(
                        {
                            "nhs_number": [A],
                            "appointment_date": [1.5],
                            "provider_code": ["R9A"],
                            "treatment_function_code": ["320"],
                            "first_attendance": ["1"],
                            "attendance_status": ["5"],
                        }
                    ),
                    x / "sus_op.parquet",
                ),
            ),
            "sus_op.parquet: column appointment_date has type double; the contract says date",
        ),
        (lambda x: pq.write_table(pa.table({"a": [1]}), x / "gp_events.parquet"), "table gp_events is present twice"),
    ],
)
def test_whole_file_problems_stop_with_one_clear_message(tmp_path, damage, message):
    extracts = write_extracts(tmp_path / "x")
    damage(extracts)
    with pytest.raises(ContractError) as exc:
        validate_extracts(extracts, Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_optional_tables_may_be_absent(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    for name in ("deaths", "opt_outs", "ref_lsoa"):
        (extracts / f"{name}.csv").unlink()
    report = validate_extracts(extracts, Config(), tmp_path / "q", None, today=TODAY)
    assert report.absent_optional == ["deaths", "opt_outs", "ref_lsoa"]
    assert not (tmp_path / "q" / ".accepted-tmp").exists()


def _drop_column(path: Path, column: str) -> None:
    rows = list(csv.DictReader(path.open()))
    fields = [f for f in rows[0] if f != column]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


# --------------------------------------------------------------------------- whole files, all at once


def whole_file_error(tmp_path: Path, extracts: Path, config: Config | None = None) -> str:
    with pytest.raises(ContractError) as exc:
        validate_extracts(extracts, config or Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)
    message = str(exc.value)
    assert "\n" not in message  # the CLI prints it as one line
    return message


def write_parquet(extracts: Path, table: str, n: int, typed: dict[str, pa.Array]) -> None:
    """``table`` as Parquet in place of its CSV: ``n`` copies of the good row (text), ``typed`` columns replaced."""
    (extracts / f"{table}.csv").unlink()
    columns = {k: pa.array([v] * n, pa.string()) for k, v in GOOD[table].items()}
    pq.write_table(pa.table({**columns, **typed}), extracts / f"{table}.parquet")


def test_an_empty_directory_names_every_missing_required_table_in_one_message(tmp_path):
    (tmp_path / "x").mkdir()
    message = whole_file_error(tmp_path, tmp_path / "x")
    required = [name for name, t in TABLES.items() if t.required]
    assert len(required) == 7
    assert message.startswith(f"{tmp_path / 'x'} has 7 problems: (1) required table gp_registrations is missing")
    for i, name in enumerate(required, start=1):
        assert f"({i}) required table {name} is missing (expected {name}.parquet or {name}.csv)" in message
    for name in ("deaths", "opt_outs", "ref_lsoa"):  # optional tables may be absent
        assert name not in message


def test_missing_columns_of_two_files_are_named_together_with_the_columns_found(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    _drop_column(extracts / "gp_events.csv", "snomed_code")
    _drop_column(extracts / "gp_events.csv", "event_date")
    _drop_column(extracts / "sus_op.csv", "attendance_status")
    message = whole_file_error(tmp_path, extracts)
    assert message.startswith(f"{extracts} has 2 problems: (1) gp_events.csv: ")
    assert (
        "(1) gp_events.csv: required columns event_date, snomed_code are missing (columns found: nhs_number, value); "
        "map local column names with --config (tables.gp_events.columns); (2) sus_op.csv: "
    ) in message
    assert message.endswith(
        "(2) sus_op.csv: required column attendance_status is missing (columns found: nhs_number, appointment_date, "
        "provider_code, treatment_function_code, first_attendance, referral_source, cost); "
        "map local column names with --config (tables.sus_op.columns)"
    )


def test_a_long_header_is_shown_truncated(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    header = ["nhs_number", "event_date", "value"] + [f"extra_{i:02d}" for i in range(20)]
    (extracts / "gp_events.csv").write_text(",".join(header) + "\n", encoding="utf-8")
    message = whole_file_error(tmp_path, extracts)
    assert "required column snomed_code is missing (columns found: nhs_number, event_date, value, extra_00," in message
    assert "extra_08, ... and 11 more); map local column names with --config (tables.gp_events.columns)" in message
    assert "extra_09" not in message


def test_a_mapped_missing_column_gets_the_same_hint(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    cfg = Config(tables={"sus_op": TableMapping(columns={"appointment_date": "Appt_Date"})})
    message = whole_file_error(tmp_path, extracts, cfg)
    assert "sus_op.csv: required column Appt_Date (mapped to appointment_date) is missing (columns found: " in message
    assert "map local column names with --config (tables.sus_op.columns)" in message


def test_zero_byte_files_are_named_as_empty_and_every_problem_is_listed(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    (extracts / "gp_events.csv").write_bytes(b"")
    (extracts / "sus_op.csv").unlink()
    (extracts / "sus_op.parquet").write_bytes(b"")
    (extracts / "sus_apc.csv").unlink()
    write_parquet(extracts, "ref_practices", 1, {"practice_code": pa.array([90001], pa.int64())})
    message = whole_file_error(tmp_path, extracts)
    assert message == (
        f"{extracts} has 4 problems: (1) gp_events.csv: empty file (0 bytes); "
        "(2) required table sus_apc is missing (expected sus_apc.parquet or sus_apc.csv); "
        "(3) sus_op.parquet: empty file (0 bytes); "
        "(4) ref_practices.parquet: column practice_code has type int64; the contract says string"
    )


def test_a_header_without_rows_is_not_a_whole_file_problem(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    (extracts / "gp_events.csv").write_text(",".join(GOOD["gp_events"]) + "\n", encoding="utf-8")
    found = locate_tables(extracts, Config())
    assert found["gp_events"].columns == {c: c for c in GOOD["gp_events"]}
    assert sorted(found) == sorted(GOOD)


@pytest.mark.parametrize(("delimiter", "named"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_another_delimiter_is_named_instead_of_missing_columns(tmp_path, delimiter, named):
    extracts = write_extracts(tmp_path / "x")
    good = GOOD["sus_apc"]
    lines = [delimiter.join(good), delimiter.join(good.values())]
    (extracts / "sus_apc.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = whole_file_error(tmp_path, extracts)
    assert message == (
        f"{extracts}: sus_apc.csv: the header looks {named}-separated; the data contract says comma-separated CSV"
    )


@pytest.mark.parametrize(
    ("char", "described"), [("\x00", "control character U+0000"), ("\x1f", "control character U+001F")]
)
def test_a_control_character_in_a_header_name_is_reported(tmp_path, char, described):
    extracts = write_extracts(tmp_path / "x")
    path = extracts / "gp_events.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace(",value", f",val{char}ue")  # an optional column: was silently empty
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = whole_file_error(tmp_path, extracts)
    shown = char.encode("unicode_escape").decode("ascii")
    assert message == f"{extracts}: gp_events.csv: header column 4 (val{shown}ue) contains a {described}"


def test_nan_and_infinite_costs_in_csv_are_quarantined_with_a_clear_detail(tmp_path):
    spellings = ["nan", "NaN", "inf", "-inf", "Infinity"]
    report = run(tmp_path, {"sus_apc": [{"spell_id": f"S{i}", "cost": v} for i, v in enumerate(spellings, 2)]})
    t = report.tables["sus_apc"]
    assert (t.rows_read, t.accepted, t.quarantined_rows) == (6, 1, 5)
    assert dict(t.quarantined) == {"cost:value_range": 5}
    assert t.reconciles
    rows = quarantine(tmp_path, "sus_apc")
    assert [r["cost"] for r in rows] == spellings  # the original text, as read
    assert {r["detail"] for r in rows} == {"cost is NaN or infinite, not a number from 0 to 1e+07"}


def test_nan_and_infinite_costs_in_parquet_are_quarantined(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    costs = pa.array([2500.0, float("nan"), float("inf"), float("-inf"), None], pa.float64())
    write_parquet(extracts, "sus_apc", 5, {"spell_id": pa.array([f"S{i}" for i in range(5)]), "cost": costs})
    report = validate_extracts(extracts, Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)
    t = report.tables["sus_apc"]
    assert (t.rows_read, t.accepted, t.quarantined_rows) == (5, 2, 3)
    assert dict(t.quarantined) == {"cost:value_range": 3}
    assert t.missing_optional["cost"] == 1
    assert report.reconciles
    assert sorted(r["row"] for r in quarantine(tmp_path, "sus_apc")) == ["2", "3", "4"]
    ok = pq.read_table(tmp_path / "ok" / "sus_apc.parquet")
    assert ok["cost"].to_pylist() == [2500.0, None]


VALID_INT, INVALID_INT = int(A), 9990000017  # 9990000017: A with a broken check digit


def test_integer_nhs_numbers_in_parquet_are_read_as_ten_digit_text(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    numbers = pa.array([VALID_INT, INVALID_INT], pa.int64())
    write_parquet(extracts, "gp_registrations", 2, {"nhs_number": numbers})
    report = validate_extracts(extracts, Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)
    t = report.tables["gp_registrations"]
    assert (t.rows_read, t.accepted) == (2, 1)
    assert dict(t.quarantined) == {"nhs_number:nhs_number_mod11": 1}
    ok = pq.read_table(tmp_path / "ok" / "gp_registrations.parquet")
    assert ok.schema.field("nhs_number").type == pa.string()
    assert ok["nhs_number"].to_pylist() == [A]
    rows = quarantine(tmp_path, "gp_registrations")
    assert [(r["row"], r["nhs_number"]) for r in rows] == [("2", "9990000017")]


def test_int32_nhs_numbers_are_zero_padded_to_ten_digits(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    write_parquet(extracts, "deaths", 1, {"nhs_number": pa.array([12345], pa.int32())})
    report = validate_extracts(extracts, Config(), tmp_path / "q", tmp_path / "ok", today=TODAY)
    assert dict(report.tables["deaths"].quarantined) == {"nhs_number:nhs_number_mod11": 1}
    assert [r["nhs_number"] for r in quarantine(tmp_path, "deaths")] == ["0000012345"]


def test_other_string_columns_keep_the_parquet_type_check(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    write_parquet(
        extracts,
        "sus_op",
        1,
        {"nhs_number": pa.array([VALID_INT], pa.int64()), "referral_source": pa.array([3], pa.int64())},
    )
    message = whole_file_error(tmp_path, extracts)
    assert message == f"{extracts}: sus_op.parquet: column referral_source has type int64; the contract says string"


def test_integer_nhs_numbers_are_pseudonymised_like_text_ones(tmp_path):
    key, vault_key = "validate-test-region-key-0123-4567-89abcdef", "validate-test-vault-key-0123-4567-89abcdefg"
    extracts = write_extracts(tmp_path / "x")
    write_parquet(extracts, "gp_registrations", 2, {"nhs_number": pa.array([VALID_INT, INVALID_INT], pa.int64())})
    report = pseudonymise_stage(extracts, tmp_path / "W", Config(), key, vault_key, today=TODAY)
    assert report.tables["gp_registrations"]["read"] == 2
    assert report.tables["gp_registrations"]["quarantined"] == 1
    reg = pq.read_table(WorkDir(tmp_path / "W").table("gp_registrations"))
    assert reg["pseudonym"].to_pylist() == [pseudonym(A, key)]
