"""Validation rules are objects declared with the column: every one can be broken by fault
injection, is applied by validation and shows in the report and the generated document, and
a new rule needs no edit outside its declaration."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from rich.console import Console

from riskstrat.cli import print_report
from riskstrat.ingest.read import Batch
from riskstrat.ingest.validate import validate_batch
from riskstrat.schema import (
    ARROW_TYPES,
    PSEUDONYM,
    TABLES,
    ColumnValues,
    Rule,
    RuleKey,
    Severity,
    Table,
    contract_markdown,
    counted_rules,
)
from riskstrat.synth.faults import FAULT_PLAN, Fault, inject_faults

from .test_validate import GOOD, TODAY, quarantine, run

# valid values for the columns GOOD leaves empty, so that every rule has a value to break
FILLED = {
    ("gp_registrations", "registration_end"): "2015-01-01",
    ("gp_events", "value"): "1.5",
    ("gp_medications", "dmd_code"): "10000000",
    ("sus_apc", "primary_procedure"): "W371",
    ("sus_ecds", "diagnosis"): "29857009",
}


def _declarations() -> list[Table]:
    """Every table as validation may meet it: as declared, and pseudonymised at source."""
    return [*TABLES.values(), *(t.pseudonymised() for t in TABLES.values() if t.identifiable)]


def _good(tbl: Table) -> dict[str, str]:
    good = {PSEUDONYM: "ab" * 32, **GOOD[tbl.name]}
    return {c.name: FILLED.get((tbl.name, c.name), good[c.name]) for c in tbl.columns}


def test_filled_values_are_valid():
    for tbl in _declarations():
        batch = Batch(pa.table({k: [v] for k, v in _good(tbl).items()}), np.array([1]))
        result = validate_batch(tbl, batch, "f.csv", TODAY)
        assert result.accepted.num_rows == 1, tbl.name
        assert not any(result.counted["unknown_codes"].values()), tbl.name


@pytest.mark.parametrize("tbl", _declarations(), ids=lambda t: f"{t.name}{'' if t.identifiable else '-pseudonymised'}")
def test_every_rule_of_every_column_is_broken_by_its_fault_and_reported_against_it(tbl):
    """One row per (column, rule), the good value broken by the rule's own fault injector:
    validation reports each row against exactly that rule (error) or counts it (warning,
    note) under the rule's report key."""
    good = _good(tbl)
    rows, expected = [good], []
    for col in tbl.columns:
        for rule in col.all_rules:
            value = np.array([good[col.name]], dtype=object)
            assert rule.breakable(value).all(), (tbl.name, col.name, rule.name)
            broken = rule.broken(value)[0]
            assert broken != good[col.name], (tbl.name, col.name, rule.name)
            rows.append({**good, col.name: None if broken is None else str(broken)})
            expected.append((col.name, rule))
    data = pa.table({c.name: pa.array([r[c.name] for r in rows], pa.string()) for c in tbl.columns})
    result = validate_batch(tbl, Batch(data, np.arange(1, len(rows) + 1)), "f.csv", TODAY)
    reported = {
        row: (column, rule)
        for row, column, rule in zip(
            result.quarantine["row"].to_pylist(),
            result.quarantine["column"].to_pylist(),
            result.quarantine["rule"].to_pylist(),
            strict=True,
        )
    }
    accepted = set(result.accepted["_row"].to_pylist())
    counted = {key: {c: n for c, n in counts.items() if n} for key, counts in result.counted.items()}
    for i, (column, rule) in enumerate(expected, start=2):
        if rule.severity is Severity.ERROR:
            assert reported.get(i) == (column, rule.name), (tbl.name, column, rule.name, reported.get(i))
        else:
            assert i in accepted, (tbl.name, column, rule.name)
            assert counted[rule.counted_as].get(column, 0) >= 1, (tbl.name, column, rule.name)
    errors = sum(1 for _, r in expected if r.severity is Severity.ERROR)
    assert result.quarantine.num_rows == errors and 1 in accepted


