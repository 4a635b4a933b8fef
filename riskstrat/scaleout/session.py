"""The Spark session of a batch and the paths Spark is given."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from riskstrat.errors import RiskstratError
from riskstrat.features.engine import spark_session

__all__ = ["REQUIRED_CONF", "cluster_session", "remove", "spark_path"]

#: settings every riskstrat session needs, on a laptop or a cluster (dates are days in UTC;
#: ANSI mode off as in the feature tests, so ibis' casts behave as on DuckDB)
REQUIRED_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false"}


def cluster_session():
    """The cluster's session when there is one, else a local one.

    On Databricks the notebook or job already holds a session; under ``spark-submit`` (e.g.
    ``gcloud dataproc jobs submit pyspark``) the master comes from the submission. Only
    outside both is a local session started (:func:`riskstrat.features.engine.spark_session`).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RiskstratError("the Spark engine needs pyspark: pip install 'riskstrat[spark]'") from None
    spark = SparkSession.getActiveSession()
    if spark is None and os.environ.get("PYSPARK_GATEWAY_PORT"):  # started by spark-submit or pyspark
        builder = SparkSession.builder.appName("riskstrat")
        for k, v in REQUIRED_CONF.items():
            builder = builder.config(k, v)
        spark = builder.getOrCreate()
    if spark is None:
        return spark_session()
    for k, v in REQUIRED_CONF.items():
        spark.conf.set(k, v)
    return spark


def spark_path(path: Path) -> str:
    """``path`` as Spark is to read or write it: the absolute POSIX path.

    The work directory must be one path for the driver and every executor: a Unity Catalog
    volume (``/Volumes/...``) on Databricks; on Dataproc a Cloud Storage bucket mounted at the
    same place on every node with ``spark.hadoop.fs.defaultFS=file:///`` (``docs/scale-out.md``).
    """
    return Path(path).absolute().as_posix()


def remove(path: Path) -> None:
    """Remove a table written by either engine: a Parquet file or a directory of parts."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
