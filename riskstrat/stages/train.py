"""``riskstrat train``: fit, calibrate, evaluate and register an admission-risk model.

Training happens at an as-of date ``D`` whose outcome window has closed in the data. The
training rows are the populations at ``D`` and at the ``training.as_of_dates - 1`` dates a
horizon apart before it (stacked: one row per person per date, each with its own features and
outcome), keeping only dates with at least a year of data behind them. A person's rows always
go together: to fitting, early stopping or calibration, never to two of them.

Validation is out of time: the population one horizon later (``D + horizon_days``) when its outcome window has
closed too; otherwise people held out of every stacked date (recorded as in-time). Above
``training.max_people``, validation keeps the same share of people as training. The
validation people are split in two halves by a keyed hash of their pseudonym:

* the **selection** half judges the hyperparameter search (Optuna, time-budgeted) and the
  competition between candidate learners (LightGBM, penalised logistic regression);
* the **report** half gives every figure logged, the comparison with the two baselines
  (QAdmissions-like logistic regression and the prior emergency admissions rule, fitted on the
  same rows) and the champion gate: the ``champion`` alias moves to the new version only if it
  beats the current champion on these same people; the decision and its reason are logged.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from riskstrat import __version__, tracking
from riskstrat.config import Config, ExposureHandling
from riskstrat.errors import RiskstratError
from riskstrat.features.asof import cut, population
from riskstrat.features.engine import connect, load_sources
from riskstrat.groups import FAIRNESS_AGE_BANDS, imd_quintile, sex_letter
from riskstrat.labels import data_end, data_start, labels
from riskstrat.modelling.estimators import PriorAdmissionsRule, QAdmissionsLikeLogistic
from riskstrat.modelling.evaluation import evaluate
from riskstrat.modelling.fairness import audit, commissioner_summary
from riskstrat.modelling.monitoring import expected_performance, realised_performance, reference_profile
from riskstrat.modelling.plots import (
    bar_plot,
    calibration_plot,
    decile_plot,
    fairness_calibration_plot,
    fairness_rates_plot,
    roc_plot,
)
from riskstrat.modelling.selection import PeopleShare, compete, person_unit, selection_split
from riskstrat.modelling.spec import ModelSpec, load_spec
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.optout import Use
from riskstrat.privacy.pseudonym import pseudonymise
from riskstrat.stages.exposure import exposed_rows
from riskstrat.stages.features import build_features, features_path, sample_of
from riskstrat.stages.lock import held as lock_held
from riskstrat.stages.objections import without_objectors
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = [
    "ModelMetrics",
    "TrainResult",
    "dates_to_train",
    "latest_training_as_of",
    "load_dataset",
    "run_training_as_of",
    "train",
    "training_dates",
    "training_share",
    "validation_as_of",
]

IN_TIME_HELD_OUT_SHARE = 0.2  # people held out of every date when out-of-time validation is impossible
#: the seed offset of the keyed hash that keeps a share of the exposed rows (exposure_handling: weight)
_EXPOSED_SEED = 7
#: the seed offset of the keyed hash that keeps a share of the people (training.max_people)
_KEPT_SEED = 5
#: the run's table (``tables/<name>.csv``) that commissioners see on their report
FAIRNESS_SUMMARY = "fairness_commissioner"


@dataclass(frozen=True)
class ModelMetrics:
    """Validation figures of one model on the report half (``docs/modelling.md``).

    The headline figures are fields; ``logged`` holds every figure by the name it is logged
    under in MLflow (the model's own, unprefixed).
    """

    auroc: float
    auroc_lo: float
    auroc_hi: float
    auprc: float
    brier: float
    calibration_slope: float
    observed_over_expected: float
    ppv_top1pct: float
    ceiling_auroc: float | None  # the true risks' AUROC (synthetic data only)
    share_of_ceiling: float | None
    logged: dict[str, float]

    @classmethod
    def of(cls, figures: dict[str, float]) -> ModelMetrics:
        """The figures of :func:`~riskstrat.modelling.evaluation.evaluate`."""
        return cls(
            auroc=figures["auroc"],
            auroc_lo=figures["auroc_lo"],
            auroc_hi=figures["auroc_hi"],
            auprc=figures["auprc"],
            brier=figures["brier"],
            calibration_slope=figures["calibration_slope"],
            observed_over_expected=figures["observed_over_expected"],
            ppv_top1pct=figures["ppv_top1pct"],
            ceiling_auroc=figures.get("ceiling_auroc"),
            share_of_ceiling=figures.get("share_of_ceiling"),
            logged=dict(figures),
        )


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    validation: str
    metrics: dict[str, ModelMetrics] = field(default_factory=dict)  # the model and each baseline
    seconds: float = 0.0
    learner: str = "lightgbm"
    selection: pd.DataFrame | None = None

    def metrics_table(self) -> pd.DataFrame:
        """Every logged figure, one row per model (the model first, then the baselines)."""
        return pd.DataFrame({name: m.logged for name, m in self.metrics.items()}).T


def _features_at(workdir: Path, as_of: dt.date, spec: ModelSpec, sample: PeopleShare | None = None) -> Path:
    """The feature table at ``as_of``, built when there is none, it lacks a feature of ``spec``
    or it holds a share of the people other than ``sample`` (a table of everyone holds any share)."""
    path = features_path(workdir, as_of)
    if not path.exists() or set(spec.features) - set(pq.read_schema(path).names):
        build_features(workdir, as_of, sample=sample)  # none yet, or built by a version with other features
    elif sample_of(path) not in (None, sample):
        build_features(workdir, as_of, sample=sample)  # a share of other people
    return path


def load_dataset(
    workdir: Path, as_of: dt.date, spec: ModelSpec, con=None, src=None, share: PeopleShare | None = None
) -> pd.DataFrame:
    """Features and label of the population at ``as_of`` allowed into training (opt-outs),
    filtered to the specification's population; with ``share``, only the people in it (a keyed
    hash of the pseudonym: :class:`~riskstrat.modelling.selection.PeopleShare`), chosen before
    the table is converted so that memory follows the share (and the table built for only them
    when it is not there)."""
    wd = WorkDir(workdir)
    feats = pq.read_table(_features_at(workdir, as_of, spec, share))
    if share is not None:
        feats = feats.filter(pa.array(share.kept(feats["pseudonym"].to_pandas())))
    feats = feats.to_pandas()
    con = con or connect("duckdb")
    src = src or load_sources(con, wd.linked)
    lab = con.to_pyarrow(labels(src, as_of, spec.outcome, spec.horizon_days)).to_pandas()
    data = feats.merge(lab, on="pseudonym", how="inner", validate="one_to_one")
    data = without_objectors(data, wd, Use.TRAINING)
    data = data[data["age_years"] >= spec.min_age]
    if spec.max_age is not None:
        data = data[data["age_years"] <= spec.max_age]
    return data.reset_index(drop=True)


def _groups(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": sex_letter(frame["sex"]),
            "age_band": FAIRNESS_AGE_BANDS.of(frame["age_years"]),
            "imd_quintile": imd_quintile(frame["imd_decile"]),
            "ethnicity_group": frame["ethnicity_group"].astype(str),
        }
    )


def _truth(truth_dir: Path | None, key: str | None, as_of: dt.date, people: pd.Series) -> np.ndarray | None:
    """True risks of a synthetic population, joined through the region pseudonym."""
    if truth_dir is None or key is None or not (truth_dir / "true_risk.parquet").exists():
        return None
    t = pq.read_table(truth_dir / "true_risk.parquet")
    t = t.filter(pc.equal(t["as_of"], pa.scalar(as_of, pa.date32()))).to_pandas()
    t["pseudonym"] = pseudonymise(t["nhs_number"].tolist(), key)
    merged = pd.DataFrame({"pseudonym": people}).merge(t[["pseudonym", "true_risk"]], on="pseudonym", how="left")
    unmatched = float(merged["true_risk"].isna().mean())
    if unmatched > 0.01:
        raise RiskstratError(
            f"{truth_dir}: {unmatched:.0%} of the people validated have no true risk: the truth directory is of "
            "another population, or the pseudonymisation key is not the one this work directory was made with"
        )
    return merged["true_risk"].fillna(merged["true_risk"].mean()).to_numpy()


def validation_as_of(as_of: dt.date, spec: ModelSpec) -> dt.date:
    """The out-of-time validation date of a model trained at ``as_of``: one horizon later."""
    return as_of + dt.timedelta(days=spec.horizon_days)


def latest_training_as_of(run_as_of: dt.date, spec: ModelSpec, start: dt.date | None = None) -> dt.date:
    """The newest training date a monthly run at ``run_as_of`` can validate out of time: its
    validation population's outcome window closes on ``run_as_of``.

    When the extracts (first day ``start``) are too short for that date to have a year of
    history behind it, the newest date whose outcome window has closed, validated in time.
    """
    out_of_time = run_as_of - dt.timedelta(days=2 * spec.horizon_days)
    if start is not None and out_of_time < start + dt.timedelta(days=365):
        return run_as_of - dt.timedelta(days=spec.horizon_days)
    return out_of_time


def run_training_as_of(workdir: Path, run_as_of: dt.date, spec: ModelSpec) -> dt.date:
    """:func:`latest_training_as_of` for the extracts of work directory ``workdir``."""
    src = load_sources(connect("duckdb"), WorkDir(workdir).linked)
    return latest_training_as_of(run_as_of, spec, data_start(src))


def training_dates(as_of: dt.date, spec: ModelSpec, start: dt.date | None) -> list[dt.date]:
    """The stacked as-of dates, newest first: ``as_of`` and the dates one horizon apart before
    it that have at least a year of data behind them (``start``: the first day of the extracts)."""
    dates = [as_of - dt.timedelta(days=spec.horizon_days * k) for k in range(spec.stacked_as_of_dates)]
    return [d for d in dates if start is None or d == as_of or d >= start + dt.timedelta(days=365)]


def dates_to_train(workdir: Path, as_of: dt.date, spec: ModelSpec) -> list[dt.date]:
    """Every as-of date whose features training at ``as_of`` reads: the stacked dates and,
    when its outcome window has closed, the out-of-time validation date."""
    src = load_sources(connect("duckdb"), WorkDir(workdir).linked)
    end = data_end(src)
    dates = training_dates(as_of, spec, data_start(src))
    if _out_of_time(as_of, spec, end):
        dates.append(validation_as_of(as_of, spec))
    return dates


def _out_of_time(as_of: dt.date, spec: ModelSpec, end: dt.date | None) -> bool:
    """Whether training at ``as_of`` validates out of time: asked for, and the validation
    population's outcome window has closed by ``end``, the last day of the data."""
    if not spec.out_of_time or end is None:
        return False
    window_end = validation_as_of(as_of, spec) + dt.timedelta(days=spec.horizon_days)
    return window_end <= end + dt.timedelta(days=1)


