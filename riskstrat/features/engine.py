"""Engines: the same ibis feature definitions run on DuckDB (default) or Apache Spark.

DuckDB is embedded and works out of core over Parquet; Spark is for regions or national
teams that outgrow one machine (NHS England's environments and most ICB platforms run
Databricks). Both read the pseudonymised zone's Parquet files.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat import duck
from riskstrat.errors import RiskstratError
from riskstrat.features.asof import SOURCE_TABLES, Sources
from riskstrat.schema import PERSON_KEY, PSEUDONYM, TABLES, pseudonymised_schema

__all__ = ["Engine", "connect", "load_sources", "spark_session"]


class Engine(StrEnum):
    DUCKDB = "duckdb"
    SPARK = "spark"


def spark_session(cores: int = 2, memory: str = "4g"):
    """A local Spark session (needs Java 17+ and ``pip install riskstrat[spark]``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RiskstratError("the Spark engine needs pyspark: pip install 'riskstrat[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local session talks to itself only
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("riskstrat")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(max(4, cores * 4)))
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def connect(engine: Engine | str, spark=None, spill_dir: Path | None = None, keep_memory: bool = False):
    """An ibis backend. DuckDB's takes riskstrat's one memory limit and thread count
    (:func:`riskstrat.duck.connect`, which explains ``keep_memory``: only for a connection closed
    when its queries are done) and spills to ``spill_dir`` (inside the zone being read); feature
    queries sort their own output, so it need not keep the input's order."""
    engine = Engine(engine)
    if engine is Engine.DUCKDB:
        return ibis.duckdb.from_connection(duck.connect(spill_dir, keep_order=False, keep_memory=keep_memory))
    return ibis.pyspark.connect(spark or spark_session())


def load_sources(con, directory: Path, person_key: bool = False) -> Sources:
    """The pseudonymised tables of ``directory`` as ibis tables; absent optional tables empty.

    ``person_key=True``: when every linked table carries :data:`~riskstrat.schema.PERSON_KEY`
    (written by the DuckDB pseudonymisation), people are keyed by that 32-bit integer, under
    the column name ``pseudonym`` that the builders group and join by, so that they hash an
    integer instead of a 64-character string. The key sorts as the pseudonyms do. Otherwise
    (tables pseudonymised at source or on Spark) the pseudonyms themselves.
    """
    paths = {name: directory / f"{name}.parquet" for name in SOURCE_TABLES}
    keyed = person_key and _keyed(paths.values())
    tables = {}
    for name, path in paths.items():
        if path.exists():
            table = con.read_parquet(str(path))
            if keyed and PSEUDONYM in table.columns:
                table = table.drop(PSEUDONYM).rename({PSEUDONYM: PERSON_KEY})
            tables[name] = table
        elif TABLES[name].required:
            raise RiskstratError(f"{directory}: {name}.parquet is missing: run 'riskstrat pseudonymise' first")
        else:
            empty = pseudonymised_schema(name).empty_table()
            if keyed and PSEUDONYM in empty.column_names:
                empty = empty.drop_columns([PSEUDONYM]).append_column(PSEUDONYM, pa.array([], pa.int32()))
            tables[name] = ibis.memtable(empty)
    return Sources(**tables)


def _keyed(paths) -> bool:
    """True when every existing table that has pseudonyms also has their person keys."""
    names = [pq.read_schema(p).names for p in paths if p.exists()]
    return all(PERSON_KEY in n for n in names if PSEUDONYM in n)
