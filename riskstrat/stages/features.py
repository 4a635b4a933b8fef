"""``riskstrat features``: the feature table of the population at D, in the pseudonymised zone."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from riskstrat.errors import RiskstratError
from riskstrat.features import feature_table
from riskstrat.features.engine import Engine, connect, load_sources
from riskstrat.privacy.audit import AuditLog
from riskstrat.workdir import WorkDir

__all__ = ["FeaturesResult", "build_features", "features_path"]


@dataclass
class FeaturesResult:
    path: Path
    people: int
    features: int
    seconds: float
    engine: str


def features_path(workdir: Path, as_of: dt.date) -> Path:
    return WorkDir(workdir).pseudonymised / f"features_{as_of.isoformat()}.parquet"


def build_features(workdir: Path, as_of: dt.date, engine: Engine | str = Engine.DUCKDB, spark=None) -> FeaturesResult:
    """Build and write ``W/pseudonymised/features_<D>.parquet``; the run is audited."""
    wd = WorkDir(workdir)
    if not wd.pseudonymised.is_dir():
        raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
    started = time.perf_counter()
    con = connect(engine, spark)
    src = load_sources(con, wd.pseudonymised)
    table = con.to_pyarrow(feature_table(src, as_of))
    out = features_path(workdir, as_of)
    tmp = out.with_name(f".{out.name}.partial")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)
    result = FeaturesResult(out, table.num_rows, table.num_columns - 1, time.perf_counter() - started, str(engine))
    AuditLog(wd.audit).record_stage(
        f"riskstrat features --as-of {as_of}",
        {},
        {"people": result.people, "features": result.features},
        "succeeded",
        engine=str(engine),
    )
    return result
