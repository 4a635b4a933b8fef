"""Find and read the extract files of contract v1, in batches, under contract names.

CSV values are read as text (so that one bad value quarantines one row, not the file);
Parquet columns keep their types, which must be compatible with the contract (an NHS
number stored as an integer is read as its zero-padded 10-digit text). Memory is bounded by
the batch size, not by the size of the file.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from riskstrat.config import Config, TableMapping
from riskstrat.errors import ContractError
from riskstrat.schema import PSEUDONYM, TABLES, Column, ColumnType, Table

__all__ = ["Batch", "InvalidLine", "SourceFile", "locate_tables", "read_batches"]


@dataclass(frozen=True)
class SourceFile:
    """One extract file and how its columns map to the contract table."""

    table: Table
    path: Path
    format: str  # "csv" or "parquet"
    columns: dict[str, str]  # contract name -> source name, for columns present in the file

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class InvalidLine:
    """A CSV line that could not be split into the header's fields."""

    row: int  # data row number, 1 = first row after the header
    detail: str
    text: str  # the line as read (identifiable: it goes to the quarantine only)


@dataclass
class Batch:
    """Up to ``batch_rows`` rows of one file, under contract column names."""

    data: pa.Table
    rows: np.ndarray  # data row number of each row (1 = first data row)
    invalid: list[InvalidLine] = field(default_factory=list)  # lines skipped before/within it


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), [])
    except UnicodeDecodeError:
        raise ContractError(f"{path.name}: not UTF-8 text (data contract: CSV is UTF-8)") from None
    except (OSError, csv.Error) as exc:
        raise ContractError(f"{path.name}: cannot read file ({getattr(exc, 'strerror', None) or exc})") from None


