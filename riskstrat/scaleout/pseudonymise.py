"""Pseudonymisation on Spark: the same tables as ``riskstrat pseudonymise``, row for row.

What runs where, and why:

* **driver** — locating and validating the extracts, quarantine and de-duplication
  (:func:`riskstrat.ingest.validate.validate_extracts`: streaming Arrow batches, memory
  bounded by the batch, DuckDB out of core for duplicates). The rules are the data contract
  as code and the quarantine holds NHS numbers with the row they came from, so it stays one
  implementation, in the identifiable zone. The staged (typed, de-duplicated) tables it
  writes are what Spark reads.
* **Spark** — one pseudonym per distinct NHS number of any table, computed once on the
  executors with Python's ``hmac`` (:func:`riskstrat.privacy.pseudonym.pseudonymise`, the
  published definition) and joined onto every event table; people excluded from every use
  removed; ``month_of_birth`` in place of the date of birth.
* **driver** — the opt-out policy (:func:`riskstrat.privacy.optout.exclusions` on the small
  ``opt_outs`` table), ``opt_out_uses`` and the encrypted vault of registrations: the same
  functions as the single-machine stage.

The region check, the report (rows read = quarantined + opted out + written, per table) and
the audit record come from :func:`riskstrat.stages.pseudonymise.pseudonymise` itself.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.config import Config
from riskstrat.privacy.pseudonym import PseudonymMap, pseudonymise
from riskstrat.scaleout.session import remove, spark_path
from riskstrat.schema import CARE_REGISTER, PSEUDONYM, TABLES
from riskstrat.stages.pseudonymise import (
    PseudonymiseReport,
    _fill_vault,
    _opt_out_flags,
    _write_opt_out_uses,
    count_opt_outs,
    count_written,
    keep_register,
    objections,
)
from riskstrat.stages.pseudonymise import pseudonymise as pseudonymise_stage
from riskstrat.workdir import WorkDir

__all__ = ["pseudonymise_on_spark"]


def pseudonymise_on_spark(
    spark,
    extracts: Path,
    workdir: Path,
    config: Config,
    pseudonym_key: str,
    vault_key: str | None,
    today: dt.date | None = None,
    progress=None,
    command: str = "riskstrat run --engine spark",
) -> PseudonymiseReport:
    """Validate on the driver, pseudonymise on Spark; see the module docstring.

    Writes ``W/pseudonymised/linked/<table>.parquet`` as Parquet datasets (directories), and in
    ``W/identifiable/`` the quarantine, the vault and the audit log, as the DuckDB stage does.
    """
    write = functools.partial(_run, spark)
    return pseudonymise_stage(
        extracts, workdir, config, pseudonym_key, vault_key, today, progress, command, write=write
    )


def _pseudonyms(key: str, batches):
    """mapInPandas: NHS numbers -> (nhs_number, pseudonym), on the executors."""
    for b in batches:
        numbers = b["nhs_number"].tolist()
        yield pd.DataFrame({"nhs_number": numbers, PSEUDONYM: pseudonymise(numbers, key)})


def _run(spark, wd: WorkDir, config: Config, key: str, vault_key: str | None, report: PseudonymiseReport) -> None:
    from pyspark.sql import functions as F

    staged = {n: wd.staged(n) for n in TABLES if wd.staged(n).exists()}
    frames = {n: spark.read.parquet(spark_path(p)) for n, p in staged.items()}
    identifiable = {
        n for n, df in frames.items() if "nhs_number" in df.columns and not TABLES[n].identifiable_zone_only
    }
    # One pseudonym per distinct NHS number in any table (opt_outs included, as on DuckDB),
    # each hashed once on an executor.
    mapping = None
    if identifiable:
        numbers = functools.reduce(
            lambda a, b: a.union(b), [frames[n].select("nhs_number") for n in sorted(identifiable)]
        )
        numbers = numbers.where(F.col("nhs_number").isNotNull()).distinct()
        schema = f"nhs_number string, {PSEUDONYM} string"
        mapping = numbers.mapInPandas(functools.partial(_pseudonyms, key), schema).persist()
    # Opt-outs: a small table, by pseudonym, with the single-machine stage's own functions.
    found = objections(staged.get("opt_outs"), wd.quarantine)
    objector_map = PseudonymMap(pa.array([], pa.string()), key)
    if found.num_rows and found["identifier_kind"][0].as_py() == "nhs_number":
        objector_map = PseudonymMap(found["identifier"].combine_chunks(), key)
    flags = _opt_out_flags(found, objector_map, config, report)
    removed_ids = flags.filter(flags["all_uses"])[PSEUDONYM].to_pylist()
    removed = spark.createDataFrame(
        pd.DataFrame({PSEUDONYM: pd.Series(removed_ids, dtype=object)}), f"{PSEUDONYM} string"
    )
    for name, path in staged.items():
        if name == "opt_outs":
            count_opt_outs(report, path)
            continue
        if TABLES[name].identifiable_zone_only:
            continue
        _write_table(spark, frames[name], mapping, removed, name, path, wd, name in identifiable, report)
    _write_opt_out_uses(flags.filter(pc.invert(flags["all_uses"])), wd)
    reg_map = None
    if "gp_registrations" in identifiable:
        pairs = frames["gp_registrations"].select("nhs_number").distinct().join(mapping, "nhs_number").toArrow()
        reg_map = PseudonymMap.from_pairs(pairs["nhs_number"].combine_chunks(), pairs[PSEUDONYM].combine_chunks())
    _fill_vault(staged.get("gp_registrations"), reg_map is not None, reg_map, flags, wd, vault_key, report)
    keep_register(staged.get(CARE_REGISTER), wd, vault_key, report)
    if mapping is not None:
        mapping.unpersist()


def _write_table(spark, df, mapping, removed, name: str, path: Path, wd: WorkDir, identifiable: bool, report) -> None:
    """The Spark form of :func:`riskstrat.stages.pseudonymise._write_table`."""
    from pyspark.sql import functions as F

    tbl = TABLES[name]
    select = []
    for c in (c.name for c in tbl.columns if c.name not in ("nhs_number", PSEUDONYM)):
        if c == "date_of_birth":
            select.append(F.trunc(F.col("date_of_birth"), "month").alias("month_of_birth"))
        else:
            select.append(F.col(c))
    if identifiable:
        out = df.join(mapping, "nhs_number").select(F.col(PSEUDONYM), *select)
    elif tbl.identifiable:
        out = df.select(F.col(PSEUDONYM), *select)
    else:
        out = df.select(*select)
    if tbl.identifiable:
        out = out.join(F.broadcast(removed), PSEUDONYM, "left_anti")
    target = wd.table(name)
    remove(target)
    out.write.parquet(spark_path(target), compression="zstd")
    written = spark.read.parquet(spark_path(target)).count()
    count_written(report, name, path, written, identifiable)
