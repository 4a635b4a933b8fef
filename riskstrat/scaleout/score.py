"""Scoring on Spark with the registered MLflow model, its reasons and population-wide bands.

The model is loaded once on the driver through :mod:`riskstrat.tracking` (the only module
that imports MLflow) and travels to the executors inside the scoring function. Each
executor scores its people with :func:`riskstrat.stages.score.score_people`, the code of
``riskstrat score``: the pyfunc's calibrated probability, ``model_score`` (the sum of the
TreeSHAP contributions), three reasons and up to three of each kind (:func:`riskstrat.scoring.reasons`).

Bands are shares of the whole population, so they cannot be given per partition: the
scored people are sorted once across the cluster by (risk, model score, pseudonym), each
partition numbers its own rows, the driver adds up the partition sizes (one number per
partition), and every person's global rank gives the band by the rule of
:func:`riskstrat.scoring.assign_bands` (:func:`riskstrat.scoring.bands_of_ranks`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from riskstrat import tracking
from riskstrat.atomic import replacing
from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog, file_checksum
from riskstrat.privacy.optout import Use
from riskstrat.scaleout.session import remove, spark_path
from riskstrat.scoring import bands_of_ranks, reason_inputs
from riskstrat.stages.features import features_path
from riskstrat.stages.objections import without_objectors
from riskstrat.stages.resources import named_stage
from riskstrat.stages.score import DEFAULT_MODEL_URI, ScoreResult, score_people, scores_path
from riskstrat.workdir import WorkDir

__all__ = ["dataset_checksum", "score_on_spark"]

_REASONS = "reason_1 string, reason_2 string, reason_3 string, actionable_reasons string, background_reasons string"
_SCORED = f"pseudonym string, risk_score double, model_score double, {_REASONS}"
_BANDED = f"pseudonym string, risk_score double, model_score double, risk_band string, {_REASONS}"
_COLUMNS = [
    "pseudonym",
    "risk_score",
    "model_score",
    "risk_band",
    "reason_1",
    "reason_2",
    "reason_3",
    "actionable_reasons",
    "background_reasons",
]


def dataset_checksum(path: Path) -> str:
    """SHA-256 of a Parquet file, or of a dataset's part files (names and checksums, in order)."""
    if not path.is_dir():
        return file_checksum(path)
    digest = hashlib.sha256()
    for part in sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_"))):
        digest.update(f"{part.relative_to(path).as_posix()} {file_checksum(part)}\n".encode())
    return digest.hexdigest()


#: MLflow signature types -> Spark SQL types
_SPARK_TYPES = {"double": "double", "float": "float", "long": "bigint", "integer": "int", "string": "string"}


def _as_signed(feats, model, extra: list[str]):
    """The model's inputs with the types of its signature (schema enforcement refuses others),
    and the ``extra`` columns their reasons name, as they are.

    Spark writes every feature with its declared type; the DuckDB feature stage writes some
    counts (sums) as doubles, and a model trained on those declares doubles.
    """
    from pyspark.sql import functions as F

    declared = {c.name: c.type.name for c in model.metadata.get_input_schema().inputs}
    signed = [F.col(n).cast(_SPARK_TYPES.get(t, t)).alias(n) for n, t in declared.items()]
    return feats.select("pseudonym", *signed, *extra)


def _score(model, estimator, inputs: list[str], batches):
    """mapInPandas on the executors: people's features in, scores and reasons out."""
    for feats in batches:
        if len(feats):
            yield score_people(model, estimator, inputs, feats)


def _number(batches):
    """mapInPandas after the global sort: each row's partition and place in it."""
    from pyspark import TaskContext

    part, start = TaskContext.get().partitionId(), 0
    for b in batches:
        yield b.assign(_part=part, _pos=np.arange(start, start + len(b), dtype=np.int64))
        start += len(b)


def _band(offsets: dict[int, int], people: int, bands: list[tuple[str, float]], batches):
    """mapInPandas: global rank = rows in earlier partitions + place in the partition + 1."""
    for b in batches:
        rank = b["_part"].map(offsets).to_numpy(dtype=np.int64) + b["_pos"].to_numpy() + 1
        yield b.assign(risk_band=bands_of_ranks(rank, people, bands).astype(str))[_COLUMNS]


