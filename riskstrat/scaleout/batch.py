"""The monthly batch with its heavy stages on Spark (``riskstrat run --engine spark``).

The same pipeline as a run on this machine (:data:`riskstrat.stages.pipeline.PIPELINE`: the
same stages in the same order, the same skips, dates and conditions, the same run record),
with Spark's stage functions in place of DuckDB's (:func:`spark_functions`): validation on
the driver and pseudonymisation on Spark, features on Spark (the ibis definitions), scoring
with reasons and bands on Spark, export by practice. Training is the one stage that stays on
a single machine: it fits on at most ``training.max_people`` people per date (the model
specification) and runs only when the registry has no champion.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskstrat.config import Config
from riskstrat.scaleout.export import export_by_practice
from riskstrat.scaleout.features import features_on_spark
from riskstrat.scaleout.pseudonymise import pseudonymise_on_spark
from riskstrat.scaleout.score import score_on_spark
from riskstrat.stages.export import ExportResult
from riskstrat.stages.features import FeaturesResult
from riskstrat.stages.pipeline import Run, StageName, run_pipeline
from riskstrat.stages.pseudonymise import PseudonymiseReport
from riskstrat.stages.score import ScoreResult
from riskstrat.stages.train import TrainResult
from riskstrat.workdir import WorkDir

__all__ = ["COMMAND", "BatchResult", "run_batch", "spark_functions"]

COMMAND = "riskstrat run --engine spark"


@dataclass
class BatchResult:
    """What the stages of one Spark batch returned (``None``: the stage was skipped)."""

    pseudonymise: PseudonymiseReport | None = None
    features: FeaturesResult | None = None  # at D
    trained: TrainResult | None = None
    scored: ScoreResult | None = None
    exported: ExportResult | None = None


def spark_functions(spark) -> dict[StageName, Callable[..., Any]]:
    """The stage functions of the Spark batch, by stage (training stays on the driver)."""
    return {
        StageName.PSEUDONYMISE: functools.partial(pseudonymise_on_spark, spark),
        StageName.FEATURES: functools.partial(features_on_spark, spark),
        StageName.SCORE: functools.partial(score_on_spark, spark),
        StageName.EXPORT: functools.partial(export_by_practice, spark),
    }


def run_batch(
    spark,
    extracts: Path,
    workdir: Path,
    as_of: dt.date,
    config: Config,
    pseudonym_key: str,
    vault_key: str | None,
    tracking_uri: str | None = None,
    truth: Path | None = None,
    progress=None,
    say=None,
    show=None,
) -> BatchResult:
    """:func:`riskstrat.stages.pipeline.run_pipeline` with :func:`spark_functions`.

    ``progress`` opens a progress display for pseudonymisation (a context manager factory, as
    :class:`~riskstrat.stages.pipeline.Run` takes it); ``say(text)`` is told what starts;
    ``show(stage, result)`` is given each stage's result as it comes.
    """
    result = BatchResult()

    def keep(name: StageName, value: Any) -> None:
        if name is StageName.PSEUDONYMISE:
            result.pseudonymise = value
        elif name is StageName.FEATURES and value.path == WorkDir(workdir).features(as_of):
            result.features = value
        elif name is StageName.TRAIN:
            result.trained = value
        elif name is StageName.SCORE:
            result.scored = value
        elif name is StageName.EXPORT:
            result.exported = value
        if show is not None:
            show(name, value)

    run = Run(
        extracts,
        workdir,
        as_of,
        config,
        pseudonym_key,
        vault_key,
        tracking_uri,
        truth,
        COMMAND,
        progress,
        say or (lambda _text: None),
        keep,
        functions=spark_functions(spark),
    )
    run_pipeline(run)
    return result
