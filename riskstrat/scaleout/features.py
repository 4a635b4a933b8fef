"""Features on Spark: the registered ibis definitions compiled to Spark SQL and written by
the executors (no table passes through the driver)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from riskstrat.errors import named_stage
from riskstrat.features import feature_names, feature_table
from riskstrat.features.engine import connect, load_sources
from riskstrat.privacy.audit import AuditLog
from riskstrat.scaleout.session import remove, spark_path
from riskstrat.stages.features import FeaturesResult, features_path
from riskstrat.workdir import WorkDir

__all__ = ["features_on_spark"]


@named_stage("features")
def features_on_spark(spark, workdir: Path, as_of: dt.date) -> FeaturesResult:
    """Write ``W/pseudonymised/features_<D>.parquet`` (a Parquet dataset, sorted by pseudonym):
    :func:`riskstrat.features.feature_table` at ``as_of`` on the pseudonymised tables, which
    either engine may have written. The run is audited."""
    wd = WorkDir(workdir)
    started = time.perf_counter()
    con = connect("spark", spark)
    expr = feature_table(load_sources(con, wd.pseudonymised), as_of)
    out = features_path(workdir, as_of)
    tmp = out.with_name(f".{out.name}.partial")
    remove(tmp)
    con.to_parquet_dir(expr, spark_path(tmp), options={"compression": "zstd"})
    remove(out)
    tmp.replace(out)
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
