"""The monthly batch on Apache Spark, for regions and national teams beyond one machine.

The same stages as ``riskstrat run`` and the same definitions, with the heavy work on a
Spark cluster (Databricks, Google Dataproc, or a local session in the tests):

* :mod:`~riskstrat.scaleout.pseudonymise` — validation and quarantine on the driver (the
  existing streaming path), then opt-outs and keyed pseudonyms of the event tables on Spark;
* :mod:`~riskstrat.scaleout.features` — the ibis feature definitions on Spark's backend;
* :mod:`~riskstrat.scaleout.score` — the registered MLflow model, its reasons and bands
  taken over the whole population, on Spark;
* :mod:`~riskstrat.scaleout.export` — practice lists, one practice at a time from a table
  partitioned by practice, and the commissioner outputs, with the functions of
  :mod:`riskstrat.outputs`;
* :mod:`~riskstrat.scaleout.batch` — all of it in order (``riskstrat run --engine spark``).

Outputs are the same tables as the DuckDB path's (the tests show it), written as Parquet
datasets (directories of part files) under the same names. ``docs/scale-out.md`` says how
to run it on a cluster.
"""

from riskstrat.scaleout.batch import BatchResult, run_batch
from riskstrat.scaleout.session import cluster_session, spark_path

__all__ = ["BatchResult", "cluster_session", "run_batch", "spark_path"]