def training_share(workdir: Path, as_of: dt.date, spec: ModelSpec, con=None, src=None) -> PeopleShare | None:
    """The people training at ``as_of`` reads, when it reads a share of them (None: everyone).

    Above ``training.max_people`` people in the population at ``as_of`` (the newest stacked
    date), a fixed share of people is kept (a keyed hash of the pseudonym, so a person is in or
    out at every date, validation's included): memory follows the cap, not the region's size,
    and the feature tables of the training dates are built for only these people.
    """
    if not spec.max_training_people:
        return None
    con = con or connect("duckdb")
    src = src or load_sources(con, WorkDir(workdir).linked)
    people = int(population(cut(src, as_of), as_of).count().execute())
    if people <= spec.max_training_people:
        return None
    return PeopleShare(spec.seed + _KEPT_SEED, spec.max_training_people / people)


def _stack(workdir: Path, dates: list[dt.date], spec: ModelSpec, con, src) -> tuple[pd.DataFrame, PeopleShare | None]:
    """The stacked training rows (newest date first) and the share of people kept
    (:func:`training_share`), read date by date."""
    share = training_share(workdir, dates[0], spec, con, src)
    parts = [load_dataset(workdir, d, spec, con, src, share).assign(as_of=d) for d in dates]
    return pd.concat(parts, ignore_index=True), share


