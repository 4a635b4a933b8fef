"""Model specifications (``models/*.yaml``): what to build, validated on load.

A specification names the outcome and horizon, the population, the feature set, the
learner and its parameters, the calibration and the risk bands. Trained artefacts live in
MLflow, never beside the specification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from riskstrat.errors import ConfigError
from riskstrat.features import feature_names
from riskstrat.labels import Outcome

__all__ = ["DEFAULT_SPEC", "MODELS_DIR", "ModelSpec", "RiskBand", "SearchSpec", "load_spec"]

# The shipped specifications live inside the package (riskstrat/defaults/models/, package data in
# pyproject.toml) so that an installed riskstrat finds them. This is the one copy of each: users
# copy one into the repository's models/ to make their own (models/README.md). At the repository
# root they would be missing from the wheel, and a root-level symlink breaks on Windows checkouts.
MODELS_DIR = Path(__file__).resolve().parent.parent / "defaults" / "models"
DEFAULT_SPEC = MODELS_DIR / "emergency_admission_12m.yaml"
_LEARNERS = {"lightgbm", "logistic"}
_LOGISTIC_PARAMS = {"C", "max_iter"}
_LGBM_PARAMS = {
    "learning_rate",
    "num_leaves",
    "min_child_samples",
    "n_estimators",
    "early_stopping_rounds",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
    "max_depth",
}


@dataclass(frozen=True)
class RiskBand:
    name: str
    top_share: float  # upper bound of the cumulative share of the population, highest risk first


@dataclass(frozen=True)
class SearchSpec:
    """The time-budgeted hyperparameter search of the LightGBM learner (Optuna, TPE)."""

    time_budget_seconds: float = 0.0  # 0: no search, the specification's parameters as written
    max_trials: int = 0
    sample_people: int = 0  # trials fit on at most this many people's rows (0: all)

    @property
    def enabled(self) -> bool:
        return self.time_budget_seconds > 0 and self.max_trials > 0


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    outcome: Outcome
    horizon_days: int
    min_age: int
    max_age: int | None
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    learner: str
    params: dict[str, Any]
    calibration: str
    out_of_time: bool
    held_out_practices: float
    risk_bands: tuple[RiskBand, ...]
    seed: int
    source: str = field(default="")
    candidates: tuple[str, ...] = ("lightgbm",)
    logistic_params: dict[str, Any] = field(default_factory=dict)
    search: SearchSpec = field(default_factory=SearchSpec)
    stacked_as_of_dates: int = 1
    max_training_people: int = 0  # 0: everyone

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": str(self.outcome),
            "horizon_days": self.horizon_days,
            "min_age": self.min_age,
            "max_age": self.max_age,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "learner": self.learner,
            "params": self.params,
            "calibration": self.calibration,
            "out_of_time": self.out_of_time,
            "held_out_practices": self.held_out_practices,
            "risk_bands": [{"name": b.name, "top_share": b.top_share} for b in self.risk_bands],
            "seed": self.seed,
            "candidates": list(self.candidates),
            "logistic_params": self.logistic_params,
            "search": {
                "time_budget_seconds": self.search.time_budget_seconds,
                "max_trials": self.search.max_trials,
                "sample_people": self.search.sample_people,
            },
            "stacked_as_of_dates": self.stacked_as_of_dates,
            "max_training_people": self.max_training_people,
        }


def load_spec(path: Path | str | None = None) -> ModelSpec:
    """Read and validate a model specification; errors name the file and the key."""
    path = Path(path) if path else DEFAULT_SPEC

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{path}: {msg}")

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail("model specification not found") from None
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"cannot read model specification ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise fail("a model specification is a mapping")
    for key in ("name", "outcome", "horizon_days", "features", "learner", "calibration", "risk_bands"):
        if key not in raw:
            raise fail(f"missing key '{key}'")
    try:
        outcome = Outcome(raw["outcome"])
    except ValueError:
        raise fail(f"outcome must be one of {[o.value for o in Outcome]}") from None
    horizon = raw["horizon_days"]
    if not isinstance(horizon, int) or not 30 <= horizon <= 1095:
        raise fail("horizon_days must be a whole number of days from 30 to 1095")
    feats = raw["features"] or {}
    known = feature_names()
    include = feats.get("include", "all")
    chosen = known if include == "all" else list(include)
    unknown = [f for f in chosen + list(feats.get("exclude", [])) if f not in known]
    if unknown:
        raise fail(f"features {unknown} are not in the feature table (docs/features.md)")
    chosen = [f for f in chosen if f not in set(feats.get("exclude", []))]
    categorical = list(feats.get("categorical", []))
    if [c for c in categorical if c not in chosen]:
        raise fail("features.categorical must name chosen features")
    learner = raw["learner"] or {}
    if learner.get("type") not in _LEARNERS:
        raise fail(f"learner.type must be one of {sorted(_LEARNERS)}")
    params = dict(learner.get("params") or {})
    bad = set(params) - _LGBM_PARAMS
    if bad:
        raise fail(f"learner.params: unknown parameter(s) {sorted(bad)}; known: {sorted(_LGBM_PARAMS)}")
    candidates = tuple(learner.get("candidates") or [learner["type"]])
    if any(c not in _LEARNERS for c in candidates) or learner["type"] not in candidates:
        raise fail(f"learner.candidates must be learners of {sorted(_LEARNERS)} and include learner.type")
    logistic_params = dict(learner.get("logistic") or {})
    if set(logistic_params) - _LOGISTIC_PARAMS:
        raise fail(f"learner.logistic: known parameters are {sorted(_LOGISTIC_PARAMS)}")
    raw_search = learner.get("search") or {}
    try:
        search = SearchSpec(
            float(raw_search.get("time_budget_seconds", 0)),
            int(raw_search.get("max_trials", 0)),
            int(raw_search.get("sample_people", 0)),
        )
    except (TypeError, ValueError):
        raise fail("learner.search: time_budget_seconds, max_trials and sample_people are numbers") from None
    if min(search.time_budget_seconds, search.max_trials, search.sample_people) < 0:
        raise fail("learner.search: time_budget_seconds, max_trials and sample_people cannot be negative")
    training = raw.get("training") or {}
    stacked = training.get("as_of_dates", 1)
    if not isinstance(stacked, int) or not 1 <= stacked <= 6:
        raise fail("training.as_of_dates must be a whole number from 1 to 6")
    max_people = training.get("max_people", 0)
    if not isinstance(max_people, int) or max_people < 0:
        raise fail("training.max_people must be a whole number of people (0: everyone)")
    if raw["calibration"] not in ("isotonic", "sigmoid"):
        raise fail("calibration must be isotonic or sigmoid")
    bands = []
    last = 0.0
    for b in raw["risk_bands"]:
        share = float(b.get("top_share", 0))
        if not last < share <= 1.0:
            raise fail("risk_bands: top_share must increase, each above the last and at most 1")
        bands.append(RiskBand(str(b["name"]), share))
        last = share
    if last != 1.0:
        raise fail("risk_bands: the last band must reach top_share 1.0 (everyone has a band)")
    pop = raw.get("population") or {}
    validation = raw.get("validation") or {}
    held = float(validation.get("held_out_practices", 0.0))
    if not 0.0 <= held < 0.5:
        raise fail("validation.held_out_practices must be a share from 0 to below 0.5")
    return ModelSpec(
        name=str(raw["name"]),
        description=str(raw.get("description", "")).strip(),
        outcome=outcome,
        horizon_days=horizon,
        min_age=int(pop.get("min_age", 0)),
        max_age=pop.get("max_age"),
        features=tuple(chosen),
        categorical=tuple(categorical),
        learner=learner["type"],
        params=params,
        calibration=raw["calibration"],
        out_of_time=bool(validation.get("out_of_time", True)),
        held_out_practices=held,
        risk_bands=tuple(bands),
        seed=int(raw.get("seed", 0)),
        source=str(path),
        candidates=candidates,
        logistic_params=logistic_params,
        search=search,
        stacked_as_of_dates=stacked,
        max_training_people=max_people,
    )
