"""Model specifications (``models/*.yaml``): what to build, validated on load.

A specification names the outcome and horizon, the population, the feature set, the
learner and its parameters, the calibration and the risk bands. Trained artefacts live in
MLflow, never beside the specification.

A specification is a tree of pydantic models (:class:`riskstrat.config.Settings`), one field
per key of the file. Defaults: the shipped ``emergency_admission_12m.yaml`` is the default
model (``load_spec()``); the field defaults below say what a key left out of a specification
means, and are declared only here (``docs/modelling.md`` lists them). The rest of riskstrat
reads a specification through :class:`ModelSpec`'s flat attributes (``spec.features``,
``spec.params``, ``spec.stacked_as_of_dates``...), which keep the file's layout out of the code.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from riskstrat.config import Settings, invalid, load_settings
from riskstrat.features import feature_names
from riskstrat.labels import Outcome

__all__ = [
    "DEFAULT_SPEC",
    "MODELS_DIR",
    "Calibration",
    "FeatureSet",
    "Learner",
    "LearnerSpec",
    "ModelSpec",
    "Population",
    "RiskBand",
    "SearchSpec",
    "TrainingSpec",
    "ValidationSpec",
    "load_spec",
]

# The shipped specifications live inside the package (riskstrat/defaults/models/, package data in
# pyproject.toml) so that an installed riskstrat finds them. This is the one copy of each: users
# copy one into the repository's models/ to make their own (models/README.md). At the repository
# root they would be missing from the wheel, and a root-level symlink breaks on Windows checkouts.
MODELS_DIR = Path(__file__).resolve().parent.parent / "defaults" / "models"
DEFAULT_SPEC = MODELS_DIR / "emergency_admission_12m.yaml"


class Learner(StrEnum):
    """The learners a specification can name (:mod:`riskstrat.modelling.selection`)."""

    LIGHTGBM = "lightgbm"
    LOGISTIC = "logistic"


class Calibration(StrEnum):
    """How scores are calibrated on held-out people: isotonic regression or Platt's sigmoid."""

    ISOTONIC = "isotonic"
    SIGMOID = "sigmoid"


#: the LightGBM parameters a specification may set (``learner.params``)
LightGBMParam = Literal[
    "learning_rate",
    "num_leaves",
    "min_child_samples",
    "n_estimators",
    "early_stopping_rounds",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
    "max_depth",
    "max_shap_work",
]
#: the logistic regression parameters a specification may set (``learner.logistic``)
LogisticParam = Literal["C", "max_iter"]


class RiskBand(Settings):
    """One risk band: ``top_share`` is the upper bound of the cumulative share of the
    population, highest risk first (0.05: the 5% at highest risk, less the bands above)."""

    name: str
    top_share: float = Field(gt=0, le=1)