@dataclass
class _Rows:
    """The people of a training run, split once: fitted on, selecting the learner, reporting."""

    fit: pd.DataFrame
    select: pd.DataFrame
    report: pd.DataFrame
    dates: list[dt.date]  # the stacked as-of dates, newest first
    validation_as_of: dt.date
    validation: str  # how validation was done, in words
    held_practices: list[str]
    kept: PeopleShare | None  # the people kept under training.max_people (None: everyone)
    exposure: dict = field(default_factory=dict)  # what the exposure handling did, in counts


@dataclass
class _Validation:
    """Every model's scores and figures on the report half."""

    scores: dict[str, np.ndarray]  # calibrated probabilities: the model and each baseline
    rank_by: dict[str, np.ndarray]  # the model's uncalibrated score, which its lists rank by
    evals: dict
    metrics: dict[str, dict[str, float]]
    logged: dict[str, float]  # the run's metrics, flat, as MLflow holds them


@named_stage("train")
def train(
    workdir: Path,
    as_of: dt.date,
    spec_path: Path | None = None,
    tracking_uri: str | None = None,
    truth_dir: Path | None = None,
    pseudonym_key: str | None = None,
    config: Config | None = None,
) -> TrainResult:
    """Train at ``as_of`` (see the module docstring); ``config``: how rows exposed to the practice
    lists are treated (``monitoring.exposure_handling``, default the embedded defaults)."""
    started = time.perf_counter()
    config = config or Config()
    spec = load_spec(spec_path)
    wd = WorkDir(workdir)
    if not wd.table("sus_apc").exists():
        raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
    con = connect("duckdb")
    src = load_sources(con, wd.linked)
    end = data_end(src)
    _require_closed_outcome_window(as_of, spec, end)
    rows = _split_rows(workdir, as_of, spec, con, src, end, config)
    _require_outcomes(rows)
    selection = _select_learner(spec, rows, as_of)
    model = selection.chosen.estimator
    validated = _validate(spec, rows, model, truth_dir, pseudonym_key)
    figures, tables = _run_report(spec, rows, model, selection, validated)
    summary = _summary(as_of, end, rows, spec, selection)
    profile = _reference(spec, rows, model, validated, as_of)
    uri = tracking.configure(workdir, tracking_uri, spec.name, end_abandoned=lock_held(workdir))
    run_id, version, promoted, reason = _register(
        workdir, spec, as_of, rows, model, selection, validated, figures, tables, summary, profile
    )
    result = TrainResult(
        run_id,
        spec.name,
        version,
        promoted,
        reason,
        rows.validation,
        {name: ModelMetrics.of(m) for name, m in validated.metrics.items()},
        time.perf_counter() - started,
        selection.chosen.learner,
        selection.table(),
    )
    AuditLog(wd.audit).record_stage(
        f"riskstrat train --as-of {as_of} --model-spec {spec.source}",
        {},
        summary,
        "succeeded",
        model=spec.name,
        version=version,
        champion=promoted,
        tracking=uri.split("://")[0],
    )
    return result


