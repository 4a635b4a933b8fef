"""The order of the rows in synthetic extracts: by person, as simulated, or by date, as real
deliveries come.

The generator simulates people in chunks and writes each person's rows together. A hospital's
or a GP system's monthly delivery comes in date order instead, and the two orders cost the
pipeline differently (pseudonyms no longer repeat within a row group, look-ups meet a new person
at every row: ``docs/performance.md``, "extracts in date order"). ``riskstrat synth --order date``
writes the same rows sorted by each table's first date column, so that tests and benchmarks can
run on the order real extracts have.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from riskstrat import duck
from riskstrat.atomic import move_into_place, partial_path
from riskstrat.schema import TABLES, ColumnType

__all__ = ["Order", "date_column", "write_in_date_order"]


class Order(StrEnum):
    """Rows of the tables that name people: each person's together, or sorted by date."""

    PERSON = "person"
    DATE = "date"


def date_column(table: str) -> str | None:
    """The column a table's rows are sorted by in date order: its first date column
    (``registration_start``, ``event_date``, ``issue_date``, ``admission_date``, ...), for a
    contract table that names people; None for tables that name no one (reference tables)."""
    spec = TABLES.get(table)
    if spec is None or not any(c.name == "nhs_number" for c in spec.columns):
        return None
    return next((c.name for c in spec.columns if c.type is ColumnType.DATE), None)


def write_in_date_order(source: Path, target: Path, column: str, spill: Path) -> None:
    """Write Parquet file ``source``'s rows to ``target`` sorted by ``column`` (its text where
    faults made it text; missing dates last), rows with the same date in their order in
    ``source``, so that the same file always gives the same bytes. DuckDB sorts, spilling under
    ``spill``; ``target`` appears whole or not at all (``source`` may be ``target``)."""
    con = duck.connect(spill_dir=spill)
    tmp = partial_path(target)

    def quoted(path: Path) -> str:
        return "'" + path.as_posix().replace("'", "''") + "'"

    try:
        con.execute(
            f"COPY (SELECT * EXCLUDE (file_row_number) FROM read_parquet({quoted(source)}, file_row_number = true) "
            f'ORDER BY "{column}" NULLS LAST, file_row_number) TO {quoted(tmp)} '
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)"
        )
    finally:
        con.close()
    move_into_place(tmp, target)
