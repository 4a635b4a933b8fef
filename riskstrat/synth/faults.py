"""Inject realistic data faults at a low rate, and count them, so validation can be judged.

Each fault kind touches its own rows (no row carries two faults), and the counts are
written as the quarantine rule, unknown-code column or missing column that validation is
expected to report, so ``riskstrat validate`` can be checked fault for fault.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.codes import verhoeff_valid
from riskstrat.schema import TABLES, ColumnType

__all__ = ["FAULT_PLAN", "FaultCounts", "inject_faults"]


@dataclass
class FaultCounts:
    """Expected validation outcome of the injected faults, per table."""

    quarantined: dict[str, Counter] = field(default_factory=dict)  # table -> "column:rule" -> rows
    unknown_codes: dict[str, Counter] = field(default_factory=dict)  # table -> column -> rows
    missing_optional: dict[str, Counter] = field(default_factory=dict)  # table -> column -> rows

    def add(self, other: FaultCounts) -> None:
        for mine, theirs in (
            (self.quarantined, other.quarantined),
            (self.unknown_codes, other.unknown_codes),
            (self.missing_optional, other.missing_optional),
        ):
            for table, counts in theirs.items():
                mine.setdefault(table, Counter()).update(counts)

    def to_dict(self) -> dict:
        return {
            kind: {t: dict(sorted(c.items())) for t, c in getattr(self, kind).items() if c}
            for kind in ("quarantined", "unknown_codes", "missing_optional")
        }


# table -> list of (fault kind, column)
FAULT_PLAN: dict[str, list[tuple[str, str]]] = {
    "gp_registrations": [
        ("bad_check_digit", "nhs_number"),
        ("bad_date", "date_of_birth"),
        ("bad_enum", "sex"),
        ("duplicate", "*"),
        ("missing", "ethnic_category"),
    ],
    "gp_events": [
        ("bad_check_digit", "nhs_number"),
        ("bad_date", "event_date"),
        ("implausible_date", "event_date"),
        ("bad_shape", "snomed_code"),
        ("unknown_code", "snomed_code"),
        ("duplicate", "*"),
    ],
    "gp_medications": [
        ("bad_check_digit", "nhs_number"),
        ("bad_date", "issue_date"),
        ("bad_shape", "bnf_code"),
        ("unknown_code", "bnf_code"),
        ("bad_number", "quantity"),
        ("duplicate", "*"),
        ("missing", "actual_cost"),
    ],
    "sus_apc": [
        ("bad_check_digit", "nhs_number"),
        ("implausible_date", "admission_date"),
        ("bad_enum", "admission_method"),
        ("bad_shape", "primary_diagnosis"),
        ("unknown_code", "primary_diagnosis"),
        ("duplicate", "*"),
        ("missing", "cost"),
    ],
    "sus_op": [
        ("bad_check_digit", "nhs_number"),
        ("bad_date", "appointment_date"),
        ("bad_enum", "attendance_status"),
        ("duplicate", "*"),
        ("missing", "cost"),
    ],
    "sus_ecds": [
        ("bad_check_digit", "nhs_number"),
        ("bad_date", "arrival_date"),
        ("bad_enum", "department_type"),
        ("bad_boolean", "ambulance_arrival"),
        ("duplicate", "*"),
        ("missing", "cost"),
    ],
}

_BAD_ENUM = {"sex": "7", "admission_method": "99", "attendance_status": "8", "department_type": "09"}
_BAD_SHAPE = {"snomed_code": "12AB34", "bnf_code": "BNF123", "primary_diagnosis": "J4"}
_RULE = {
    "bad_check_digit": "nhs_number_mod11",
    "bad_date": "type_date",
    "implausible_date": "date_plausible",
    "bad_enum": "allowed_values",
    "bad_number": "type_float",
    "bad_boolean": "type_boolean",
}


def _text(arr: pa.ChunkedArray, typ: ColumnType) -> pa.Array:
    arr = arr.combine_chunks()
    if typ is ColumnType.DATE:
        return pc.strftime(arr, format="%Y-%m-%d")
    return pc.cast(arr, pa.string())


def _break_check_digit(numbers: np.ndarray) -> np.ndarray:
    last = numbers.astype("U10").view("U1").reshape(-1, 10)[:, 9].astype(int)
    new_last = (last + 1 + np.arange(numbers.size) % 9) % 10  # any other digit breaks Modulus 11
    return np.array([n[:9] + str(d) for n, d in zip(numbers, new_last, strict=True)])


def _unknown(column: str, values: np.ndarray) -> np.ndarray:
    if column == "snomed_code":  # one changed digit always breaks the Verhoeff check
        out = np.array([v[:-1] + str((int(v[-1]) + 3) % 10) for v in values])
        assert not verhoeff_valid(out).any()
        return out
    if column == "bnf_code":
        return np.array(["17" + v[2:] for v in values])  # BNF chapter 17 does not exist
    if column == "primary_diagnosis":
        return np.full(values.size, "E95X")  # beyond chapter IV (E00-E90)
    raise KeyError(column)


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
        q, unk, miss = Counter(), Counter(), Counter()
        cols: dict[str, np.ndarray] = {}
        text_cols = {c.name for c in decl.columns if c.type is ColumnType.DATE}
        text_cols |= {col for kind, col in plan if kind in ("bad_number", "bad_boolean")}
        for c in decl.columns:
            arr = tbl[c.name]
            cols[c.name] = np.asarray(
                (_text(arr, c.type) if c.name in text_cols else arr.combine_chunks()).to_numpy(zero_copy_only=False),
                dtype=object,
            )
        pos = 0
        duplicate_rows = np.zeros(0, dtype=np.int64)
        for (kind, column), kk in zip(plan, k, strict=True):
            if kind == "missing":  # only rows where the value is present
                candidates = order[pos:]
                present = np.array(
                    [cols[column][i] is not None and cols[column][i] == cols[column][i] for i in candidates], dtype=bool
                )
                rows = candidates[present][:kk]
                keep_order = np.setdiff1d(order[pos:], rows, assume_unique=True)
                order = np.concatenate([order[:pos], rows, keep_order])
            else:
                rows = order[pos : pos + kk]
            pos += rows.size
            if rows.size == 0:
                continue
            if kind == "duplicate":
                duplicate_rows = rows
                q["*:duplicate_row"] += rows.size
            elif kind == "bad_check_digit":
                cols[column][rows] = _break_check_digit(cols[column][rows].astype(str))
                q[f"{column}:{_RULE[kind]}"] += rows.size
            elif kind == "bad_date":
                years = np.array([str(v)[:4] for v in cols[column][rows]])
                cols[column][rows] = np.char.add(years, "-02-30")
                q[f"{column}:{_RULE[kind]}"] += rows.size
            elif kind == "implausible_date":
                cols[column][rows] = "1850-01-01"
                q[f"{column}:{_RULE[kind]}"] += rows.size
            elif kind == "bad_enum":
                cols[column][rows] = _BAD_ENUM[column]
                q[f"{column}:{_RULE[kind]}"] += rows.size
            elif kind == "bad_shape":
                cols[column][rows] = _BAD_SHAPE[column]
                q[f"{column}:code_shape_{decl.column(column).code}"] += rows.size
            elif kind == "unknown_code":
                cols[column][rows] = _unknown(column, cols[column][rows].astype(str))
                unk[column] += rows.size
            elif kind == "bad_number":
                cols[column][rows] = "n/a"
                q[f"{column}:{_RULE[kind]}"] += rows.size
            elif kind == "bad_boolean":
                cols[column][rows] = "maybe"
                q[f"{column}:{_RULE[kind]}"] += rows.size
            elif kind == "missing":
                cols[column][rows] = None
                miss[column] += rows.size
            else:
                raise AssertionError(kind)
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
        counts.unknown_codes[name] = unk
        counts.missing_optional[name] = miss
    return out, counts
