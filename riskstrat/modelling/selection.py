"""Choosing the model: a time-budgeted hyperparameter search and a competition of learners.

Both are judged on the same people: the *selection* half of the out-of-time validation
population (:func:`selection_split`); the other half is kept for the figures that are
reported and for the champion gate, so the search's own optimism never reaches a report.

* :func:`search_lightgbm` runs Optuna's TPE sampler over LightGBM's capacity and
  regularisation, within a wall-clock budget and a number of trials, each trial fitted on
  a sample of whole people (all their stacked rows) so that the budget buys trials, not one
  slow fit. The specification's own parameters are always the first trial.
* :func:`compete` fits every candidate learner on all the training rows (LightGBM with the
  best parameters found) and keeps the one with the highest selection AUROC.

Why Optuna: a well-kept library with a seeded sampler, a timeout and a study history that
can be logged as a table; hand-written random search would be less efficient per trial.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from riskstrat.modelling.estimators import AdmissionRiskModel, LogisticRiskModel
from riskstrat.modelling.spec import ModelSpec

__all__ = ["Candidate", "PeopleShare", "Selection", "compete", "person_unit", "search_lightgbm", "selection_split"]

SELECTION_SHARE = 0.5
#: LightGBM's parameters the search chooses (the others are the specification's as written). The
#: learning rate is among them because the reasons' budget (``max_shap_work``) bounds the number of
#: trees: a higher rate reaches within fewer trees what a lower one would need more for.
_SEARCHED = ("num_leaves", "min_child_samples", "reg_lambda", "colsample_bytree", "subsample", "learning_rate")


def person_unit(pseudonyms: pd.Series, seed: int) -> np.ndarray:
    """A number in [0, 1) per person from a keyed hash of the pseudonym, not a random draw:
    the same person gets the same number in every run with the same seed, whatever the order
    of the table, and every row of a person (stacked dates) the same number."""
    salt = str(seed).encode()
    h = np.fromiter(
        (int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8, key=salt).digest(), "big") for p in pseudonyms),
        dtype=np.uint64,
        count=len(pseudonyms),
    )
    return h / np.float64(2**64)


@dataclass(frozen=True)
class PeopleShare:
    """A fixed share of people, chosen by :func:`person_unit` (a keyed hash of the pseudonym with
    ``seed``), not by a random draw: the same people at every date, in every run and on every
    engine, whatever the order of the table. Training above ``training.max_people`` reads only
    these people, and the feature stage builds the training dates' tables for only them."""

    seed: int
    share: float

    def kept(self, pseudonyms: pd.Series) -> np.ndarray:
        """True for the people in the share."""
        return person_unit(pseudonyms, self.seed) < self.share

    def as_dict(self) -> dict[str, float]:
        return {"seed": self.seed, "share": self.share}


def selection_split(pseudonyms: pd.Series, seed: int) -> np.ndarray:
    """True for people in the selection half of a validation population."""
    return person_unit(pseudonyms, seed) < SELECTION_SHARE


def _rank_score(estimator, X: pd.DataFrame) -> np.ndarray:
    """The score a learner's lists are ranked by (uncalibrated, so calibration steps do not tie people)."""
    return estimator.raw_proba(X)


@dataclass
class Candidate:
    learner: str
    estimator: Any
    selection_auroc: float
    fit_seconds: float
    params: dict[str, Any]


@dataclass
class Selection:
    chosen: Candidate
    candidates: list[Candidate]
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "learner": c.learner,
                    "selection_auroc": c.selection_auroc,
                    "fit_seconds": round(c.fit_seconds, 1),
                    "chosen": c is self.chosen,
                    "params": str(c.params),
                }
                for c in self.candidates
            ]
        )


def _lightgbm(spec: ModelSpec, params: dict[str, Any]) -> AdmissionRiskModel:
    return AdmissionRiskModel(
        categorical=spec.categorical, calibration=spec.calibration, random_state=spec.seed, **params
    )


def _sample_people(groups: pd.Series, limit: int, seed: int) -> np.ndarray:
    """Row mask of at most ``limit`` whole people (all their stacked rows)."""
    people = pd.unique(groups)
    if limit <= 0 or len(people) <= limit:
        return np.ones(len(groups), dtype=bool)
    chosen = np.random.default_rng(seed).choice(people, size=limit, replace=False)
    return groups.isin(chosen).to_numpy()


def search_lightgbm(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: pd.Series,
    X_sel: pd.DataFrame,
    y_sel: np.ndarray,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The best LightGBM parameters by selection AUROC, and one row per trial.

    Without a search budget in the specification, its parameters as written and no trials.
    """
    if not spec.search.enabled:
        return dict(spec.params), pd.DataFrame()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mask = _sample_people(groups, spec.search.sample_people, spec.seed)
    Xs, ys, gs = X[mask], y[mask], groups[mask]
    rows: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        params = {
            **spec.params,
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 50, 2000, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 100.0, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        }
        started = time.perf_counter()
        model = _lightgbm(spec, params).fit(Xs, ys, groups=gs)
        auroc = float(roc_auc_score(y_sel, _rank_score(model, X_sel)))
        rows.append(
            {
                "trial": trial.number,
                **{k: params[k] for k in trial.params},
                "best_iteration": model.best_iteration_,
                "shap_work": model.shap_work_,
                "stopped_by_shap_work": model.stopped_by_shap_work_,
                "selection_auroc": auroc,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        return auroc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed))
    start = {k: spec.params[k] for k in _SEARCHED if k in spec.params}
    study.enqueue_trial(start)
    study.optimize(objective, n_trials=spec.search.max_trials, timeout=spec.search.time_budget_seconds)
    best = {**spec.params, **study.best_params}
    return best, pd.DataFrame(rows)


def compete(
    spec: ModelSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: pd.Series,
    X_sel: pd.DataFrame,
    y_sel: np.ndarray,
    calibrate_on: np.ndarray | None = None,
) -> Selection:
    """Fit every candidate learner of the specification; the best selection AUROC wins.

    ``calibrate_on``: the rows each learner's calibration may use (see ``AdmissionRiskModel.fit``).
    """
    trials = pd.DataFrame()
    candidates = []
    for learner in spec.candidates:
        started = time.perf_counter()
        if learner == "lightgbm":
            params, trials = search_lightgbm(spec, X, y, groups, X_sel, y_sel)
            estimator = _lightgbm(spec, params).fit(X, y, groups=groups, calibrate_on=calibrate_on)
        else:
            params = dict(spec.logistic_params)
            estimator = LogisticRiskModel(
                categorical=spec.categorical, calibration=spec.calibration, random_state=spec.seed, **params
            ).fit(X, y, groups=groups, calibrate_on=calibrate_on)
        auroc = float(roc_auc_score(y_sel, _rank_score(estimator, X_sel)))
        candidates.append(Candidate(learner, estimator, auroc, time.perf_counter() - started, params))
    chosen = max(candidates, key=lambda c: c.selection_auroc)
    return Selection(chosen, candidates, trials)
