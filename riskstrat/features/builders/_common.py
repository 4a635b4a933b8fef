"""Small helpers shared by the builders (windows, counts, code-list tables)."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa

from riskstrat import codelists
from riskstrat.features.asof import population
from riskstrat.features.registry import DAYS_SINCE_NONE, shared

__all__ = [
    "DAYS_SINCE_NONE",
    "amount",
    "codes_table",
    "count_if",
    "days_before",
    "in_last",
    "max_if",
    "population_at",
    "present",
    "starts_with_any",
    "sum_if",
]


#: the population at D (:func:`riskstrat.features.asof.population`) as a shared table: the
#: builders that read people's registrations (demographics, ages in the medicine history)
population_at = shared("population")(population)


def days_before(d, col):
    """Whole days from ``col`` to ``D`` (1 = the day before D)."""
    return d.delta(col, unit="day")


def in_last(col, as_of, days: int):
    """True for records dated in the ``days`` days before D (``days_before(D, col) <= days``),
    written as a comparison with a constant date so that the engine can skip whole row groups
    of a Parquet file by their date statistics instead of computing a difference per row."""
    return col >= ibis.date(as_of - dt.timedelta(days=days))


def count_if(cond):
    return cond.cast("int64").sum()


def sum_if(cond, value):
    return cond.ifelse(value, 0).sum()


def amount(col):
    """A money or measurement column with missing values (null, or NaN from some sources) as 0."""
    x = col.fill_null(0.0)
    return x.isnan().ifelse(0.0, x)


def present(col):
    """True where a numeric value is recorded (not null, not NaN)."""
    return col.notnull() & ~col.fill_null(0.0).isnan()


def max_if(cond):
    return cond.cast("int64").max()


def starts_with_any(col, prefixes) -> ibis.Value:
    """True where ``col`` starts with one of ``prefixes`` (e.g. BNF chapter/section prefixes)."""
    match = ibis.literal(False)
    for p in prefixes:
        match = match | col.startswith(p)
    return match


def codes_table(codes: list[str], **extra: list) -> ibis.Table:
    """An in-memory code list as an ibis table (works on every backend)."""
    return ibis.memtable(pa.table({"code": pa.array([str(c) for c in codes], pa.string()), **extra}))


def pcd(cluster: str) -> list[str]:
    return codelists.snomed_cluster(cluster)