@named_stage("score")
def score_on_spark(
    spark, workdir: Path, as_of: dt.date, model_uri: str | None = None, tracking_uri: str | None = None
) -> ScoreResult:
    """Score the population at ``as_of`` on Spark: ``W/pseudonymised/scores/<D>.parquet`` (a
    dataset sorted by pseudonym) and ``W/reports/score_<D>.json``, as ``riskstrat score``.

    Needs ``features_<D>`` (:func:`riskstrat.scaleout.features.features_on_spark`).
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    wd = WorkDir(workdir)
    model_uri = model_uri or DEFAULT_MODEL_URI
    feats_path = features_path(workdir, as_of)
    if not feats_path.exists():
        raise RiskstratError(f"{workdir}: no features at {as_of}: build them first")
    loaded = tracking.load_registered(workdir, tracking_uri, model_uri)
    inputs = list(loaded.input_names)
    extra = reason_inputs(inputs)
    feats = spark.read.parquet(spark_path(feats_path)).select("pseudonym", *inputs, *extra)
    population = feats.count()
    feats = without_objectors(feats, wd, Use.SCORING)
    work = wd.scores_work(as_of)
    shutil.rmtree(work, ignore_errors=True)
    try:
        # 1. risk, model score and reasons, once, on the executors
        score_fn = functools.partial(_score, loaded.model, loaded.estimator, inputs)
        _as_signed(feats, loaded.model, extra).mapInPandas(score_fn, _SCORED).write.parquet(spark_path(work / "scored"))
        scored = spark.read.parquet(spark_path(work / "scored"))
        people = scored.count()
        if people == 0:
            raise RiskstratError(f"{workdir}: no one to score at {as_of} (the population is empty or has opted out)")
        # 2. one sort across the cluster; each partition numbers its rows (written, so the
        #    numbering is read back rather than recomputed)
        order = [F.col("risk_score").desc(), F.col("model_score").desc(), F.col("pseudonym").asc()]
        numbered = scored.orderBy(*order).mapInPandas(_number, f"{_SCORED}, _part int, _pos long")
        numbered.write.parquet(spark_path(work / "numbered"))
        numbered = spark.read.parquet(spark_path(work / "numbered"))
        sizes = sorted((r["_part"], r["count"]) for r in numbered.groupBy("_part").count().collect())
        offsets, total = {}, 0
        for part, n in sizes:
            offsets[part], total = total, total + n
        # 3. bands from the global rank
        bands = [(b["name"], float(b["top_share"])) for b in loaded.risk_bands]
        banded = numbered.mapInPandas(functools.partial(_band, offsets, people, bands), _BANDED)
        out = scores_path(workdir, as_of)
        with replacing(out) as tmp:
            banded.orderBy("pseudonym").write.parquet(spark_path(tmp), compression="zstd")
            remove(out)  # a file from DuckDB or a directory from Spark
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = spark.read.parquet(spark_path(out))
    counts = dict(result.groupBy("risk_band").count().collect())
    mean_risk = result.agg(F.avg("risk_score")).first()[0]
    manifest = {
        "as_of": str(as_of),
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "run_id": loaded.run_id,
        "people_scored": people,
        "excluded_by_opt_out_policy": population - people,
        "people_by_band": {name: int(counts.get(name, 0)) for name, _ in bands},
        "risk_bands": [{"name": name, "top_share": share} for name, share in bands],
        "mean_risk": round(float(mean_risk), 6),
        "checksums": {"features": dataset_checksum(feats_path), "scores": dataset_checksum(out)},
        "engine": "spark",
    }
    wd.reports.mkdir(parents=True, exist_ok=True)
    wd.score_report(as_of).write_text(json.dumps(manifest, indent=2) + "\n")
    AuditLog(wd.audit).record_stage(
        f"riskstrat score --as-of {as_of} --model {model_uri} --engine spark",
        {"features": manifest["checksums"]["features"]},
        {"people_scored": people, "excluded": population - people},
        "succeeded",
        model=loaded.name,
        version=loaded.version,
    )
    return ScoreResult.of(out, manifest, time.perf_counter() - started)
