"""Validate extracts against contract v1 without losing a row.

Every input row ends in exactly one place:

* **accepted**: typed, written to ``<accepted_dir>/<table>.parquet`` (column ``_row`` keeps
  the source row number);
* **quarantined**: written to ``<quarantine_dir>/<table>.csv`` with the file name, the row
  number (1 = first data row), the column and the rule it broke, and its original values;
  exact duplicates of an earlier row are quarantined under the rule ``duplicate_row``.

Well-shaped codes that cannot be real (see :mod:`riskstrat.codes`) are accepted and counted
as *unknown codes*; empty optional values are counted as *missing*. The report reconciles,
per table, rows read = accepted + quarantined. Problems with whole files (missing tables or
columns, empty or unreadable files, wrong Parquet types) raise one
:class:`~riskstrat.errors.ContractError` that lists them all. NaN and the infinities break a
range rule; an NHS number column stored as integers is read as zero-padded 10-digit text.

The quarantine holds NHS numbers: it belongs to the identifiable zone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from riskstrat.background import BackgroundWriter
from riskstrat.config import Config
from riskstrat.duck import connect
from riskstrat.ingest.read import Batch, SourceFile, locate_tables, read_batches
from riskstrat.schema import (
    TABLES,
    WHOLE_ROW,
    Column,
    ColumnType,
    ColumnValues,
    RuleKey,
    Severity,
    Table,
    arrow_schema,
    counted_rules,
)

__all__ = ["ROW_COLUMN", "TableReport", "ValidationReport", "validate_batch", "validate_extracts"]

ROW_COLUMN = "_row"
QUARANTINE_META = ("source_file", "row", "column", "rule", "detail", "raw_line")
_TRUE = ("true", "t", "1", "y", "yes")
_FALSE = ("false", "f", "0", "n", "no")
_NON_FINITE = r"^[+-]?(nan|inf|infinity)$"  # CSV spellings of NaN and the infinities


DUPLICATE_ROW = RuleKey(WHOLE_ROW, "duplicate_row")
CSV_FIELD_COUNT = RuleKey(WHOLE_ROW, "csv_field_count")


def _counted() -> dict[str, Counter]:
    return {key: Counter() for key in counted_rules()}


@dataclass
class TableReport:
    """Counts for one table.

    ``quarantined`` is keyed by :class:`~riskstrat.schema.RuleKey` (``column:rule``);
    ``counted`` holds the rows kept but counted by warning and note rules, by the rule's
    ``counted_as`` (``unknown_codes``, ``missing_optional``), then by column.
    """

    table: str
    file: str
    rows_read: int = 0
    accepted: int = 0
    quarantined: Counter = field(default_factory=Counter)
    counted: dict[str, Counter] = field(default_factory=_counted)

    @property
    def unknown_codes(self) -> Counter:
        """Rows kept with a well-shaped code that cannot be real, per column."""
        return self.counted["unknown_codes"]

    @property
    def missing_optional(self) -> Counter:
        """Rows kept with an empty optional value, per column."""
        return self.counted["missing_optional"]

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    @property
    def duplicates(self) -> int:
        return self.quarantined.get(DUPLICATE_ROW, 0)

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.accepted + self.quarantined_rows

    def quarantined_by_rule(self) -> list[tuple[RuleKey, int]]:
        """Quarantined rows per ``column:rule``, in the order of the keys' text."""
        return sorted(self.quarantined.items(), key=lambda kv: str(kv[0]))

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "file": self.file,
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "quarantined_rows": self.quarantined_rows,
            "duplicates": self.duplicates,
            "reconciles": self.reconciles,
            "quarantined": {str(k): n for k, n in self.quarantined_by_rule()},
            **{key: dict(sorted(counts.items())) for key, counts in self.counted.items()},
        }


