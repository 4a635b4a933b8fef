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
from riskstrat.errors import RiskstratError
from riskstrat.features.engine import connect, load_sources
from riskstrat.labels import data_end, data_start, labels
from riskstrat.modelling.estimators import PriorAdmissionsRule, QAdmissionsLikeLogistic
from riskstrat.modelling.evaluation import evaluate
from riskstrat.modelling.fairness import audit, commissioner_summary
from riskstrat.modelling.plots import (
    bar_plot,
    calibration_plot,
    decile_plot,
    fairness_calibration_plot,
    fairness_rates_plot,
    roc_plot,
)
from riskstrat.modelling.selection import compete, person_unit, selection_split
from riskstrat.modelling.spec import ModelSpec, load_spec
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.pseudonym import pseudonymise
from riskstrat.schema import SEX_LABELS
from riskstrat.stages.features import build_features, features_path
from riskstrat.stages.lock import held as lock_held
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = [
    "TrainResult",
    "dates_to_train",
    "latest_training_as_of",
    "load_dataset",
    "run_training_as_of",
    "train",
    "training_dates",
    "validation_as_of",
]

IN_TIME_HELD_OUT_SHARE = 0.2  # people held out of every date when out-of-time validation is impossible
#: the run's table (``tables/<name>.csv``) that commissioners see on their report
FAIRNESS_SUMMARY = "fairness_commissioner"


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    validation: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    learner: str = "lightgbm"
    selection: pd.DataFrame | None = None


def _features_at(workdir: Path, as_of: dt.date, spec: ModelSpec) -> Path:
    """The feature table at ``as_of``, built when there is none or it lacks a feature of ``spec``."""
    path = features_path(workdir, as_of)
    if not path.exists() or set(spec.features) - set(pq.read_schema(path).names):
        build_features(workdir, as_of)  # none yet, or built by a version with other features
    return path


def load_dataset(
    workdir: Path, as_of: dt.date, spec: ModelSpec, con=None, src=None, share: float = 1.0
) -> pd.DataFrame:
    """Features and label of the population at ``as_of`` allowed into training (opt-outs),
    filtered to the specification's population; with ``share`` below 1, only the people whose
    keyed hash (:func:`~riskstrat.modelling.selection.person_unit`) falls below it, chosen
    before the table is converted so that memory follows the share."""
    wd = WorkDir(workdir)
    feats = pq.read_table(_features_at(workdir, as_of, spec))
    if share < 1.0:
        feats = feats.filter(pa.array(_kept(feats["pseudonym"].to_pandas(), spec, share)))
    feats = feats.to_pandas()
    con = con or connect("duckdb")
    src = src or load_sources(con, wd.linked)
    lab = con.to_pyarrow(labels(src, as_of, spec.outcome, spec.horizon_days)).to_pandas()
    data = feats.merge(lab, on="pseudonym", how="inner", validate="one_to_one")
    uses = wd.table(OPT_OUT_USES_TABLE)
    if uses.exists():
        excluded = pq.read_table(uses)
        excluded = excluded.filter(excluded["training"])["pseudonym"]
        data = data[~data["pseudonym"].isin(excluded.to_pylist())]
    data = data[data["age_years"] >= spec.min_age]
    if spec.max_age is not None:
        data = data[data["age_years"] <= spec.max_age]
    return data.reset_index(drop=True)


