"""Helpers for feature tests: tiny pseudonymised tables on either engine."""

from __future__ import annotations

import datetime as dt
import functools

import ibis
import pyarrow as pa

from riskstrat.features.asof import SOURCE_TABLES, Sources
from riskstrat.features.engine import connect, spark_session
from riskstrat.schema import pseudonymised_schema

ENGINES = ("duckdb", "spark")


@functools.cache
def spark():
    return spark_session(cores=2, memory="2g")


@functools.cache
def backend(engine: str):
    return connect(engine, spark() if engine == "spark" else None)


def sources(engine: str, tables: dict[str, list[dict]], practices: tuple[str, ...] = ("Y90001",)) -> Sources:
    """Sources from lists of row dicts (columns left out are null); ref_practices defaults to one practice."""
    con = backend(engine)
    tables = dict(tables)
    tables.setdefault(
        "ref_practices",
        [
            {"practice_code": p, "practice_name": p, "pcn_code": "U90001", "pcn_name": "N", "sub_icb_code": "99X"}
            for p in practices
        ],
    )
    out = {}
    for name in SOURCE_TABLES:
        schema = pseudonymised_schema(name)
        rows = tables.get(name, [])
        data = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in schema}
        out[name] = ibis.memtable(pa.table(data, schema=schema))
    del con  # memtables run on whichever backend executes them
    return Sources(**out)


def person(
    p: str,
    birth: dt.date = dt.date(1950, 1, 1),
    start: dt.date = dt.date(2010, 1, 1),
    end=None,
    practice: str = "Y90001",
    sex: str = "2",
    ethnic: str | None = "A",
    lsoa: str | None = None,
) -> dict:
    return {
        "pseudonym": p,
        "practice_code": practice,
        "registration_start": start,
        "registration_end": end,
        "month_of_birth": birth,
        "sex": sex,
        "ethnic_category": ethnic,
        "lsoa_code": lsoa,
    }


def as_dicts(table: pa.Table) -> dict[str, dict]:
    """Rows keyed by pseudonym."""
    return {r["pseudonym"]: r for r in table.to_pylist()}