def _require_closed_outcome_window(as_of: dt.date, spec: ModelSpec, end: dt.date | None) -> None:
    """Refuse an as-of date whose outcome window the data do not cover (``end``: their last day)."""
    window_end = as_of + dt.timedelta(days=spec.horizon_days)
    if end is None or window_end > end + dt.timedelta(days=1):
        raise RiskstratError(
            f"the outcome window of {as_of} runs to {window_end - dt.timedelta(days=1)} but the data end on {end}: "
            f"train at an as-of date at least {spec.horizon_days} days before the end of the data"
        )


def _split_rows(
    workdir: Path, as_of: dt.date, spec: ModelSpec, con, src, end: dt.date | None, config: Config | None = None
) -> _Rows:
    """The stacked training rows and the validation people, split into fitting, selection and
    report rows (out of time when the data reach far enough; practices held out if asked; rows
    exposed to the lists treated as ``config.monitoring.exposure_handling`` says)."""
    dates = training_dates(as_of, spec, data_start(src))
    data, kept = _stack(workdir, dates, spec, con, src)
    data, exposure = _handle_exposure(WorkDir(workdir), data, dates, spec, config or Config())
    val_as_of = validation_as_of(as_of, spec)
    if _out_of_time(as_of, spec, end):
        train_df = data
        # the same share of people as training (memory follows the cap here too)
        val_df = load_dataset(workdir, val_as_of, spec, con, src, kept)
        validation = f"out of time: population at {val_as_of}"
    else:
        held = person_unit(data["pseudonym"], spec.seed + 1) < IN_TIME_HELD_OUT_SHARE
        val_df = data[held & (data["as_of"] == as_of)].reset_index(drop=True)
        train_df = data[~held].reset_index(drop=True)
        val_as_of = as_of
        validation = f"in time: people held out of every date, at {as_of} (the data do not reach {val_as_of} + horizon)"
    del data
    held_practices = _held_out_practices(train_df, spec)
    if held_practices:
        fit_df = train_df[~train_df["practice_code"].isin(held_practices)].reset_index(drop=True)
    else:
        fit_df = train_df  # no copy: a large region's training rows are held once
    del train_df
    choose = selection_split(val_df["pseudonym"], spec.seed)
    return _Rows(
        fit=fit_df,
        select=val_df[choose].reset_index(drop=True),
        report=val_df[~choose].reset_index(drop=True),
        dates=dates,
        validation_as_of=val_as_of,
        validation=validation,
        held_practices=held_practices,
        kept=kept,
        exposure=exposure,
    )