def test_every_rule_is_documented_with_its_severity_and_on_its_columns():
    doc = contract_markdown()
    for tbl in TABLES.values():
        section = doc.split(f"## {tbl.name} (", 1)[1].split("\n## ", 1)[0]
        for col in tbl.columns:
            row = next(line for line in section.splitlines() if line.startswith(f"| {col.name} | {col.type} |"))
            for rule in col.all_rules:
                assert rule.label in row, (tbl.name, col.name, rule.name)
                assert f"| `{rule.name}` | {rule.severity} | {rule.description} |" in doc, rule.name
        for check in tbl.checks:
            assert f"| `{check.name}` | error |" in doc, check.name


def test_every_planned_fault_names_a_declared_rule():
    for name, plan in FAULT_PLAN.items():
        for fault in plan:
            if fault.column == "*":  # a repeated row, or a row check broken across columns
                assert fault.rule == "duplicate_row" or TABLES[name].check(fault.rule)
                continue
            rule = TABLES[name].column(fault.column).rule(fault.rule)  # KeyError if not declared
            assert fault.key == f"{fault.column}:{rule.name}"


def test_rule_keys_are_their_text_and_keep_their_parts():
    key = RuleKey("nhs_number", "nhs_number_mod11")
    assert key == "nhs_number:nhs_number_mod11" and hash(key) == hash("nhs_number:nhs_number_mod11")
    assert (key.column, key.rule) == ("nhs_number", "nhs_number_mod11")
    odd = RuleKey("a:b", "c")  # a colon in a column name no longer confuses the report
    assert (odd.column, odd.rule) == ("a:b", "c")


# --------------------------------------------------------------------------- a new rule, declared in a test


@dataclass(frozen=True)
class NotSeven(Rule):
    """A rule declared here only: the sex code 7 is not allowed (it is not in the contract
    either, so the test shows the new rule wins because it runs before ``allowed_values``)."""

    name = "not_seven"
    description = "the value is not 7 (a rule declared in a test)"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return np.asarray(pc.fill_null(pc.not_equal(values.typed, "7"), True).to_numpy(zero_copy_only=False))

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is 7"

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), "7", dtype=object)


@dataclass(frozen=True)
class LongSpell(Rule):
    """A warning declared here only: spell ids longer than 3 characters are kept and counted."""

    name = "long_spell_id"
    description = "a spell id of at most 3 characters (a warning declared in a test)"
    severity = Severity.WARNING
    counted_as = "long_spell_ids"
    reason = "longer than 3 characters"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return np.asarray(
            pc.fill_null(pc.less_equal(pc.utf8_length(values.typed), 3), True).to_numpy(zero_copy_only=False)
        )

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.array([f"{v}LONG" for v in values], dtype=object)


@pytest.fixture
def new_rules(monkeypatch):
    """NotSeven before allowed_values on gp_registrations.sex, LongSpell on sus_apc.spell_id:
    declared on the columns and nowhere else."""

    def declare(table: str, column: str, rule: Rule, first: bool) -> None:
        tbl = TABLES[table]
        cols = tuple(
            replace(c, rules=(rule, *c.rules) if first else (*c.rules, rule)) if c.name == column else c
            for c in tbl.columns
        )
        monkeypatch.setitem(TABLES, table, replace(tbl, columns=cols))

    declare("gp_registrations", "sex", NotSeven(), first=True)
    declare("sus_apc", "spell_id", LongSpell(), first=False)


