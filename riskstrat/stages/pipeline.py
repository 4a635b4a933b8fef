"""The pipeline, declared once: its stages in order, what each reads and writes, and one run.

:data:`PIPELINE` lists the stages of the monthly batch (pseudonymise, features, train, score,
export), each with its stage function and the places of the work directory it reads and writes
(:class:`Place`, the :class:`riskstrat.workdir.WorkDir` places and the model registry).
:func:`run_pipeline` runs them in that order for ``riskstrat run`` and ``riskstrat demo``; the
notebook calls the same stage functions one at a time.

A run (``run_pipeline``):

1. **pseudonymise** the extracts, unless it already ran today on the same extracts,
   configuration and key and its outputs are untouched;
2. **features** of the population at D and, when no model is registered as champion, of every
   date training at ``latest_training_as_of(D)`` reads (D minus two horizons of the model
   specification, and the dates before and after it) — those tables for only the share of
   people training reads (``training.max_people``) — each date skipped when its stage record
   is current;
3. **train** there when no champion is registered;
4. **score** the population at D with the champion (skipped when features, opt-outs and model
   are unchanged);
5. **export** practice lists (less the randomised hold-out, when configured) and commissioner
   outputs at D, and the exposure log;
6. **monitor** the scores at D: population stability, performance expected without labels, the
   realised performance of the scores a horizon earlier, warnings.

Each stage is timed with its peak memory; the record goes to ``W/reports/run_<D>.json`` with the
run's warnings (export's and monitoring's). What
a run says goes through ``say(text)`` and the results of pseudonymisation, training and export
through ``show(stage, result)``: the command line prints them; this module prints nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from riskstrat import tracking
from riskstrat.config import Config
from riskstrat.modelling.spec import ModelSpec, load_spec
from riskstrat.privacy.audit import AuditLog
from riskstrat.stages import manifest
from riskstrat.stages.clock import RunClock
from riskstrat.stages.export import export
from riskstrat.stages.features import build_features
from riskstrat.stages.features import stage_inputs as features_inputs
from riskstrat.stages.features import stage_name as features_stage
from riskstrat.stages.isolated import in_own_process
from riskstrat.stages.lock import held
from riskstrat.stages.monitor import monitor
from riskstrat.stages.pseudonymise import OWN_PROCESS as PSEUDONYMISE_OWN_PROCESS
from riskstrat.stages.pseudonymise import STAGE as PSEUDONYMISE_RECORD
from riskstrat.stages.pseudonymise import extract_checksums, pseudonymise
from riskstrat.stages.pseudonymise import stage_inputs as pseudonymise_inputs
from riskstrat.stages.score import score
from riskstrat.stages.score import stage_inputs as score_inputs
from riskstrat.stages.score import stage_name as score_stage
from riskstrat.stages.train import dates_to_train, run_training_as_of, train, training_share
from riskstrat.workdir import WorkDir

__all__ = ["PIPELINE", "Place", "Run", "Stage", "StageName", "run_pipeline", "stage"]


class StageName(StrEnum):
    PSEUDONYMISE = "pseudonymise"
    FEATURES = "features"
    TRAIN = "train"
    SCORE = "score"
    EXPORT = "export"
    MONITOR = "monitor"


class Place(StrEnum):
    """What a stage reads or writes: the extracts, a place of the work directory, the registry."""

    EXTRACTS = "extracts"  # the data provider's files (contract v1), outside W
    QUARANTINE = "W/identifiable/quarantine/"
    VAULT = "W/identifiable/vault.bin"
    LINKED = "W/pseudonymised/linked/<table>.parquet"
    FEATURES = "W/pseudonymised/features/<D>.parquet"
    MODEL = "the model registry (MLflow: W/mlflow.db unless configured)"
    SCORES = "W/pseudonymised/scores/<D>.parquet"
    DIRECT_CARE = "W/direct_care/<D>/<practice_code>.csv"
    COMMISSIONER = "W/commissioner/<D>/"
    EXPOSURE = "W/pseudonymised/exposure/<D>.parquet"
    MONITORING = "W/pseudonymised/monitoring/<D>.json, W/reports/monitoring_<D>.html"
    #: what earlier runs left: their exposure logs (training) and their scores (realised performance)
    EARLIER_RUNS = "W/pseudonymised/exposure/<earlier D>.parquet, W/pseudonymised/scores/<earlier D>.parquet"


#: places no stage of the pipeline writes in this run: they come from outside it (or from earlier runs)
EXTERNAL = frozenset({Place.EXTRACTS, Place.EARLIER_RUNS})


@dataclass
class Run:
    """One run of the pipeline: its settings, and what the stages found out on the way."""

    extracts: Path
    workdir: Path
    as_of: dt.date
    config: Config
    pseudonym_key: str
    vault_key: str | None
    tracking_uri: str | None = None
    truth: Path | None = None
    command: str = "riskstrat run"
    #: opens a progress display for pseudonymisation; yields its callback ``(table, rows)``
    progress: Callable[[], AbstractContextManager[Callable[[str, int], None]]] | None = None
    say: Callable[[str], None] = field(default=lambda _text: None)
    show: Callable[[StageName, Any], None] = field(default=lambda _stage, _result: None)
    clock: RunClock = field(default_factory=RunClock)
    spec: ModelSpec | None = None
    train_as_of: dt.date | None = None
    must_train: bool = False
    #: stage functions used in place of :data:`PIPELINE`'s, by stage: the Spark batch
    #: (:func:`riskstrat.scaleout.run_batch`) runs the same pipeline with its own
    functions: dict[StageName, Callable[..., Any]] = field(default_factory=dict)
    #: what the stages warned about (export's and monitoring's), for the run summary
    warnings: list[str] = field(default_factory=list)

    @property
    def wd(self) -> WorkDir:
        return WorkDir(self.workdir)

    def function(self, name: StageName) -> Callable[..., Any]:
        """The function that carries out stage ``name`` in this run."""
        return self.functions.get(name) or stage(name).function

    def call(self, name: StageName, *args, progress=None, **kwargs) -> Any:
        """Carry out stage ``name``: its function, in a process of its own when the stage is
        declared so (:attr:`Stage.own_process`; a function passed in ``functions``, such as
        Spark's, runs here, beside its session)."""
        if name not in self.functions and stage(name).own_process:
            return in_own_process(name.value, stage(name).function, *args, progress=progress, **kwargs)
        return self.function(name)(*args, progress=progress, **kwargs)


@dataclass(frozen=True)
class Stage:
    """A stage of the pipeline: its name, its stage function, the places it reads and writes,
    ``step``, how a run drives it (skips, dates, conditions), and whether it runs in a process
    of its own (:mod:`riskstrat.stages.isolated`: its memory is the machine's again when it ends)."""

    name: StageName
    function: Callable[..., Any]
    inputs: tuple[Place, ...]
    outputs: tuple[Place, ...]
    step: Callable[[Run, str], None]
    own_process: bool = False


def _pseudonymise(run: Run, number: str) -> None:
    run.say(f"{number} validate, apply opt-outs, pseudonymise -> {run.workdir}")
    with run.clock.stage("pseudonymise") as timing:
        if _pseudonymised_unchanged(run):
            timing.skipped = True
            run.say("      extracts, configuration and key unchanged since the last run today: kept")
            return
        with run.progress() if run.progress is not None else nullcontext(None) as progress:
            report = run.call(
                StageName.PSEUDONYMISE,
                run.extracts,
                run.workdir,
                run.config,
                run.pseudonym_key,
                run.vault_key,
                progress=progress,
                command=run.command,
            )
    run.show(StageName.PSEUDONYMISE, report)


def _pseudonymised_unchanged(run: Run) -> bool:
    """True when pseudonymisation already ran today on these extracts, configuration and key
    and its outputs are untouched since."""
    if not manifest.record_path(run.wd, PSEUDONYMISE_RECORD).exists():
        return False
    inputs = pseudonymise_inputs(extract_checksums(run.extracts, run.config), run.config, run.pseudonym_key, None)
    return manifest.is_current(run.wd, PSEUDONYMISE_RECORD, inputs)


def _features(run: Run, number: str) -> None:
    spec = run.spec = load_spec()
    tracking.configure(run.workdir, run.tracking_uri, spec.name, end_abandoned=held(run.workdir))
    completed = tracking.complete_pending(spec.name, AuditLog(run.wd.audit))
    if completed is not None:
        run.say(f"      a run stopped after registering {spec.name} version {completed}: made champion now")
    run.must_train = tracking.champion_version(spec.name) is None
    run.train_as_of = run_training_as_of(run.workdir, run.as_of, spec)
    dates = [run.as_of, *(dates_to_train(run.workdir, run.train_as_of, spec) if run.must_train else [])]
    # the training dates' tables hold only the people training reads (training.max_people)
    share = training_share(run.workdir, run.train_as_of, spec) if run.must_train else None
    run.say(f"{number} features at {', '.join(str(d) for d in dates)}")
    for d in dates:
        sample = None if d == run.as_of else share
        with run.clock.stage(f"features at {d}") as timing:
            if manifest.is_current(run.wd, features_stage(d), features_inputs(run.workdir, d, sample)):
                timing.skipped = True
                run.say(f"      {d}: pseudonymised tables and feature definitions unchanged: kept")
                continue
            built = run.function(StageName.FEATURES)(run.workdir, d, sample=sample)
        run.show(StageName.FEATURES, built)
        whom = f" (training's {sample.share:.1%} of the population)" if built.sample else ""
        run.say(f"      {d}: {built.people:,} people{whom} x {built.features} features in {built.seconds:.1f} s")


def _train(run: Run, number: str) -> None:
    if not run.must_train:
        run.say(f"{number} a champion is registered: no training")
        return
    run.say(f"{number} no champion registered: train at {run.train_as_of} and the years before")
    key = run.pseudonym_key if run.truth is not None else None
    with run.clock.stage(f"train at {run.train_as_of}"):
        trained = run.function(StageName.TRAIN)(
            run.workdir, run.train_as_of, None, run.tracking_uri, run.truth, key, run.config
        )
        _give_back_memory()
    run.show(StageName.TRAIN, trained)


def _score(run: Run, number: str) -> None:
    name = run.spec.name if run.spec is not None else load_spec().name
    champion = f"{name} version {tracking.champion_version(name)}"
    with run.clock.stage(f"score at {run.as_of}") as timing:
        if manifest.is_current(run.wd, score_stage(run.as_of), score_inputs(run.workdir, run.as_of, champion)):
            timing.skipped = True
            run.say(f"{number} features, opt-outs and model ({champion}) unchanged: scores at {run.as_of} kept")
            return
        scored = run.function(StageName.SCORE)(run.workdir, run.as_of, None, run.tracking_uri)
    run.show(StageName.SCORE, scored)
    bands = ", ".join(f"{k} {v:,}" for k, v in scored.manifest["people_by_band"].items())
    run.say(f"{number} scored {scored.manifest['people_scored']:,} people at {run.as_of} ({bands}) -> {scored.path}")


def _export(run: Run, number: str) -> None:
    run.say(f"{number} outputs")
    with run.clock.stage(f"export at {run.as_of}"):
        exported = run.function(StageName.EXPORT)(run.workdir, run.as_of, run.vault_key, run.config, run.pseudonym_key)
    run.warnings.extend(exported.warnings)
    run.show(StageName.EXPORT, exported)


def _monitor(run: Run, number: str) -> None:
    run.say(f"{number} monitoring")
    with run.clock.stage(f"monitor at {run.as_of}"):
        monitored = monitor(run.workdir, run.as_of, run.tracking_uri, run.config)
    run.warnings.extend(monitored.warnings)
    run.show(StageName.MONITOR, monitored)


def _give_back_memory() -> None:
    """Return the memory training freed to the operating system before scoring starts (the C
    allocator otherwise keeps it, and the monthly job's peak would be training's plus scoring's)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


#: the stages of a run, in order
PIPELINE: tuple[Stage, ...] = (
    Stage(
        StageName.PSEUDONYMISE,
        pseudonymise,
        (Place.EXTRACTS,),
        (Place.QUARANTINE, Place.VAULT, Place.LINKED),
        _pseudonymise,
        own_process=PSEUDONYMISE_OWN_PROCESS,
    ),
    Stage(StageName.FEATURES, build_features, (Place.LINKED,), (Place.FEATURES,), _features),
    Stage(StageName.TRAIN, train, (Place.LINKED, Place.FEATURES, Place.EARLIER_RUNS), (Place.MODEL,), _train),
    Stage(StageName.SCORE, score, (Place.FEATURES, Place.LINKED, Place.MODEL), (Place.SCORES,), _score),
    Stage(
        StageName.EXPORT,
        export,
        (Place.SCORES, Place.FEATURES, Place.LINKED, Place.VAULT, Place.QUARANTINE, Place.MODEL),
        (Place.DIRECT_CARE, Place.COMMISSIONER, Place.EXPOSURE),
        _export,
    ),
    Stage(
        StageName.MONITOR,
        monitor,
        (Place.SCORES, Place.FEATURES, Place.LINKED, Place.EARLIER_RUNS, Place.MODEL),
        (Place.MONITORING, Place.MODEL),
        _monitor,
    ),
)


def stage(name: StageName | str) -> Stage:
    """The stage of :data:`PIPELINE` called ``name``."""
    return next(s for s in PIPELINE if s.name == StageName(name))


def run_pipeline(run: Run) -> RunClock:
    """Every stage of :data:`PIPELINE` in order for ``run``; writes ``W/reports/run_<D>.json``
    (each stage's wall time and peak memory, and the run's warnings) and returns the clock."""
    started = time.perf_counter()
    for i, s in enumerate(PIPELINE, start=1):
        s.step(run, f"[{i}/{len(PIPELINE)}]")
    run.clock.write(
        run.wd.run_report(run.as_of),
        as_of=str(run.as_of),
        seconds=round(time.perf_counter() - started, 1),
        warnings=run.warnings,
    )
    return run.clock