def _groups(frame: pd.DataFrame) -> pd.DataFrame:
    age = pd.cut(frame["age_years"], [-1, 17, 39, 64, 79, 200], labels=["0-17", "18-39", "40-64", "65-79", "80+"])
    imd = np.where(frame["imd_decile"] == 0, "unknown", ((frame["imd_decile"] + 1) // 2).astype(str))
    return pd.DataFrame(
        {
            "sex": frame["sex"].astype(str).map(SEX_LABELS).fillna("not known"),
            "age_band": age.astype(str),
            "imd_quintile": imd,
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


def _stack(workdir: Path, dates: list[dt.date], spec: ModelSpec, con, src) -> tuple[pd.DataFrame, float]:
    """The stacked training rows (newest date first) and the share of people kept.

    Above ``training.max_people`` people in the population at the newest date, a fixed share of
    people (a keyed hash of the pseudonym, so a person is in or out at every date) is kept, date
    by date as each is read: memory follows the cap, not the region's size.
    """
    share = 1.0
    people = pq.read_metadata(_features_at(workdir, dates[0], spec)).num_rows
    if spec.max_training_people and people > spec.max_training_people:
        share = spec.max_training_people / people
    parts = [load_dataset(workdir, d, spec, con, src, share).assign(as_of=d) for d in dates]
    return pd.concat(parts, ignore_index=True), share


def _kept(pseudonyms: pd.Series, spec: ModelSpec, share: float) -> np.ndarray:
    """True for the people trained on when only ``share`` of them are (the same people at every date)."""
    return person_unit(pseudonyms, spec.seed + 5) < share


@named_stage("train")
def train(
    workdir: Path,
    as_of: dt.date,
    spec_path: Path | None = None,
    tracking_uri: str | None = None,
    truth_dir: Path | None = None,
    pseudonym_key: str | None = None,
) -> TrainResult:
    started = time.perf_counter()
    spec = load_spec(spec_path)
    wd = WorkDir(workdir)
    if not wd.table("sus_apc").exists():
        raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
    con = connect("duckdb")
    src = load_sources(con, wd.linked)
    end = data_end(src)
    window_end = as_of + dt.timedelta(days=spec.horizon_days)
    if end is None or window_end > end + dt.timedelta(days=1):
        raise RiskstratError(
            f"the outcome window of {as_of} runs to {window_end - dt.timedelta(days=1)} but the data end on {end}: "
            f"train at an as-of date at least {spec.horizon_days} days before the end of the data"
        )
    dates = training_dates(as_of, spec, data_start(src))
    data, kept_share = _stack(workdir, dates, spec, con, src)
    val_as_of = validation_as_of(as_of, spec)
    if _out_of_time(as_of, spec, end):
        train_df = data
        # the same share of people as training (memory follows the cap here too)
        val_df = load_dataset(workdir, val_as_of, spec, con, src, kept_share)
        validation = f"out of time: population at {val_as_of}"
    else:
        held = person_unit(data["pseudonym"], spec.seed + 1) < IN_TIME_HELD_OUT_SHARE
        val_df = data[held & (data["as_of"] == as_of)].reset_index(drop=True)
        train_df = data[~held].reset_index(drop=True)
        val_as_of = as_of
        validation = f"in time: people held out of every date, at {as_of} (the data do not reach {val_as_of} + horizon)"
    rng = np.random.default_rng(spec.seed)
    held_practices: list[str] = []
    if spec.held_out_practices > 0:
        practices = sorted(train_df["practice_code"].unique())
        k = max(1, round(spec.held_out_practices * len(practices)))
        held_practices = sorted(rng.choice(practices, size=k, replace=False).tolist())
    if held_practices:
        fit_df = train_df[~train_df["practice_code"].isin(held_practices)].reset_index(drop=True)
    else:
        fit_df = train_df  # no copy: a large region's training rows are held once
    del data, train_df
    choose = selection_split(val_df["pseudonym"], spec.seed)
    sel_df, rep_df = val_df[choose].reset_index(drop=True), val_df[~choose].reset_index(drop=True)
    features = list(spec.features)
    X, y, groups = fit_df[features], fit_df["label"].to_numpy(), fit_df["pseudonym"]
    Xv, yv = rep_df[features], rep_df["label"].to_numpy()
    if y.sum() < 50 or yv.sum() < 20 or sel_df["label"].sum() < 20:
        raise RiskstratError(
            f"too few outcomes to train ({int(y.sum())} in training, {int(sel_df['label'].sum())} to select, "
            f"{int(yv.sum())} to validate)"
        )
    # Calibrated on the newest date's people: the rate of the outcome moves from year to year,
    # and the most recent year whose outcomes are known is the best guess of the next.
    newest = (fit_df["as_of"] == as_of).to_numpy()
    selection = compete(spec, X, y, groups, sel_df[features], sel_df["label"].to_numpy(), newest)
    model = selection.chosen.estimator
    baselines = {
        "qadmissions_like_logistic": QAdmissionsLikeLogistic().fit(fit_df, y),
        "prior_admissions_rule": PriorAdmissionsRule().fit(fit_df, y),
    }
    scores = {"model": model.predict_proba(Xv)[:, 1]}
    for name, b in baselines.items():
        scores[name] = b.predict_proba(rep_df)[:, 1]
    truth = _truth(truth_dir, pseudonym_key, val_as_of, rep_df["pseudonym"])
    # The model's lists order people by its uncalibrated score where calibration ties them;
    # so do its discrimination and targeting figures.
    rank_by = {"model": model.raw_proba(Xv)}
    evals = {
        name: evaluate(
            yv, p, _groups(rep_df) if name == "model" else None, truth, seed=spec.seed, rank_by=rank_by.get(name)
        )
        for name, p in scores.items()
    }
    metrics = {name: e.metrics for name, e in evals.items()}
    flat = dict(metrics["model"])
    for name in baselines:
        for k in _BASELINE_METRICS:
            flat[f"{name}_{k}"] = metrics[name][k]
    for c in selection.candidates:
        flat[f"selection_auroc_{c.learner}"] = c.selection_auroc
    if held_practices:
        sel = rep_df["practice_code"].isin(held_practices).to_numpy()
        if 0 < yv[sel].sum() < sel.sum():
            flat["held_out_practices_auroc"] = float(roc_auc_score(yv[sel], rank_by["model"][sel]))
    figures, tables = _report(model, Xv, yv, scores, rank_by, metrics, evals, spec.seed)
    fair_figures, fair_tables, fair_metrics = _fairness(yv, scores["model"], rank_by["model"], _groups(rep_df), spec)
    figures.update(fair_figures)
    tables.update(fair_tables)
    flat.update(fair_metrics)
    tables["selection"] = selection.table()
    if not selection.trials.empty:
        tables["search_trials"] = selection.trials
    summary = {
        "train_as_of": str(as_of),
        "stacked_as_of_dates": [str(d) for d in dates],
        "validation": validation,
        "data_end": str(end),
        "training_rows": len(fit_df),
        "training_people_share": round(kept_share, 4),
        "training_people": int(groups.nunique()),
        "training_events": int(y.sum()),
        "selection_people": len(sel_df),
        "validation_people": len(rep_df),
        "validation_events": int(yv.sum()),
        "held_out_practices": len(held_practices),
        "features": len(features),
        "learner": selection.chosen.learner,
        "search_trials": len(selection.trials),
    }
    uri = tracking.configure(workdir, tracking_uri, spec.name, end_abandoned=lock_held(workdir))
    with tracking.start_run(f"{spec.name} at {as_of}", workdir) as run:
        tracking.log_run(
            params={
                **spec.to_dict(),
                "train_as_of": str(as_of),
                "stacked_as_of_dates": [str(d) for d in dates],
                "validation_as_of": str(val_as_of),
                "chosen_learner": selection.chosen.learner,
                "chosen_params": selection.chosen.params,
                "best_iteration": getattr(model, "best_iteration_", None),
            },
            metrics=flat,
            spec_path=Path(spec.source),
            tables=tables,
            figures=figures,
            summary=summary,
            tags={"validation": validation, "riskstrat.stage": "train", "learner": selection.chosen.learner},
        )
        if not selection.trials.empty:
            tracking.log_metric_history("search_trial_selection_auroc", selection.trials["selection_auroc"].tolist())
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
            f"{selection.chosen.learner} trained at {as_of} ({validation}); "
            f"validation AUROC {metrics['model']['auroc']:.4f}",
        )
        promoted, reason = _decide(spec.name, version, rep_df, yv, metrics["model"]["auroc"])
        tracking.record_decision(spec.name, version, "promoted" if promoted else "kept")
        tracking.set_tags({"champion_decision": "promoted" if promoted else "kept", "champion_reason": reason})
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)
    result = TrainResult(
        run.info.run_id, spec.name, version, promoted, reason, validation, metrics, time.perf_counter() - started
    )
    result.learner = selection.chosen.learner
    result.selection = selection.table()
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


def _decide(name: str, version: str, validation: pd.DataFrame, yv: np.ndarray, new_auroc: float) -> tuple[bool, str]:
    """Promote to champion only when the new version beats the champion on this validation set
    (the champion scores the same people, from the feature columns it was trained on)."""
    current = tracking.champion_version(name)
    if current is None:
        tracking.set_champion(name, version)
        return True, f"no champion yet: version {version} (validation AUROC {new_auroc:.4f}) becomes champion"
    old = tracking.load_model(f"models:/{name}@{tracking.CHAMPION}")
    inputs = old.metadata.get_input_schema().input_names()
    estimator = old.unwrap_python_model().estimator
    # Ranked as its lists rank people: by its uncalibrated score where it has one.
    ranking = getattr(estimator, "raw_proba", None) or (lambda X: old.predict(X))
    old_auroc = float(roc_auc_score(yv, ranking(validation[inputs])))
    if new_auroc > old_auroc:
        tracking.set_champion(name, version)
        return True, f"version {version} AUROC {new_auroc:.4f} beats champion version {current} ({old_auroc:.4f})"
    return False, f"champion version {current} kept: AUROC {old_auroc:.4f} vs {new_auroc:.4f} for version {version}"