def test_a_rule_declared_on_a_column_is_applied_reported_documented_and_breakable(new_rules, tmp_path):
    report = run(
        tmp_path,
        {
            "gp_registrations": [{"sex": "7"}, {"sex": "8"}],
            "sus_apc": [{"spell_id": "S1234"}],
        },
    )
    reg = report.tables["gp_registrations"]
    assert dict(reg.quarantined) == {"sex:not_seven": 1, "sex:allowed_values": 1}
    assert {(r["row"], r["rule"], r["detail"]) for r in quarantine(tmp_path, "gp_registrations")} == {
        ("2", "not_seven", "sex is 7"),
        ("3", "allowed_values", "sex is not one of 1, 2, 9, 0"),
    }
    apc = report.tables["sus_apc"]
    assert apc.quarantined_rows == 0 and apc.accepted == 2
    assert dict(apc.counted["long_spell_ids"]) == {"spell_id": 1}
    # the report: the quarantine table, the warning's column and line, and the JSON key
    console = Console(width=200, record=True, file=io.StringIO())
    print_report(report, console)
    text = console.export_text()
    assert "long spell ids" in text and "unknown codes" in text
    assert "long spell ids: sus_apc.spell_id: 1 rows kept (longer than 3 characters)" in text
    assert any(
        [cell.strip() for cell in line.split("│")[1:5]] == ["gp_registrations", "sex", "not_seven", "1"]
        for line in text.splitlines()
        if "│" in line
    )
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["tables"]["sus_apc"]["long_spell_ids"] == {"spell_id": 1}
    assert as_json["tables"]["gp_registrations"]["quarantined"]["sex:not_seven"] == 1
    assert list(counted_rules()) == ["unknown_codes", "long_spell_ids", "missing_optional"]
    # the generated document
    doc = contract_markdown()
    assert "| sex | string | yes | required, not_seven, allowed_values (`1` `2` `9` `0`) |" in doc
    assert "| `not_seven` | error | the value is not 7 (a rule declared in a test) |" in doc
    assert "| `long_spell_id` | warning | a spell id of at most 3 characters (a warning declared in a test) |" in doc


def _typed(name: str, n: int) -> pa.Table:
    """``n`` copies of the good row of table ``name``, typed as a Parquet extract."""
    return pa.table(
        {
            c.name: pa.array([GOOD[name][c.name] or None] * n, pa.string()).cast(ARROW_TYPES[c.type])
            for c in TABLES[name].columns
        }
    )


def test_a_rule_declared_on_a_column_can_be_injected_as_a_fault(new_rules, monkeypatch):
    monkeypatch.setitem(FAULT_PLAN, "gp_registrations", [Fault("sex", "not_seven")])
    monkeypatch.setitem(FAULT_PLAN, "sus_apc", [Fault("spell_id", "long_spell_id")])
    tables = {"gp_registrations": _typed("gp_registrations", 300), "sus_apc": _typed("sus_apc", 300)}
    out, counts = inject_faults(tables, 0.1, np.random.default_rng(1))
    sevens = out["gp_registrations"]["sex"].to_pylist().count("7")
    assert sevens > 0 and counts.quarantined["gp_registrations"] == {"sex:not_seven": sevens}
    long_ids = sum(v.endswith("LONG") for v in out["sus_apc"]["spell_id"].to_pylist())
    assert long_ids > 0 and counts.counted["long_spell_ids"]["sus_apc"] == {"spell_id": long_ids}
    assert counts.to_dict()["long_spell_ids"] == {"sus_apc": {"spell_id": long_ids}}


def test_a_row_check_is_injected_as_a_fault_and_validation_quarantines_it_under_its_key(monkeypatch, tmp_path):
    monkeypatch.setitem(FAULT_PLAN, "sus_apc", [Fault("*", "discharge_before_admission")])
    out, counts = inject_faults({"sus_apc": _typed("sus_apc", 400)}, 0.05, np.random.default_rng(3))
    apc = out["sus_apc"].to_pydict()
    admitted, discharged = GOOD["sus_apc"]["admission_date"], GOOD["sus_apc"]["discharge_date"]
    day_before = (dt.date.fromisoformat(admitted) - dt.timedelta(days=1)).isoformat()
    broken = [d for d in apc["discharge_date"] if d != discharged]
    assert broken and set(broken) == {day_before}  # discharged the day before admission
    assert apc["admission_date"] == [admitted] * 400  # the other column is untouched
    assert counts.quarantined["sus_apc"] == {"discharge_date:discharge_before_admission": len(broken)}
    # validation quarantines such a row under the same key
    report = run(tmp_path, {"sus_apc": [{"discharge_date": day_before}]})
    assert dict(report.tables["sus_apc"].quarantined) == {"discharge_date:discharge_before_admission": 1}