class SearchSpec(Settings):
    """``learner.search``: the time-budgeted hyperparameter search of the LightGBM learner
    (Optuna, TPE)."""

    #: wall clock for the trials, seconds (0: no search, the specification's parameters as written)
    time_budget_seconds: float = Field(0.0, ge=0)
    max_trials: int = Field(0, ge=0)
    #: trials fit on at most this many people's rows (0: all)
    sample_people: int = Field(0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.time_budget_seconds > 0 and self.max_trials > 0


class Population(Settings):
    """``population``: who is scored and trained on, by age at the as-of date."""

    min_age: int = Field(0, ge=0)
    max_age: int | None = Field(None, ge=0)  # None: no upper limit


def _all_features(value: Any) -> Any:
    if isinstance(value, str):
        if value != "all":
            raise PydanticCustomError("features", "must be all or a list of features")
        return feature_names()
    return value


class FeatureSet(Settings):
    """``features``: the feature table's columns (``docs/features.md``) the model uses."""

    #: ``all`` or a list of features
    include: Annotated[list[str], BeforeValidator(_all_features)] = Field(default_factory=feature_names)
    exclude: list[str] = Field(default_factory=list)
    #: chosen features the learner treats as categories
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_features(self) -> FeatureSet:
        known = set(feature_names())
        for key in ("include", "exclude"):
            for i, name in enumerate(getattr(self, key)):
                if name not in known:
                    raise invalid((key, i), "not in the feature table (docs/features.md lists them)", name)
        chosen = set(self.chosen)
        for i, name in enumerate(self.categorical):
            if name not in chosen:
                raise invalid(("categorical", i), "must name a chosen feature (in include, not in exclude)", name)
        return self

    @property
    def chosen(self) -> tuple[str, ...]:
        excluded = set(self.exclude)
        return tuple(f for f in self.include if f not in excluded)


class LearnerSpec(Settings):
    """``learner``: the learner named first, the candidates that compete with it, and their
    parameters."""

    type: Learner
    #: every candidate is trained; the best on the out-of-time selection half is registered
    #: (None: only ``type``)
    candidates: list[Learner] | None = None
    #: the logistic regression's parameters
    logistic: dict[LogisticParam, Any] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    #: LightGBM's parameters: the starting point, always the search's first trial
    params: dict[LightGBMParam, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _type_competes(self) -> LearnerSpec:
        if self.candidates is not None and self.type not in self.candidates:
            raise invalid(
                ("candidates",), f"must include learner.type ({self.type})", [str(c) for c in self.candidates]
            )
        budget = self.params.get("max_shap_work")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise invalid(("params", "max_shap_work"), "must be a whole number of at least 1", budget)
        return self


class TrainingSpec(Settings):
    """``training``: how many as-of dates are stacked and how many people are trained on."""

    #: populations stacked at D, D - 1 year, ... (one horizon apart)
    as_of_dates: int = Field(1, ge=1, le=6)
    #: above this many people at D, a fixed share of people is trained on (0: everyone)
    max_people: int = Field(0, ge=0)


class ValidationSpec(Settings):
    """``validation``: how the model is validated."""

    #: validate at as-of + horizon when the data allow it
    out_of_time: bool = True
    #: share of practices held out of training (0: none)
    held_out_practices: float = Field(0.0, ge=0, lt=0.5)


class ModelSpec(Settings):
    """A model specification: the file's keys as fields (``features`` and ``learner`` as
    :attr:`feature_set` and :attr:`learner_spec`, so that ``spec.features`` and
    ``spec.learner`` can be the chosen features and the learner's name). Build with
    :func:`load_spec`."""

    name: str
    description: str = ""
    outcome: Outcome
    horizon_days: int = Field(ge=30, le=1095)
    population: Population = Population()
    feature_set: FeatureSet = Field(alias="features")
    learner_spec: LearnerSpec = Field(alias="learner")
    training: TrainingSpec = TrainingSpec()
    calibration: Calibration
    validation: ValidationSpec = ValidationSpec()
    #: cumulative shares of the population, highest risk first; the last reaches 1.0
    risk_bands: tuple[RiskBand, ...]
    seed: int = 0

    _source: str = PrivateAttr(default="")

    @field_validator("description")
    @classmethod
    def _strip(cls, text: str) -> str:
        return text.strip()

    @field_validator("risk_bands")
    @classmethod
    def _bands_cover_everyone(cls, bands: tuple[RiskBand, ...]) -> tuple[RiskBand, ...]:
        for i in range(1, len(bands)):
            if bands[i].top_share <= bands[i - 1].top_share:
                raise invalid(
                    (i, "top_share"), f"must be above the band before's ({bands[i - 1].top_share})", bands[i].top_share
                )
        if not bands or bands[-1].top_share != 1.0:
            last = bands[-1].top_share if bands else None
            raise invalid(
                (len(bands) - 1, "top_share") if bands else (),
                "the last band must reach 1.0 (everyone has a band)",
                last,
            )
        return bands

    @property
    def source(self) -> str:
        """The file the specification was read from."""
        return self._source

    @property
    def min_age(self) -> int:
        return self.population.min_age

    @property
    def max_age(self) -> int | None:
        return self.population.max_age

    @property
    def features(self) -> tuple[str, ...]:
        """The chosen features, in the feature table's order."""
        return self.feature_set.chosen

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(self.feature_set.categorical)

    @property
    def learner(self) -> Learner:
        return self.learner_spec.type

    @property
    def candidates(self) -> tuple[Learner, ...]:
        return tuple(self.learner_spec.candidates or [self.learner_spec.type])

    @property
    def params(self) -> dict[str, Any]:
        return self.learner_spec.params

    @property
    def logistic_params(self) -> dict[str, Any]:
        return self.learner_spec.logistic

    @property
    def search(self) -> SearchSpec:
        return self.learner_spec.search

    @property
    def out_of_time(self) -> bool:
        return self.validation.out_of_time

    @property
    def held_out_practices(self) -> float:
        return self.validation.held_out_practices

    @property
    def stacked_as_of_dates(self) -> int:
        return self.training.as_of_dates

    @property
    def max_training_people(self) -> int:
        """0: everyone."""
        return self.training.max_people

    def to_dict(self) -> dict[str, Any]:
        """The specification as plain values (logged to MLflow and hashed: keep it stable)."""
        return {
            "name": self.name,
            "outcome": self.outcome.value,
            "horizon_days": self.horizon_days,
            "min_age": self.min_age,
            "max_age": self.max_age,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "learner": self.learner.value,
            "params": dict(self.params),
            "calibration": self.calibration.value,
            "out_of_time": self.out_of_time,
            "held_out_practices": self.held_out_practices,
            "risk_bands": [{"name": b.name, "top_share": b.top_share} for b in self.risk_bands],
            "seed": self.seed,
            "candidates": [c.value for c in self.candidates],
            "logistic_params": dict(self.logistic_params),
            "search": {
                "time_budget_seconds": self.search.time_budget_seconds,
                "max_trials": self.search.max_trials,
                "sample_people": self.search.sample_people,
            },
            "stacked_as_of_dates": self.stacked_as_of_dates,
            "max_training_people": self.max_training_people,
        }


def load_spec(path: Path | str | None = None) -> ModelSpec:
    """Read and validate a model specification (``None``: the default model, :data:`DEFAULT_SPEC`).

    Raises
    ------
    ConfigError
        One line naming the file and the key (``m.yaml: risk_bands[1].top_share: ...``).
    """
    path = Path(path) if path else DEFAULT_SPEC
    spec = load_settings(ModelSpec, path, "model specification")
    spec._source = str(path)
    return spec
