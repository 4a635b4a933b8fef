"""Features on Spark: the registered ibis definitions compiled to Spark SQL and written by
the executors (no table passes through the driver)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from riskstrat.atomic import replacing
from riskstrat.features import feature_names, feature_table
from riskstrat.features.engine import connect, load_sources
from riskstrat.features.registry import Dtype, all_features
from riskstrat.modelling.selection import PeopleShare
from riskstrat.privacy.audit import AuditLog
from riskstrat.scaleout.session import remove, spark_path
from riskstrat.stages.features import FeaturesResult
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = ["features_on_spark"]

_SPARK_TYPES = {Dtype.INT: "bigint", Dtype.FLOAT: "double", Dtype.STRING: "string"}


@named_stage("features")
def features_on_spark(spark, workdir: Path, as_of: dt.date, sample: PeopleShare | None = None) -> FeaturesResult:
    """Write ``W/pseudonymised/features/<D>.parquet`` (a Parquet dataset, sorted by pseudonym):
    :func:`riskstrat.features.feature_table` at ``as_of`` on the pseudonymised tables, which
    either engine may have written. The run is audited.

    ``sample`` (the share of people a training date needs) is not applied: a cluster builds the
    whole population, and training keeps the same people from it."""
    from pyspark.sql import functions as F

    wd = WorkDir(workdir)
    started = time.perf_counter()
    con = connect("spark", spark)
    expr = feature_table(load_sources(con, wd.linked), as_of)
    out = wd.features(as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    con._run_pre_execute_hooks(expr)  # registers the empty stand-ins of absent optional tables
    frame = con.raw_sql(con.compile(expr))
    # Each feature with its declared type: ibis leaves out casts it thinks are no-ops, and
    # Spark's own result types can be narrower (e.g. int for a declared int64).
    declared = {f.name: _SPARK_TYPES[f.dtype] for _, f in all_features()}
    frame = frame.select("pseudonym", *[F.col(c).cast(declared[c]).alias(c) for c in frame.columns if c != "pseudonym"])
    with replacing(out) as tmp:
        frame.write.parquet(spark_path(tmp), compression="zstd")
        remove(out)  # a file from DuckDB or a directory from Spark
    people = spark.read.parquet(spark_path(out)).count()
    result = FeaturesResult(out, people, len(feature_names()), time.perf_counter() - started, "spark")
    AuditLog(wd.audit).record_stage(
        f"riskstrat features --as-of {as_of} --engine spark",
        {},
        {"people": result.people, "features": result.features},
        "succeeded",
        engine="spark",
    )
    return result