@dataclass
class ValidationReport:
    """The outcome of validating one extracts directory."""

    extracts: str
    tables: dict[str, TableReport]
    absent_optional: list[str]
    quarantine_dir: str
    accepted_dir: str | None

    @property
    def rows_read(self) -> int:
        return sum(t.rows_read for t in self.tables.values())

    @property
    def quarantined_rows(self) -> int:
        return sum(t.quarantined_rows for t in self.tables.values())

    @property
    def reconciles(self) -> bool:
        return all(t.reconciles for t in self.tables.values())

    def to_dict(self) -> dict:
        return {
            "extracts": self.extracts,
            "quarantine_dir": self.quarantine_dir,
            "absent_optional_tables": self.absent_optional,
            "rows_read": self.rows_read,
            "quarantined_rows": self.quarantined_rows,
            "reconciles": self.reconciles,
            "tables": {k: v.to_dict() for k, v in self.tables.items()},
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- parsing


def _as_text(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _parse(col: Column, raw: pa.Array, text: pa.Array | None) -> tuple[pa.Array, np.ndarray]:
    """Typed values and a mask of values that parsed (True where present and well-typed);
    ``text`` is ``raw`` as text trimmed of white space, or None where ``raw`` is not text."""
    typ = raw.type
    if pa.types.is_null(typ):
        return pa.nulls(len(raw), _ARROW[col.type]), np.zeros(len(raw), dtype=bool)
    if text is None:
        if col.type is ColumnType.STRING:
            text = _as_text(raw)
        else:
            if col.type is ColumnType.DATE and pa.types.is_timestamp(typ):
                raw = pc.cast(pc.floor_temporal(raw, unit="day"), pa.timestamp(typ.unit)).cast(pa.date32())
            values = raw.cast(_ARROW[col.type])
            return values, ~_np(pc.is_null(values))
    if col.type is ColumnType.STRING:
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        return text, ~_np(pc.is_null(text))
    if col.type is ColumnType.DATE:
        stamp = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime is lenient on some platforms: insist that the text is the canonical form.
        same = pc.equal(pc.strftime(stamp, format="%Y-%m-%d"), text)
        ok = _np(same)
        values = pc.if_else(pa.array(ok), pc.cast(stamp, pa.date32()), pa.scalar(None, pa.date32()))
        return values, ok
    if col.type is ColumnType.INTEGER:
        ok = _np(pc.match_substring_regex(text, r"^[+-]?[0-9]{1,18}$"))
        cleaned = pc.if_else(pa.array(ok), text, pa.scalar(None, pa.string()))
        return pc.cast(cleaned, pa.int64()), ok
    if col.type is ColumnType.FLOAT:
        ok = _np(pc.match_substring_regex(text, r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"))
        if col.value_range is not None:  # parsed, so that the range rule names them
            ok |= _np(pc.match_substring_regex(text, _NON_FINITE, ignore_case=True))
        cleaned = pc.if_else(pa.array(ok), text, pa.scalar(None, pa.string()))
        return pc.cast(cleaned, pa.float64()), ok
    if col.type is ColumnType.BOOLEAN:
        lower = pc.utf8_lower(text)
        is_true, is_false = _np(pc.is_in(lower, pa.array(_TRUE))), _np(pc.is_in(lower, pa.array(_FALSE)))
        ok = is_true | is_false
        values = pa.array(np.where(ok, is_true, False), pa.bool_())
        return pc.if_else(pa.array(ok), values, pa.scalar(None, pa.bool_())), ok
    raise AssertionError(col.type)


_ARROW = {
    ColumnType.STRING: pa.string(),
    ColumnType.DATE: pa.date32(),
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
}


# --------------------------------------------------------------------------- one batch


@dataclass
class BatchResult:
    accepted: pa.Table  # typed, contract columns + _row
    quarantine: pa.Table  # QUARANTINE_META + contract columns as text
    counted: dict[str, Counter]  # counted_as -> column -> rows kept
    quarantined: Counter  # RuleKey -> rows


def validate_batch(tbl: Table, batch: Batch, file_name: str, today: dt.date) -> BatchResult:
    """Check one batch of a table against its declaration.

    Each failing row is reported once, against the first error rule it breaks (columns in
    contract order, each column's rules in :attr:`~riskstrat.schema.Column.all_rules` order,
    then the table's row checks). Warning and note rules count the rows that stay.
    """
    n = batch.data.num_rows
    failed = np.zeros(n, dtype=bool)
    # column, rule and detail of each failed row, by row: filled only where a row fails
    fail_column, fail_rule, fail_detail = (np.empty(n, dtype=object) for _ in range(3))
    counted_masks: list[tuple[str, str, np.ndarray]] = []  # (counted_as, column, mask)
    typed: dict[str, pa.Array] = {}

    def fail(mask: np.ndarray, column: str, rule: str, detail: str | np.ndarray) -> None:
        new = mask & ~failed
        if new.any():
            failed[new] = True
            fail_column[new] = column
            fail_rule[new] = rule
            fail_detail[new] = detail if isinstance(detail, str) else detail[new]

    for col in tbl.columns:
        raw = batch.data[col.name]
        raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        text_present = ~_np(pc.is_null(raw))
        text = None
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            text = pc.utf8_trim_whitespace(_as_text(raw))
            text_present &= ~_np(pc.equal(text, ""))
        typed[col.name], parsed = _parse(col, raw, text)
        values = ColumnValues(typed[col.name], text_present, parsed, today)
        for rule in col.all_rules:
            broken = ~rule.passes(values)
            if rule.parsed_only:
                broken &= parsed
            if rule.severity is not Severity.ERROR:
                counted_masks.append((rule.counted_as, col.name, broken))
            elif (broken & ~failed).any():
                fail(broken, col.name, rule.name, rule.detail(col.name, values))
    typed_table = (
        pa.Table.from_arrays([typed[c.name] for c in tbl.columns], schema=arrow_schema(tbl).remove_metadata())
        if n
        else arrow_schema(tbl).empty_table()
    )
    for check in tbl.checks:
        fail(~check.passes(typed_table), check.column, check.name, check.message)

    keep = ~failed
    counted = _counted()
    for key, column, mask in counted_masks:
        counted[key][column] += int((mask & keep).sum())
    if failed.any():
        accepted = typed_table.filter(pa.array(keep))
        rows = batch.rows[keep]
    else:  # most batches: nothing to filter
        accepted, rows = typed_table, batch.rows
    accepted = accepted.append_column(ROW_COLUMN, pa.array(rows, pa.int64()))
    quarantined = Counter(RuleKey(c, r) for c, r in zip(fail_column[failed], fail_rule[failed], strict=True))
    quarantine = _quarantine_rows(
        tbl,
        batch.data.filter(pa.array(failed)),
        file_name,
        batch.rows[failed],
        fail_column[failed],
        fail_rule[failed],
        fail_detail[failed],
    )
    if batch.invalid:
        quarantined[CSV_FIELD_COUNT] += len(batch.invalid)
        quarantine = pa.concat_tables([quarantine, _invalid_lines(tbl, batch, file_name)])
    return BatchResult(accepted, quarantine, counted, quarantined)


def _quarantine_schema(tbl: Table) -> pa.Schema:
    meta = [pa.field("source_file", pa.string()), pa.field("row", pa.int64())]
    meta += [pa.field(k, pa.string()) for k in QUARANTINE_META[2:]]
    return pa.schema(meta + [pa.field(c.name, pa.string()) for c in tbl.columns])


def _as_string_column(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    return pc.cast(arr, pa.string())


def _quarantine_rows(
    tbl: Table,
    data: pa.Table,
    file_name: str,
    rows: np.ndarray,
    columns: np.ndarray,
    rules: np.ndarray,
    details: np.ndarray,
) -> pa.Table:
    m = data.num_rows
    arrays = [
        pa.array([file_name] * m, pa.string()),
        pa.array(rows, pa.int64()),
        pa.array(list(columns), pa.string()),
        pa.array(list(rules), pa.string()),
        pa.array(list(details), pa.string()),
        pa.nulls(m, pa.string()),
    ]
    arrays += [_as_string_column(data[c.name]) for c in tbl.columns]
    return pa.Table.from_arrays(arrays, schema=_quarantine_schema(tbl))


def _invalid_lines(tbl: Table, batch: Batch, file_name: str) -> pa.Table:
    m = len(batch.invalid)
    arrays = [
        pa.array([file_name] * m, pa.string()),
        pa.array([x.row for x in batch.invalid], pa.int64()),
        pa.array([CSV_FIELD_COUNT.column] * m, pa.string()),
        pa.array([CSV_FIELD_COUNT.rule] * m, pa.string()),
        pa.array([x.detail for x in batch.invalid], pa.string()),
        pa.array([x.text for x in batch.invalid], pa.string()),
    ]
    arrays += [pa.nulls(m, pa.string()) for _ in tbl.columns]
    return pa.Table.from_arrays(arrays, schema=_quarantine_schema(tbl))


# --------------------------------------------------------------------------- whole directory


class _QuarantineFile:
    """Appends quarantined rows to ``<dir>/<table>.csv``, created on first use."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema, self._writer = path, schema, None

    def write(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pcsv.CSVWriter(self.path, self.schema)
        self._writer.write_table(rows.cast(self.schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: row hashes sorted at a time when looking for repeated rows (8 bytes each: 256 MB)
HASHES_AT_ONCE = 1 << 25


def _repeated_hashes(hashes: pa.RecordBatchReader, rows: int, spill: Path, at_once: int | None = None) -> pa.Array:
    """The 64-bit values that occur more than once in the single column of ``hashes``
    (``rows`` values in all), in memory bounded by ``at_once`` (default :data:`HASHES_AT_ONCE`)
    values whatever ``rows``.

    The values are split by their leading bits into files in ``spill``, each holding about
    ``at_once`` values or fewer, and each file is sorted (numpy) and its neighbours
    compared. (DuckDB's ``GROUP BY hash HAVING count(*) > 1`` gives the same answer, but its
    hash table of the 224 million prescriptions of 2,000,000 people took 42 s, spilling, against
    18 s for this, hashing included, on the same machine: see docs/performance.md.)"""
    bits = (max(1, -(-rows // (at_once or HASHES_AT_ONCE))) - 1).bit_length()
    spill.mkdir(parents=True, exist_ok=True)
    paths = [spill / f"hashes-{p}.bin" for p in range(1 << bits)]
    try:
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(p.open("wb")) for p in paths]
            for batch in hashes:
                values = batch.column(0).to_numpy()
                part = (values >> np.uint64(64 - bits)).astype(np.uint16) if bits else np.zeros(len(values), np.uint16)
                order = np.argsort(part, kind="stable")  # a radix sort of small integers
                ends = np.cumsum(np.bincount(part, minlength=len(files)))
                for file, chunk in zip(files, np.split(values[order], ends[:-1]), strict=True):
                    chunk.tofile(file)
        repeated = []
        for path in paths:
            values = np.fromfile(path, dtype=np.uint64)
            path.unlink()
            values.sort()
            repeated.append(np.unique(values[1:][values[1:] == values[:-1]]))
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return pa.array(np.concatenate(repeated), pa.uint64())


def _deduplicate(staging: Path, final: Path, tbl: Table, tmp: Path) -> pa.Table:
    """Move the first copy of every row to ``final``; return the later copies (typed).

    No sort of the whole table: a 64-bit hash of every contract column is taken for each row
    in one streaming scan, and the hashes that occur more than once are found by
    :func:`_repeated_hashes`. Only the rows with such a hash (the duplicates, bar a 64-bit
    collision) are compared column by column, ordered by source row, to pick the later copies.
    ``final`` keeps the source order.
    """
    cols = ", ".join(_quote(c.name) for c in tbl.columns)
    src = f"read_parquet('{staging.as_posix()}')"
    spill = tmp / ".duckdb-spill"
    con = connect(spill, keep_order=False)
    try:
        rows = pq.ParquetFile(staging).metadata.num_rows
        shared = _repeated_hashes(
            con.sql(f"SELECT hash({cols}) FROM {src}").to_arrow_reader(1 << 20), rows, spill / "row-hashes"
        )
        con.register("shared", pa.table({"_h": shared}))
        dups = con.sql(
            "SELECT * EXCLUDE (_k) FROM (SELECT *, "
            f"row_number() OVER (PARTITION BY {cols} ORDER BY {ROW_COLUMN}) AS _k "
            f"FROM {src} WHERE hash({cols}) IN (SELECT _h FROM shared)) WHERE _k > 1 ORDER BY {ROW_COLUMN}"
        ).to_arrow_table()
    finally:
        con.close()
    if dups.num_rows == 0:
        staging.replace(final)
        return dups
    later = dups[ROW_COLUMN].combine_chunks()
    source = pq.ParquetFile(staging)
    with BackgroundWriter(final, source.schema_arrow, write_statistics=False) as writer:
        for batch in source.iter_batches(batch_size=1 << 20):
            writer.write_batch(batch.filter(pc.invert(pc.is_in(batch[ROW_COLUMN], value_set=later))))
    staging.unlink()
    return dups


def validate_extracts(
    extracts: Path,
    config: Config,
    quarantine_dir: Path,
    accepted_dir: Path | None = None,
    today: dt.date | None = None,
    progress=None,
) -> ValidationReport:
    """Validate every contract table in ``extracts``.

    Parameters
    ----------
    extracts : directory of contract v1 files.
    config : column mappings and file names.
    quarantine_dir : where ``<table>.csv`` quarantine files go (identifiable zone).
    accepted_dir : where typed, de-duplicated ``<table>.parquet`` files go; ``None`` keeps
        them only long enough to count duplicates.
    today : latest plausible date (default: the date the check runs).
    progress : optional callable ``(table_name, rows_so_far)`` for a progress display.

    Raises
    ------
    ContractError
        Listing every problem with whole files: required tables or columns missing, files
        empty (0 bytes) or unreadable, headers with another delimiter or a control
        character, Parquet columns of the wrong type.
    """
    today = today or dt.date.today()
    sources = locate_tables(extracts, config)
    keep_accepted = accepted_dir is not None
    work = accepted_dir if keep_accepted else quarantine_dir / ".accepted-tmp"
    work.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    reports: dict[str, TableReport] = {}
    try:
        for name, source in sources.items():
            reports[name] = _validate_table(source, config, quarantine_dir, work, today, progress)
    finally:
        if not keep_accepted:
            shutil.rmtree(work, ignore_errors=True)
    absent = [t for t in TABLES if t not in sources]
    return ValidationReport(
        str(extracts), reports, absent, str(quarantine_dir), str(accepted_dir) if keep_accepted else None
    )


def _validate_table(
    source: SourceFile, config: Config, quarantine_dir: Path, work: Path, today: dt.date, progress
) -> TableReport:
    tbl = source.table
    report = TableReport(tbl.name, source.name)
    qfile = _QuarantineFile(quarantine_dir / f"{tbl.name}.csv", _quarantine_schema(tbl))
    staging = work / f".{tbl.name}.staging.parquet"
    schema = arrow_schema(tbl).remove_metadata().append(pa.field(ROW_COLUMN, pa.int64()))
    # no column statistics: the staged copy is read whole, never filtered (they cost a third of the write)
    writer = BackgroundWriter(staging, schema.remove_metadata(), write_statistics=False)
    try:
        for batch in read_batches(source, config.batch_rows):
            result = validate_batch(tbl, batch, source.name, today)
            report.rows_read += batch.data.num_rows + len(batch.invalid)
            writer.write_table(result.accepted.cast(writer.schema))
            qfile.write(result.quarantine)
            report.quarantined.update(result.quarantined)
            for key, counts in result.counted.items():
                report.counted[key].update(counts)
            if progress is not None:
                progress(tbl.name, report.rows_read)
    finally:
        writer.close()
    dups = _deduplicate(staging, work / f"{tbl.name}.parquet", tbl, work)
    if dups.num_rows:
        report.quarantined[DUPLICATE_ROW] += dups.num_rows
        m = dups.num_rows
        qfile.write(
            _quarantine_rows(
                tbl,
                dups,
                source.name,
                dups[ROW_COLUMN].to_numpy(),
                np.full(m, DUPLICATE_ROW.column, dtype=object),
                np.full(m, DUPLICATE_ROW.rule, dtype=object),
                np.full(m, "exact duplicate of an earlier row", dtype=object),
            )
        )
        # Duplicates were counted with their batch; count warnings and notes over the rows
        # that stay (a duplicate was accepted, so its values are typed: present = parsed).
        for col in tbl.columns:
            present = ~_np(pc.is_null(dups[col.name]))
            values = ColumnValues(dups[col.name], present, present, today)
            for rule in col.all_rules:
                if rule.severity is not Severity.ERROR:
                    broken = ~rule.passes(values) & (present if rule.parsed_only else True)
                    report.counted[rule.counted_as][col.name] -= int(broken.sum())
    qfile.close()
    report.accepted = pq.ParquetFile(work / f"{tbl.name}.parquet").metadata.num_rows
    for key in counted_rules(Severity.WARNING):  # warnings list only the columns with rows
        counts = report.counted[key]
        for column in [c for c, k in counts.items() if k == 0]:
            del counts[column]
    if not report.reconciles:  # an internal error, never the user's: fail loudly
        raise AssertionError(f"{tbl.name}: rows do not reconcile ({report.to_dict()})")
    return report
