"""Small helpers shared by the builders (windows, counts, code-list tables)."""

from __future__ import annotations

import ibis
import pyarrow as pa

from riskstrat import codelists

__all__ = ["days_before", "count_if", "sum_if", "codes_table", "max_if"]


def days_before(d, col):
    """Whole days from ``col`` to ``D`` (1 = the day before D)."""
    return d.delta(col, unit="day")


def count_if(cond):
    return cond.cast("int64").sum()


def sum_if(cond, value):
    return cond.ifelse(value, 0).sum()


def max_if(cond):
    return cond.cast("int64").max()


def codes_table(codes: list[str], **extra: list) -> ibis.Table:
    """An in-memory code list as an ibis table (works on every backend)."""
    return ibis.memtable(pa.table({"code": pa.array([str(c) for c in codes], pa.string()), **extra}))


def pcd(cluster: str) -> list[str]:
    return codelists.snomed_cluster(cluster)