def _parquet_columns(path: Path) -> list[str]:
    try:
        return pq.ParquetFile(path).schema_arrow.names
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(f"{path.name}: not a readable Parquet file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: Columns found in a file, shown when a required one is missing, before "... and N more".
SHOWN_COLUMNS = 12
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
_HINT = "map local column names with --config (tables.{table}.columns)"


def _shown(name: str) -> str:
    """A header name as text that prints on one line (control characters escaped)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in name)


def _unprintable(name: str) -> str | None:
    """The first control (or invisible format) character in ``name``, described with its code point."""
    for ch in name:
        kind = {"Cc": "control", "Cf": "invisible"}.get(unicodedata.category(ch))
        if kind is not None:
            return f"{kind} character U+{ord(ch):04X}"
    return None


def _other_delimiter(header: list[str], tbl: Table, mapping: TableMapping) -> str | None:
    """The delimiter a one-field header seems to use, when splitting on it finds contract columns."""
    if len(header) != 1:
        return None
    names = {mapping.source_name(c.name) for c in tbl.columns} | {PSEUDONYM}
    for delimiter, shown in _OTHER_DELIMITERS.items():
        fields = [f.strip().strip('"') for f in header[0].split(delimiter)]
        if len(fields) > 1 and names.intersection(fields):
            return shown
    return None


def _missing_columns(file: str, table: str, missing: list[str], header: list[str]) -> str:
    what = f"required column {missing[0]} is" if len(missing) == 1 else f"required columns {', '.join(missing)} are"
    found = ", ".join(_shown(h) for h in header[:SHOWN_COLUMNS]) or "none"
    if len(header) > SHOWN_COLUMNS:
        found += f", ... and {len(header) - SHOWN_COLUMNS} more"
    return f"{file}: {what} missing (columns found: {found}); {_HINT.format(table=table)}"


def _inspect(tbl: Table, path: Path, mapping: TableMapping) -> tuple[SourceFile | None, list[str]]:
    """The file as a source of ``tbl``, and every problem with the whole file (none: usable)."""
    fmt = "parquet" if path.suffix.lower() == ".parquet" else "csv"
    try:
        if path.stat().st_size == 0:
            return None, [f"{path.name}: empty file (0 bytes)"]
        header = _parquet_columns(path) if fmt == "parquet" else _header(path)
    except OSError as exc:
        return None, [f"{path.name}: cannot read file ({exc.strerror})"]
    except ContractError as exc:
        return None, [str(exc)]
    if fmt == "csv":
        if not any(h.strip() for h in header):
            return None, [f"{path.name}: the first line is empty (the data contract says it is the header)"]
        delimiter = _other_delimiter(header, tbl, mapping)
        if delimiter is not None:
            return None, [
                f"{path.name}: the header looks {delimiter}-separated; the data contract says comma-separated CSV"
            ]
    problems = []
    for position, name in enumerate(header, start=1):
        char = _unprintable(name)
        if char is not None:
            problems.append(f"{path.name}: header column {position} ({_shown(name)}) contains a {char}")
    twice = sorted({_shown(h) for h in header if header.count(h) > 1})
    if twice:
        problems.append(f"{path.name}: the header names a column twice ({', '.join(twice)})")
    nhs_source = mapping.source_name("nhs_number")
    if tbl.identifiable and nhs_source not in header and PSEUDONYM in header:
        tbl = tbl.pseudonymised()  # pseudonymised at source with the region key
    columns: dict[str, str] = {}
    missing: list[str] = []
    for col in tbl.columns:
        source = mapping.source_name(col.name)
        if source in header:
            columns[col.name] = source
        elif col.required:
            missing.append(col.name if source == col.name else f"{source} (mapped to {col.name})")
    if missing:
        problems.append(_missing_columns(path.name, tbl.name, missing, header))
    found = SourceFile(tbl, path, fmt, columns)
    if fmt == "parquet" and not problems:
        problems += _parquet_type_problems(found)
    return (None if problems else found), problems


def _summary(extracts: Path, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{extracts}: {problems[0]}"
    listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, start=1))
    return f"{extracts} has {len(problems)} problems: {listed}"


def locate_tables(extracts: Path, config: Config) -> dict[str, SourceFile]:
    """Find each contract table's file in ``extracts`` and check its header.

    Returns the tables present (optional tables may be absent). A file with a header and no
    rows is present (its table is empty); a file of 0 bytes is a problem.

    Raises
    ------
    ContractError
        If the directory is missing, or once every table has been looked at, with every
        problem found, one per item: a required table missing or present both as CSV and as
        Parquet; a file empty (0 bytes), unreadable, not UTF-8 or not Parquet; a CSV header
        that seems to use another delimiter, names a column twice or holds a control
        character; required columns missing (with the columns found); a Parquet column
        whose type the contract cannot take.
    """
    if not extracts.is_dir():
        raise ContractError(f"{extracts}: extracts directory not found")
    found: dict[str, SourceFile] = {}
    problems: list[str] = []
    for name, tbl in TABLES.items():
        mapping = config.mapping(name)
        if mapping.file:
            candidates = [extracts / mapping.file]
        else:
            candidates = [extracts / f"{name}.parquet", extracts / f"{name}.csv"]
        present = [p for p in candidates if p.is_file()]
        if len(present) > 1:
            problems.append(f"table {name} is present twice ({present[0].name} and {present[1].name}); keep one")
        elif not present:
            if tbl.required:
                expected = " or ".join(p.name for p in candidates)
                problems.append(f"required table {name} is missing (expected {expected})")
        else:
            source, file_problems = _inspect(tbl, present[0], mapping)
            problems += file_problems
            if source is not None:
                found[name] = source
    if problems:
        raise ContractError(_summary(extracts, problems))
    return found


_COMPATIBLE = {
    ColumnType.STRING: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    ColumnType.DATE: lambda t: (
        pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
    ),
    ColumnType.INTEGER: lambda t: pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t),
    ColumnType.FLOAT: lambda t: (
        pa.types.is_floating(t)
        or pa.types.is_integer(t)
        or pa.types.is_decimal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    ),
    ColumnType.BOOLEAN: lambda t: pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t),
}


def _compatible(col: Column, typ: pa.DataType) -> bool:
    if col.nhs_number and pa.types.is_integer(typ):
        return True  # read as the 10-digit text (zero-padded), then checked as any NHS number
    return _COMPATIBLE[col.type](typ)


def _parquet_type_problems(source: SourceFile) -> list[str]:
    try:
        schema = pq.ParquetFile(source.path).schema_arrow
    except (OSError, pa.ArrowException) as exc:
        return [f"{source.name}: not a readable Parquet file ({_first_line(exc)})"]
    problems = []
    for contract_name, source_name in source.columns.items():
        col = source.table.column(contract_name)
        typ = schema.field(source_name).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if not pa.types.is_null(typ) and not _compatible(col, typ):
            problems.append(f"{source.name}: column {source_name} has type {typ}; the contract says {col.type}")
    return problems


def _nhs_number_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Integer NHS numbers as 10-digit text: 9990000018 -> "9990000018", 123 -> "0000000123"."""
    return pc.utf8_lpad(pc.cast(arr, pa.string()), width=10, padding="0")


def _rename(table: pa.Table, source: SourceFile) -> pa.Table:
    arrays, names = [], []
    for col in source.table.columns:
        if col.name in source.columns:
            arr = table[source.columns[col.name]]
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            if col.nhs_number and pa.types.is_integer(arr.type):
                arr = _nhs_number_text(arr)
        else:
            arr = pa.nulls(table.num_rows, pa.string())
        arrays.append(arr)
        names.append(col.name)
    return pa.Table.from_arrays(arrays, names=names)


def read_batches(source: SourceFile, batch_rows: int = 1_000_000) -> Iterator[Batch]:
    """Yield the file's rows in batches, under contract names, absent optional columns as nulls.

    Raises
    ------
    ContractError
        If the file cannot be read (for CSV: not UTF-8, broken quoting) or a Parquet
        column has a type the contract cannot take.
    """
    if source.format == "parquet":
        yield from _parquet_batches(source, batch_rows)
    else:
        yield from _csv_batches(source, batch_rows)


def _parquet_batches(source: SourceFile, batch_rows: int) -> Iterator[Batch]:
    problems = _parquet_type_problems(source)
    if problems:
        raise ContractError("; ".join(problems))
    try:
        pf = pq.ParquetFile(source.path)
        start = 1
        for rb in pf.iter_batches(batch_size=batch_rows, columns=list(source.columns.values())):
            data = _rename(pa.Table.from_batches([rb]), source)
            yield Batch(data, np.arange(start, start + data.num_rows, dtype=np.int64))
            start += data.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(f"{source.name}: cannot read Parquet file ({_first_line(exc)})") from None


def _csv_batches(source: SourceFile, batch_rows: int) -> Iterator[Batch]:
    invalid: list[InvalidLine] = []
    skipped: list[int] = []  # 0-based data rows skipped so far, ascending

    def on_invalid(row: pcsv.InvalidRow) -> str:
        data_row = (row.number - 1) if row.number is not None else -1
        invalid.append(
            InvalidLine(data_row, f"expected {row.expected_columns} fields, found {row.actual_columns}", row.text)
        )
        skipped.append(data_row - 1)
        return "skip"

    names = list(source.columns.values())
    try:
        reader = pcsv.open_csv(
            source.path,
            read_options=pcsv.ReadOptions(use_threads=False, block_size=1 << 24),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                include_columns=names,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
        ordinal = 0  # valid rows seen so far
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for rb in _iter_reader(reader):
            pending.append(rb)
            pending_rows += rb.num_rows
            if pending_rows >= batch_rows:
                yield _csv_batch(pending, source, ordinal, skipped, invalid)
                ordinal += pending_rows
                pending, pending_rows, invalid = [], 0, []
        if pending or invalid:
            yield _csv_batch(pending, source, ordinal, skipped, invalid)
    except UnicodeDecodeError:
        raise ContractError(f"{source.name}: not UTF-8 text (data contract: CSV is UTF-8)") from None
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(f"{source.name}: cannot read CSV file ({_first_line(exc)})") from None


def _iter_reader(reader: pcsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return


def _csv_batch(
    pending: list[pa.RecordBatch], source: SourceFile, ordinal: int, skipped: list[int], invalid: list[InvalidLine]
) -> Batch:
    names = list(source.columns.values())
    if pending:
        data = pa.Table.from_batches(pending)
    else:
        data = pa.table({n: pa.array([], pa.string()) for n in names})
    valid = np.arange(ordinal, ordinal + data.num_rows, dtype=np.int64)
    # Turn valid-row ordinals into data row numbers, stepping over skipped lines.
    s = np.asarray(skipped, dtype=np.int64)
    shifted = s - np.arange(s.shape[0])
    rows = valid + np.searchsorted(shifted, valid, side="right") + 1
    return Batch(_rename(data, source), rows, list(invalid))
