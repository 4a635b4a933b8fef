"""Inject realistic data faults at a low rate, and count them, so validation can be judged.

Each fault breaks one rule of one column (or repeats a row), and each rule says how to break a
value for it (:meth:`riskstrat.schema.Rule.broken`): the plan below only chooses which. Each
fault touches its own rows (no row carries two faults), and the counts are written as the
quarantine key, or the column a warning or note counts, that validation is expected to
report, so ``riskstrat validate`` can be checked fault for fault.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.schema import TABLES, WHOLE_ROW, ColumnType, RuleKey, Severity, counted_rules

__all__ = ["FAULT_PLAN", "Fault", "FaultCounts", "faulted_text_columns", "inject_faults"]


def _empty_counted() -> dict[str, dict[str, Counter]]:
    return {key: {} for key in counted_rules()}


@dataclass
class FaultCounts:
    """Expected validation outcome of the injected faults, per table."""

    quarantined: dict[str, Counter] = field(default_factory=dict)  # table -> RuleKey -> rows
    counted: dict[str, dict[str, Counter]] = field(default_factory=_empty_counted)  # counted_as -> table -> column

    def add(self, other: FaultCounts) -> None:
        pairs = [(self.quarantined, other.quarantined)]
        pairs += [(self.counted.setdefault(k, {}), v) for k, v in other.counted.items()]
        for mine, theirs in pairs:
            for table, counts in theirs.items():
                mine.setdefault(table, Counter()).update(counts)

    def to_dict(self) -> dict:
        kinds = {"quarantined": self.quarantined, **self.counted}
        return {
            kind: {t: {str(k): n for k, n in sorted(c.items(), key=lambda kv: str(kv[0]))} for t, c in by.items() if c}
            for kind, by in kinds.items()
        }


@dataclass(frozen=True)
class Fault:
    """Break ``rule`` of ``column`` (``*``, ``duplicate_row``: repeat a row; ``*`` and a row
    check's name: break that check, :meth:`riskstrat.schema.RowCheck.break_rows`); ``value``,
    if given, is the value written instead of the rule's own breaking value."""

    column: str
    rule: str
    value: object = None

    @property
    def key(self) -> RuleKey:
        return RuleKey(self.column, self.rule)


_DUPLICATE = Fault(WHOLE_ROW, "duplicate_row")

# table -> the faults injected, in this order (the order draws the random numbers)
FAULT_PLAN: dict[str, list[Fault]] = {
    "gp_registrations": [
        Fault("nhs_number", "nhs_number_mod11"),
        Fault("date_of_birth", "type_date"),
        Fault("sex", "allowed_values", "7"),
        _DUPLICATE,
        Fault("ethnic_category", "missing"),
        Fault(WHOLE_ROW, "registration_end_before_start"),
    ],
    "gp_events": [
        Fault("nhs_number", "nhs_number_mod11"),
        Fault("event_date", "type_date"),
        Fault("event_date", "date_plausible"),
        Fault("snomed_code", "code_shape_snomed"),
        Fault("snomed_code", "unknown_code"),
        _DUPLICATE,
    ],
    "gp_medications": [
        Fault("nhs_number", "nhs_number_mod11"),
        Fault("issue_date", "type_date"),
        Fault("bnf_code", "code_shape_bnf"),
        Fault("bnf_code", "unknown_code"),
        Fault("quantity", "type_float"),
        _DUPLICATE,
        Fault("actual_cost", "missing"),
    ],
    "sus_apc": [
        Fault("nhs_number", "nhs_number_mod11"),
        Fault("admission_date", "date_plausible"),
        Fault("admission_method", "allowed_values", "99"),
        Fault("primary_diagnosis", "code_shape_icd10"),
        Fault("primary_diagnosis", "unknown_code"),
        _DUPLICATE,
        Fault("cost", "missing"),
        Fault(WHOLE_ROW, "discharge_before_admission"),
    ],
    "sus_op": [
        Fault("nhs_number", "nhs_number_mod11"),
        Fault("appointment_date", "type_date"),
        Fault("attendance_status", "allowed_values", "8"),
        _DUPLICATE,
        Fault("cost", "missing"),
    ],
    "sus_ecds": [
        Fault("nhs_number", "nhs_number_mod11"),
        Fault("arrival_date", "type_date"),
        Fault("department_type", "allowed_values", "09"),
        Fault("ambulance_arrival", "type_boolean"),
        _DUPLICATE,
        Fault("cost", "missing"),
    ],
}


def faulted_text_columns(name: str) -> set[str]:
    """Columns of table ``name`` that a faulted file carries as text: its dates, and the
    columns given a value that is not of their type."""
    decl = TABLES[name]
    text = {c.name for c in decl.columns if c.type is ColumnType.DATE}
    plan = [f for f in FAULT_PLAN.get(name, []) if f.column != WHOLE_ROW]
    return text | {f.column for f in plan if decl.column(f.column).rule(f.rule).breaks_type}


def _text(arr: pa.ChunkedArray, typ: ColumnType) -> pa.Array:
    arr = arr.combine_chunks()
    if typ is ColumnType.DATE:
        return pc.strftime(arr, format="%Y-%m-%d")
    return pc.cast(arr, pa.string())


def inject_faults(
    tables: dict[str, pa.Table], rate: float, rng: np.random.Generator
) -> tuple[dict[str, pa.Table], FaultCounts]:
    """Return faulted copies of ``tables`` and the counts validation should report.

    Faulted tables carry their dates (and any column given a bad value) as text, as a CSV
    export would.
    """
    counts = FaultCounts()
    out = dict(tables)
    for name, plan in FAULT_PLAN.items():
        if name not in tables or rate <= 0:
            continue
        tbl, decl = tables[name], TABLES[name]
        n = tbl.num_rows
        k = rng.binomial(n, rate, size=len(plan))
        order = rng.permutation(n)
        q: Counter = Counter()
        counted: dict[str, Counter] = {key: Counter() for key in counts.counted}
        cols: dict[str, np.ndarray] = {}
        text_cols = faulted_text_columns(name)
        for c in decl.columns:
            arr = tbl[c.name]
            cols[c.name] = np.asarray(
                (_text(arr, c.type) if c.name in text_cols else arr.combine_chunks()).to_numpy(zero_copy_only=False),
                dtype=object,
            )
        pos = 0
        duplicate_rows = np.zeros(0, dtype=np.int64)
        for fault, kk in zip(plan, k, strict=True):
            if fault == _DUPLICATE:
                rows = order[pos : pos + kk]
                pos += rows.size
                duplicate_rows = rows
                q[fault.key] += rows.size
                continue
            if fault.column == WHOLE_ROW:  # a row check, across columns
                check = decl.check(fault.rule)
                breakable = check.breakable({c: v[order[pos:]] for c, v in cols.items()})
            else:
                rule = decl.column(fault.column).rule(fault.rule)
                values = cols[fault.column]
                breakable = rule.breakable(values[order[pos:]])
            if breakable.all():
                rows = order[pos : pos + kk]
            else:  # only rows the fault changes, moved to the front of what is left
                rows = order[pos:][breakable][:kk]
                rest = np.setdiff1d(order[pos:], rows, assume_unique=True)
                order = np.concatenate([order[:pos], rows, rest])
            pos += rows.size
            if rows.size == 0:
                continue
            if fault.column == WHOLE_ROW:
                check.break_rows(cols, rows)
                q[RuleKey(check.column, check.name)] += rows.size
                continue
            values[rows] = fault.value if fault.value is not None else rule.broken(values[rows])
            if rule.severity is Severity.ERROR:
                q[fault.key] += rows.size
            else:
                counted[rule.counted_as][fault.column] += rows.size
        arrays, fields = [], []
        for c in decl.columns:
            typ = pa.string() if c.name in text_cols else tbl.schema.field(c.name).type
            arrays.append(pa.array(cols[c.name], typ, from_pandas=True))
            fields.append(pa.field(c.name, typ))
        faulted = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        if duplicate_rows.size:  # copies of clean rows, placed right after their originals
            idx = np.sort(np.concatenate([np.arange(n), duplicate_rows]), kind="stable")
            faulted = faulted.take(pa.array(idx))
        out[name] = faulted
        counts.quarantined[name] = q
        for key, c in counted.items():
            counts.counted[key][name] = c
    return out, counts
