"""The one opt-out filter: rows without the people the policy excludes from a use.

Pseudonymisation removes people excluded from every use and flags the rest, per use, in
``opt_out_uses`` (:data:`~riskstrat.stages.pseudonymise.OPT_OUT_USES_TABLE`); training,
scoring and both exports read those flags here, on either engine.
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from riskstrat.privacy.optout import Use
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.workdir import WorkDir

__all__ = ["objectors", "without_objectors"]


def objectors(wd: WorkDir, use: Use) -> set[str]:
    """Pseudonyms of the people the opt-out policy excludes from ``use`` (none without ``opt_out_uses``)."""
    path = wd.table(OPT_OUT_USES_TABLE)
    if not path.exists():
        return set()
    column = Use(use).value
    flags = pq.read_table(path, columns=["pseudonym", column])
    return set(flags.filter(flags[column])["pseudonym"].to_pylist())


def without_objectors(rows: Any, wd: WorkDir, use: Use) -> Any:
    """``rows`` (a pandas or a Spark DataFrame with a ``pseudonym`` column) without the people
    the opt-out policy excludes from ``use``. The flags are small (objectors only): on Spark
    they are read here and broadcast to the join."""
    excluded = objectors(wd, use)
    if not excluded:
        return rows
    if hasattr(rows, "sparkSession"):  # a Spark DataFrame
        from pyspark.sql import functions as F

        people = rows.sparkSession.createDataFrame([(p,) for p in sorted(excluded)], "pseudonym string")
        return rows.join(F.broadcast(people), "pseudonym", "left_anti")
    return rows[~rows["pseudonym"].isin(excluded)]
