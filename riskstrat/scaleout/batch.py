"""The monthly batch with its heavy stages on Spark (``riskstrat run --engine spark``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from riskstrat import tracking
from riskstrat.config import Config
from riskstrat.modelling.spec import load_spec
from riskstrat.privacy.audit import AuditLog
from riskstrat.scaleout.export import export_by_practice
from riskstrat.scaleout.features import features_on_spark
from riskstrat.scaleout.pseudonymise import pseudonymise_on_spark
from riskstrat.scaleout.score import score_on_spark
from riskstrat.stages.export import ExportResult
from riskstrat.stages.features import FeaturesResult
from riskstrat.stages.lock import held
from riskstrat.stages.pseudonymise import PseudonymiseReport
from riskstrat.stages.score import ScoreResult
from riskstrat.stages.train import TrainResult, dates_to_train, run_training_as_of, train
from riskstrat.workdir import WorkDir

__all__ = ["BatchResult", "run_batch"]


@dataclass
class BatchResult:
    pseudonymise: PseudonymiseReport
    features: FeaturesResult
    trained: TrainResult | None
    scored: ScoreResult
    exported: ExportResult


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
) -> BatchResult:
    """validate (driver) + pseudonymise (Spark) -> features at D (Spark) -> train when no
    champion is registered (driver) -> score with reasons and bands (Spark) -> export per
    practice (driver, one practice at a time) and commissioner outputs.

    Training is the one stage that stays on a single machine: it fits on at most
    ``training.max_people`` people per date (the model specification), and runs only when
    the registry has no champion; :func:`riskstrat.stages.train.train` builds the features
    of its dates with DuckDB from the pseudonymised tables Spark wrote. ``say(text)``, when
    given, is told what starts.
    """
    say = say or (lambda _text: None)
    say(f"[1/5] validate on the driver, apply opt-outs and pseudonymise on Spark -> {workdir}")
    report = pseudonymise_on_spark(spark, extracts, workdir, config, pseudonym_key, vault_key, progress=progress)
    say(f"[2/5] features at {as_of} on Spark")
    feats = features_on_spark(spark, workdir, as_of)
    spec = load_spec()
    tracking.configure(workdir, tracking_uri, spec.name, end_abandoned=held(workdir))
    trained = None
    tracking.complete_pending(
        spec.name, AuditLog(WorkDir(workdir).audit)
    )  # a version registered just before a kill becomes champion
    if tracking.champion_version(spec.name) is None:
        train_as_of = run_training_as_of(workdir, as_of, spec)
        dates = ", ".join(str(d) for d in dates_to_train(workdir, train_as_of, spec))
        say(f"[3/5] no champion registered: train at {train_as_of} on the driver (features at {dates})")
        trained = train(workdir, train_as_of, None, tracking_uri, truth, pseudonym_key if truth else None)
    else:
        say("[3/5] a champion is registered: no training")
    say(f"[4/5] score the population at {as_of} on Spark")
    scored = score_on_spark(spark, workdir, as_of, None, tracking_uri)
    say("[5/5] practice lists (one practice at a time) and commissioner outputs")
    exported = export_by_practice(spark, workdir, as_of, vault_key, config, pseudonym_key)
    return BatchResult(report, feats, trained, scored, exported)
