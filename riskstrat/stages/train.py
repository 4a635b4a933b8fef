"""``riskstrat train``: fit, calibrate, evaluate and register an admission-risk model.

Training happens at an as-of date whose outcome window has closed in the data. Validation
is out of time (the population a year later, whose outcomes the data also cover) when the
data allow it, otherwise on people held out at the training date (recorded as such). The
model and two baselines — QAdmissions-like logistic regression and the prior emergency
admissions rule — are fitted on the same people and evaluated on the same validation set.
The ``champion`` alias moves to the new version only if it beats the current champion on
that same validation set; the decision and its reason are logged.
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

from riskstrat import tracking
from riskstrat.errors import RiskstratError
from riskstrat.features.engine import connect, load_sources
from riskstrat.labels import data_end, labels
from riskstrat.modelling.estimators import AdmissionRiskModel, PriorAdmissionsRule, QAdmissionsLikeLogistic
from riskstrat.modelling.evaluation import evaluate
from riskstrat.modelling.plots import bar_plot, calibration_plot, decile_plot, roc_plot
from riskstrat.modelling.spec import ModelSpec, load_spec
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.pseudonym import pseudonymise
from riskstrat.stages.features import build_features, features_path
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.workdir import WorkDir

__all__ = ["TrainResult", "load_dataset", "train"]


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


def load_dataset(workdir: Path, as_of: dt.date, spec: ModelSpec, con=None, src=None) -> pd.DataFrame:
    """Features and label of the population at ``as_of`` allowed into training (opt-outs),
    filtered to the specification's population."""
    wd = WorkDir(workdir)
    if not features_path(workdir, as_of).exists():
        build_features(workdir, as_of)
    feats = pq.read_table(features_path(workdir, as_of)).to_pandas()
    con = con or connect("duckdb")
    src = src or load_sources(con, wd.pseudonymised)
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
            "sex": frame["sex"].astype(str),
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
    src = load_sources(con, wd.pseudonymised)
    end = data_end(src)
    window_end = as_of + dt.timedelta(days=spec.horizon_days)
    if end is None or window_end > end + dt.timedelta(days=1):
        raise RiskstratError(
            f"the outcome window of {as_of} runs to {window_end - dt.timedelta(days=1)} but the data end on {end}: "
            f"train at an as-of date at least {spec.horizon_days} days before the end of the data"
        )
    train_df = load_dataset(workdir, as_of, spec, con, src)
    rng = np.random.default_rng(spec.seed)
    held_practices: list[str] = []
    if spec.held_out_practices > 0:
        practices = sorted(train_df["practice_code"].unique())
        k = max(1, round(spec.held_out_practices * len(practices)))
        held_practices = sorted(rng.choice(practices, size=k, replace=False).tolist())
    val_as_of = as_of + dt.timedelta(days=365)
    oot_possible = val_as_of + dt.timedelta(days=spec.horizon_days) <= end + dt.timedelta(days=1)
    if spec.out_of_time and oot_possible:
        val_df = load_dataset(workdir, val_as_of, spec, con, src)
        validation = f"out of time: population at {val_as_of}"
    else:
        mask = rng.random(len(train_df)) < 0.2
        val_df, train_df = train_df[mask].reset_index(drop=True), train_df[~mask].reset_index(drop=True)
        val_as_of = as_of
        validation = f"in time: 20% of people at {as_of} held out (the data do not reach {val_as_of} + horizon)"
    fit_df = train_df[~train_df["practice_code"].isin(held_practices)]
    X, y = fit_df[list(spec.features)], fit_df["label"].to_numpy()
    Xv, yv = val_df[list(spec.features)], val_df["label"].to_numpy()
    if y.sum() < 50 or yv.sum() < 20:
        raise RiskstratError(f"too few outcomes to train ({int(y.sum())} in training, {int(yv.sum())} to validate)")
    model = AdmissionRiskModel(
        categorical=spec.categorical, calibration=spec.calibration, random_state=spec.seed, **spec.params
    ).fit(X, y)
    baselines = {
        "qadmissions_like_logistic": QAdmissionsLikeLogistic().fit(fit_df, y),
        "prior_admissions_rule": PriorAdmissionsRule().fit(fit_df, y),
    }
    scores = {"model": model.predict_proba(Xv)[:, 1]}
    for name, b in baselines.items():
        scores[name] = b.predict_proba(val_df)[:, 1]
    truth = _truth(truth_dir, pseudonym_key, val_as_of, val_df["pseudonym"])
    groups = _groups(val_df)
    # The model's lists order people by its uncalibrated score where calibration ties them;
    # so do its discrimination and targeting figures.
    rank_by = {"model": model.raw_proba(Xv)}
    evals = {
        name: evaluate(yv, p, groups if name == "model" else None, truth, seed=spec.seed, rank_by=rank_by.get(name))
        for name, p in scores.items()
    }
    metrics = {name: e.metrics for name, e in evals.items()}
    flat = {f"{k}": v for k, v in metrics["model"].items()}
    for name in baselines:
        for k in ("auroc", "auprc", "brier", "ppv_top1pct", "calibration_slope", "observed_over_expected"):
            flat[f"{name}_{k}"] = metrics[name][k]
    if held_practices:
        sel = val_df["practice_code"].isin(held_practices).to_numpy()
        if 0 < yv[sel].sum() < sel.sum():
            flat["held_out_practices_auroc"] = float(roc_auc_score(yv[sel], rank_by["model"][sel]))
    sample = Xv.sample(n=min(20_000, len(Xv)), random_state=spec.seed)
    shap = model.contributions(sample).drop(columns="bias").abs().mean().sort_values(ascending=False)
    importance = model.feature_importance()
    figures = {
        "calibration": calibration_plot(yv, scores),
        "roc": roc_plot(yv, {**scores, **rank_by}, {k: m["auroc"] for k, m in metrics.items()}),
        "deciles": decile_plot(evals["model"].tables["deciles"]),
        "shap_summary": bar_plot(shap, "SHAP: mean |contribution| (log-odds)", "mean |SHAP value|"),
        "feature_importance": bar_plot(importance, "LightGBM gain", "total gain"),
    }
    tables = {f"model_{k}": v for k, v in evals["model"].tables.items()}
    tables["shap_summary"] = shap.rename("mean_abs_shap").reset_index().rename(columns={"index": "feature"})
    tables["feature_importance"] = importance.rename("gain").reset_index().rename(columns={"index": "feature"})
    tables["baselines"] = pd.DataFrame(
        [
            {
                "model": k,
                **{
                    m: v[m]
                    for m in ("auroc", "auprc", "brier", "ppv_top1pct", "calibration_slope", "observed_over_expected")
                },
            }
            for k, v in metrics.items()
        ]
    )
    summary = {
        "train_as_of": str(as_of),
        "validation": validation,
        "data_end": str(end),
        "training_people": len(fit_df),
        "training_events": int(y.sum()),
        "validation_people": len(val_df),
        "validation_events": int(yv.sum()),
        "held_out_practices": len(held_practices),
        "features": len(spec.features),
    }
    uri = tracking.configure(workdir, tracking_uri, spec.name)
    with tracking.start_run(f"{spec.name} at {as_of}") as run:
        tracking.log_run(
            params={
                **spec.to_dict(),
                "train_as_of": str(as_of),
                "validation_as_of": str(val_as_of),
                "best_iteration": model.best_iteration_,
            },
            metrics=flat,
            spec_path=Path(spec.source),
            tables=tables,
            figures=figures,
            summary=summary,
            tags={"validation": validation, "riskstrat.stage": "train"},
        )
        version = tracking.log_model(model, Xv, spec.name)
        promoted, reason = _decide(spec.name, version, val_df, yv, metrics["model"]["auroc"])
        tracking.set_tags({"champion_decision": "promoted" if promoted else "kept", "champion_reason": reason})
    for fig in figures.values():
        import matplotlib.pyplot as plt

        plt.close(fig)
    result = TrainResult(
        run.info.run_id, spec.name, version, promoted, reason, validation, metrics, time.perf_counter() - started
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
