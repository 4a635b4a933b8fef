"""Export from Spark's scores: practice lists one practice at a time, commissioner outputs.

Spark joins the scores to the feature columns the outputs show and writes them partitioned
by practice (``W/pseudonymised/scores/.listed_<D>/practice_code=<code>/``), so the driver reads one
practice's people at a time, however large the region. Each list and page is made by the
functions of ``riskstrat export`` (:func:`riskstrat.outputs.direct_care.practice_list`
through the vault, :func:`riskstrat.outputs.html.practice_html`), so the files are the
same byte for byte. The commissioner cohort table is record level, with cohorts defined by
shares of the whole population: its input columns are collected to the driver and
:func:`riskstrat.outputs.commissioner.cohort_table` and
:func:`~riskstrat.outputs.commissioner.aggregates` run there (about 1 GB of driver memory
per 5 million people).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from riskstrat.config import Config
from riskstrat.errors import KeyMissingError, RiskstratError
from riskstrat.outputs.commissioner import COHORT_INPUTS
from riskstrat.outputs.direct_care import KEY_COUNTS
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.optout import Use
from riskstrat.scaleout.session import spark_path
from riskstrat.stages.export import (
    ExportResult,
    Month,
    hold_out,
    publish_month,
    record_exposure,
    write_commissioner_outputs,
    write_practice_lists,
)
from riskstrat.stages.features import features_path
from riskstrat.stages.objections import without_objectors
from riskstrat.stages.resources import named_stage
from riskstrat.stages.score import scores_path
from riskstrat.workdir import WorkDir

__all__ = ["export_by_practice"]

#: the feature columns the outputs show or use (as ``riskstrat export`` reads them)
_FEATURE_COLUMNS = ["pseudonym", *dict.fromkeys([*COHORT_INPUTS, "age_years", "sex", *KEY_COUNTS])]


def _practice_rows(listed: Path, code: str, empty: pd.DataFrame) -> pd.DataFrame:
    part = listed / f"practice_code={code}"
    if not part.is_dir():
        return empty
    frame = pq.read_table(part).to_pandas()
    frame.insert(0, "practice_code", code)
    return frame


@named_stage("export")
def export_by_practice(
    spark,
    workdir: Path,
    as_of: dt.date,
    vault_key: str | None,
    config: Config | None = None,
    region_key: str | None = None,
) -> ExportResult:
    """Direct-care lists and commissioner outputs at ``as_of`` from scores written by Spark
    (or DuckDB): the same files, in the same places, published the same way, as ``riskstrat export``
    (the randomised hold-out left off the lists, the exposure log written)."""
    config = config or Config()
    started = time.perf_counter()
    wd = WorkDir(workdir)
    if not scores_path(workdir, as_of).exists():
        raise RiskstratError(f"{workdir}: no scores at {as_of}: score first")
    holdout = hold_out(wd, as_of, config, region_key)
    scores = spark.read.parquet(spark_path(scores_path(workdir, as_of)))
    feats = spark.read.parquet(spark_path(features_path(workdir, as_of))).select(*_FEATURE_COLUMNS)
    scored = scores.join(feats, "pseudonym")
    audit = AuditLog(wd.audit)
    month = Month(wd, as_of)
    # Commissioners: pseudonymised cohort table and suppressed aggregates, on the driver.
    view = without_objectors(scored, wd, Use.COMMISSIONER)
    people = view.select("pseudonym", "risk_score", "risk_band", *COHORT_INPUTS).toArrow().to_pandas()
    cohort = write_commissioner_outputs(
        wd, month.folder(wd.commissioner), as_of, people, config.disclosure, config.tracking_uri
    )
    # Direct care: each practice's own patients, through the vault, one practice at a time.
    practices = pq.read_table(wd.table("ref_practices"), columns=["practice_code"]).num_rows  # a file or Spark's folder
    note, counts, listed = "", {}, []
    if not wd.vault.exists():
        note = "no direct-care lists: the registrations were pseudonymised at source, so no one can be re-identified"
    elif vault_key is None:
        raise KeyMissingError("no key: set RISKSTRAT_VAULT_KEY (or RISKSTRAT_VAULT_KEY_FILE) to export practice lists")
    else:
        direct = without_objectors(scored, wd, Use.DIRECT_CARE)
        if holdout.share > 0:
            held = spark.createDataFrame([(p,) for p in sorted(holdout.people)], "pseudonym string")
            direct = direct.join(held, "pseudonym", "left_anti")
        by_practice = wd.listed(as_of)
        shutil.rmtree(by_practice, ignore_errors=True)
        try:
            direct.repartition("practice_code").write.partitionBy("practice_code").parquet(spark_path(by_practice))
            empty = direct.limit(0).toArrow().to_pandas()
            counts = write_practice_lists(
                wd,
                month.folder(wd.direct_care),
                as_of,
                vault_key,
                lambda code: _practice_rows(by_practice, code, empty),
                audit,
                config.practice_list,
                listed,
                holdout.share > 0,
            )
        finally:
            shutil.rmtree(by_practice, ignore_errors=True)
    record_exposure(wd, as_of, holdout, listed)
    command = f"riskstrat export --as-of {as_of} --engine spark"
    return publish_month(wd, month, as_of, command, practices, len(cohort), counts, note, started, config)