def _handle_exposure(
    wd: WorkDir, data: pd.DataFrame, dates: list[dt.date], spec: ModelSpec, config: Config
) -> tuple[pd.DataFrame, dict]:
    """The stacked rows less, or down-weighted for, the rows whose outcome the practice lists may
    have changed (:func:`riskstrat.stages.exposure.exposed_rows`): ``include`` keeps them,
    ``exclude`` drops them, ``weight`` keeps the share ``exposed_weight`` of them (a keyed hash
    of the pseudonym picks which, so each counts as ``exposed_weight`` of a row in expectation).
    The validation rows are never touched: they judge the model in the world the lists make.
    Returns the rows and what was done, in counts."""
    handling = config.monitoring.exposure_handling
    exposed = exposed_rows(wd, dates, spec.horizon_days)
    flag = (
        data[["pseudonym", "as_of"]]
        .merge(exposed.assign(_exposed=True), on=["pseudonym", "as_of"], how="left")["_exposed"]
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    record = {"exposure_handling": str(handling), "exposed_training_rows": int(flag.sum())}
    if handling is ExposureHandling.INCLUDE or not flag.any():
        return data, record
    drop = flag.copy()
    if handling is ExposureHandling.WEIGHT:
        drop &= person_unit(data["pseudonym"], spec.seed + _EXPOSED_SEED) >= config.monitoring.exposed_weight
    record["exposed_rows_left_out"] = int(drop.sum())
    return data[~drop].reset_index(drop=True), record


def _reference(spec: ModelSpec, rows: _Rows, model, validated: _Validation, as_of: dt.date) -> dict:
    """The monitoring reference (:func:`riskstrat.modelling.monitoring.reference_profile`): the
    bins of every feature and of the calibrated risk on the training population at ``as_of``,
    and the performance expected without labels on the report half of validation."""
    features = list(spec.features)
    newest = rows.fit[rows.fit["as_of"] == as_of]
    risk = model.predict_proba(newest[features])[:, 1]
    bands = [(b.name, b.top_share) for b in spec.risk_bands]
    p, rank = validated.scores["model"], validated.rank_by["model"]
    return reference_profile(
        newest[features],
        list(spec.categorical),
        risk,
        expected_performance(p, rank, bands),
        f"training population at {as_of} ({len(newest):,} people); expected and realised figures on the "
        f"validation people at {rows.validation_as_of}",
        realised_performance(rows.report["label"].to_numpy(), p, rank, bands),
    )


def _held_out_practices(train_df: pd.DataFrame, spec: ModelSpec) -> list[str]:
    """The practices held out of fitting (``training.held_out_practices`` of them, by the seed)."""
    if spec.held_out_practices <= 0:
        return []
    rng = np.random.default_rng(spec.seed)
    practices = sorted(train_df["practice_code"].unique())
    k = max(1, round(spec.held_out_practices * len(practices)))
    return sorted(rng.choice(practices, size=k, replace=False).tolist())


def _require_outcomes(rows: _Rows) -> None:
    y, select, report = rows.fit["label"].sum(), rows.select["label"].sum(), rows.report["label"].sum()
    if y < 50 or report < 20 or select < 20:
        raise RiskstratError(
            f"too few outcomes to train ({int(y)} in training, {int(select)} to select, {int(report)} to validate)"
        )


def _select_learner(spec: ModelSpec, rows: _Rows, as_of: dt.date):
    """The competition between candidate learners (and the search), judged on the selection half."""
    features = list(spec.features)
    fit = rows.fit
    # Calibrated on the newest date's people: the rate of the outcome moves from year to year,
    # and the most recent year whose outcomes are known is the best guess of the next.
    newest = (fit["as_of"] == as_of).to_numpy()
    return compete(
        spec,
        fit[features],
        fit["label"].to_numpy(),
        fit["pseudonym"],
        rows.select[features],
        rows.select["label"].to_numpy(),
        newest,
    )


def _validate(spec: ModelSpec, rows: _Rows, model, truth_dir: Path | None, pseudonym_key: str | None) -> _Validation:
    """The model and the two baselines (fitted on the same rows) scored and evaluated on the report half."""
    fit, rep = rows.fit, rows.report
    y, yv = fit["label"].to_numpy(), rep["label"].to_numpy()
    Xv = rep[list(spec.features)]
    baselines = {
        "qadmissions_like_logistic": QAdmissionsLikeLogistic().fit(fit, y),
        "prior_admissions_rule": PriorAdmissionsRule().fit(fit, y),
    }
    scores = {"model": model.predict_proba(Xv)[:, 1]}
    for name, b in baselines.items():
        scores[name] = b.predict_proba(rep)[:, 1]
    truth = _truth(truth_dir, pseudonym_key, rows.validation_as_of, rep["pseudonym"])
    # The model's lists order people by its uncalibrated score where calibration ties them;
    # so do its discrimination and targeting figures.
    rank_by = {"model": model.raw_proba(Xv)}
    evals = {
        name: evaluate(
            yv, p, _groups(rep) if name == "model" else None, truth, seed=spec.seed, rank_by=rank_by.get(name)
        )
        for name, p in scores.items()
    }
    metrics = {name: e.metrics for name, e in evals.items()}
    logged = dict(metrics["model"])
    for name in baselines:
        for k in _BASELINE_METRICS:
            logged[f"{name}_{k}"] = metrics[name][k]
    return _Validation(scores, rank_by, evals, metrics, logged)


def _run_report(
    spec: ModelSpec, rows: _Rows, model, selection, validated: _Validation
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The run's figures and tables (report, fairness audit, selection); adds the selection,
    held-out-practice and fairness figures to ``validated.logged``."""
    rep = rows.report
    Xv, yv = rep[list(spec.features)], rep["label"].to_numpy()
    flat = validated.logged
    for c in selection.candidates:
        flat[f"selection_auroc_{c.learner}"] = c.selection_auroc
    if rows.held_practices:
        sel = rep["practice_code"].isin(rows.held_practices).to_numpy()
        if 0 < yv[sel].sum() < sel.sum():
            flat["held_out_practices_auroc"] = float(roc_auc_score(yv[sel], validated.rank_by["model"][sel]))
    figures, tables = _report(
        model, Xv, yv, validated.scores, validated.rank_by, validated.metrics, validated.evals, spec.seed
    )
    fair_figures, fair_tables, fair_metrics = _fairness(
        yv, validated.scores["model"], validated.rank_by["model"], _groups(rep), spec
    )
    figures.update(fair_figures)
    tables.update(fair_tables)
    flat.update(fair_metrics)
    tables["selection"] = selection.table()
    if not selection.trials.empty:
        tables["search_trials"] = selection.trials
    return figures, tables


def _summary(as_of: dt.date, end: dt.date | None, rows: _Rows, spec: ModelSpec, selection) -> dict:
    """The run's summary (logged to MLflow and to the audit log)."""
    y = rows.fit["label"].to_numpy()
    yv = rows.report["label"].to_numpy()
    return {
        "train_as_of": str(as_of),
        "stacked_as_of_dates": [str(d) for d in rows.dates],
        "validation": rows.validation,
        "data_end": str(end),
        "training_rows": len(rows.fit),
        "training_people_share": round(rows.kept.share if rows.kept else 1.0, 4),
        "training_people": int(rows.fit["pseudonym"].nunique()),
        "training_events": int(y.sum()),
        "selection_people": len(rows.select),
        "validation_people": len(rows.report),
        "validation_events": int(yv.sum()),
        "held_out_practices": len(rows.held_practices),
        "features": len(spec.features),
        "learner": selection.chosen.learner,
        "search_trials": len(selection.trials),
        **rows.exposure,
    }


def _register(
    workdir: Path,
    spec: ModelSpec,
    as_of: dt.date,
    rows: _Rows,
    model,
    selection,
    validated: _Validation,
    figures: dict,
    tables: dict[str, pd.DataFrame],
    summary: dict,
    profile: dict | None = None,
) -> tuple[str, str, bool, str]:
    """Log the run to MLflow, register the model and decide the champion on the report half:
    ``(run id, version, promoted, reason)``."""
    features = list(spec.features)
    Xv, yv = rows.report[features], rows.report["label"].to_numpy()
    auroc = validated.metrics["model"]["auroc"]
    with tracking.start_run(f"{spec.name} at {as_of}", workdir) as run:
        tracking.log_run(
            params={
                **spec.to_dict(),
                "train_as_of": str(as_of),
                "stacked_as_of_dates": [str(d) for d in rows.dates],
                "validation_as_of": str(rows.validation_as_of),
                "chosen_learner": selection.chosen.learner,
                "chosen_params": selection.chosen.params,
                "best_iteration": getattr(model, "best_iteration_", None),
                "shap_work": getattr(model, "shap_work_", None),
            },
            metrics=validated.logged,
            spec_path=Path(spec.source),
            tables=tables,
            figures=figures,
            summary=summary,
            tags={"validation": rows.validation, "riskstrat.stage": "train", "learner": selection.chosen.learner},
        )
        if not selection.trials.empty:
            tracking.log_metric_history("search_trial_selection_auroc", selection.trials["selection_auroc"].tolist())
        if profile is not None:
            tracking.log_json(tracking.REFERENCE_PROFILE, profile)
        metadata = {
            "risk_bands": spec.to_dict()["risk_bands"],
            "features": features,
            "outcome": str(spec.outcome),
            "horizon_days": spec.horizon_days,
            "train_as_of": str(as_of),
        }
        version = tracking.log_model(model, Xv, spec.name, metadata)
        tracking.describe_registered(
            spec.name,
            version,
            " ".join(spec.description.split()),
            {"outcome": str(spec.outcome), "horizon_days": str(spec.horizon_days), "riskstrat": __version__},
            f"{selection.chosen.learner} trained at {as_of} ({rows.validation}); validation AUROC {auroc:.4f}",
        )
        promoted, reason = _decide(spec.name, version, rows.report, yv, auroc, AuditLog(WorkDir(workdir).audit))
        tracking.record_decision(spec.name, version, "promoted" if promoted else "kept")
        tracking.set_tags({"champion_decision": "promoted" if promoted else "kept", "champion_reason": reason})
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)
    return run.info.run_id, version, promoted, reason


_BASELINE_METRICS = ("auroc", "auprc", "brier", "ppv_top1pct", "calibration_slope", "observed_over_expected")


def _report(model, Xv, yv, scores, rank_by, metrics, evals, seed) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The run's figures and tables: ROC, calibration, deciles, SHAP and importance; baselines."""
    sample = Xv.sample(n=min(20_000, len(Xv)), random_state=seed)
    shap = model.contributions(sample).drop(columns="bias").abs().mean().sort_values(ascending=False)
    importance = model.feature_importance()
    figures = {
        "calibration": calibration_plot(yv, scores),
        "roc": roc_plot(yv, {**scores, **rank_by}, {k: m["auroc"] for k, m in metrics.items()}),
        "deciles": decile_plot(evals["model"].tables["deciles"]),
        "shap_summary": bar_plot(shap, "SHAP: mean |contribution| (log-odds)", "mean |SHAP value|"),
        "feature_importance": bar_plot(importance, "feature importance", "importance"),
    }
    tables = {f"model_{k}": v for k, v in evals["model"].tables.items()}
    tables["shap_summary"] = shap.rename("mean_abs_shap").reset_index().rename(columns={"index": "feature"})
    tables["feature_importance"] = importance.rename("importance").reset_index().rename(columns={"index": "feature"})
    tables["baselines"] = pd.DataFrame(
        [{"model": k, **{m: v[m] for m in _BASELINE_METRICS}} for k, v in metrics.items()]
    )
    return figures, tables


def _fairness(yv, p, rank, groups: pd.DataFrame, spec: ModelSpec) -> tuple[dict, dict[str, pd.DataFrame], dict]:
    """The fairness audit of the model on the report half (``docs/modelling.md``): its plots,
    tables and headline metrics."""
    result = audit(yv, p, rank, groups, spec.risk_bands, seed=spec.seed)
    bands = {b.name: b.top_share for b in spec.risk_bands if b.top_share < 1}
    figures = {f"fairness_fpr_fnr_{var}": fairness_rates_plot(result.curves, var, bands) for var in result.variables}
    figures["fairness_calibration"] = fairness_calibration_plot(result.calibration)
    tables = {**result.tables(), FAIRNESS_SUMMARY: commissioner_summary(result)}
    return figures, tables, result.headline_metrics()


def _decide(
    name: str,
    version: str,
    validation: pd.DataFrame,
    yv: np.ndarray,
    new_auroc: float,
    audit_log: AuditLog | None = None,
) -> tuple[bool, str]:
    """Promote to champion only when the new version beats the champion on this validation set
    (the champion scores the same people, from the feature columns it was trained on). A move
    is recorded in the registry and in ``audit_log`` (:func:`riskstrat.tracking.move_champion`)."""
    current = tracking.champion_version(name)
    if current is None:
        reason = f"no champion yet: version {version} (validation AUROC {new_auroc:.4f}) becomes champion"
        tracking.set_champion(name, version, reason, "training", audit_log)
        return True, reason
    old = tracking.load_model(f"models:/{name}@{tracking.CHAMPION}")
    inputs = old.metadata.get_input_schema().input_names()
    estimator = old.unwrap_python_model().estimator
    # Ranked as its lists rank people: by its uncalibrated score where it has one.
    ranking = getattr(estimator, "raw_proba", None) or (lambda X: old.predict(X))
    old_auroc = float(roc_auc_score(yv, ranking(validation[inputs])))
    if new_auroc > old_auroc:
        reason = f"version {version} AUROC {new_auroc:.4f} beats champion version {current} ({old_auroc:.4f})"
        tracking.set_champion(name, version, reason, "training", audit_log)
        return True, reason
    return False, f"champion version {current} kept: AUROC {old_auroc:.4f} vs {new_auroc:.4f} for version {version}"
