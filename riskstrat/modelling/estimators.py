"""Admission-risk estimators (scikit-learn contract): the model and two honest baselines.

* :class:`AdmissionRiskModel` — LightGBM with early stopping, then calibrated on people it
  never saw (isotonic or Platt), from a feature table to a calibrated probability.
* :class:`LogisticRiskModel` — penalised logistic regression on every feature (age as a
  spline, counts on a log scale): the other candidate learner; it competes with LightGBM
  on out-of-time validation and is registered when it wins.
* :class:`QAdmissionsLikeLogistic` — logistic regression on a small QAdmissions-like set:
  age, sex, deprivation, condition flags, prior emergency admissions, key drug classes.
* :class:`PriorAdmissionsRule` — the rule many commissioners use: the count of emergency
  admissions in the last year (its observed rate per count, so it is a probability too).

All take a pandas DataFrame (the feature table's columns), store constructor arguments
unchanged, return ``self`` from ``fit`` and keep learned state in attributes ending ``_``.
The baselines name the columns they use in their parameters (the feature table's names by
default, so they can be given the whole table; positions work too, on any 2-d array) and
pass scikit-learn's estimator checks (``tests/test_estimator_checks.py``).
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier, early_stopping
from lightgbm.callback import CallbackEnv, EarlyStopException
from scipy.special import logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, SplineTransformer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from riskstrat.modelling.treeshap import shap_work, tree_shap, tree_work

__all__ = [
    "QADMISSIONS_FEATURES",
    "AdmissionRiskModel",
    "LogisticRiskModel",
    "PriorAdmissionsRule",
    "QAdmissionsLikeLogistic",
    "split_people",
]

_EPS = 1e-6
MIN_ISOTONIC_EVENTS = 300


def split_people(y: np.ndarray, groups, shares: tuple[float, ...], random_state: int) -> list[np.ndarray]:
    """Row indices split into parts of about ``shares`` of the rows, the rest in the first.

    Without ``groups`` rows are split stratified by ``y``. With ``groups`` (one value per row,
    e.g. the pseudonym when several as-of dates are stacked) whole groups are assigned, so one
    person's rows never fall on two sides of a split.
    """
    idx = np.arange(len(y))
    if groups is None:
        parts, rest = [], idx
        remaining = 1.0
        for share in shares:
            rest, part = train_test_split(
                rest, test_size=share / remaining, stratify=y[rest], random_state=random_state
            )
            parts.append(part)
            remaining -= share
        return [rest, *parts]
    codes, uniques = pd.factorize(pd.Series(groups), sort=True)
    order = np.random.default_rng(random_state).permutation(len(uniques))
    position = np.empty(len(uniques), dtype=float)
    position[order] = (np.arange(len(uniques)) + 0.5) / len(uniques)  # each group's place in (0, 1)
    u = position[codes]
    edges = np.cumsum((0.0, *shares))
    parts = [idx[(u >= lo) & (u < hi)] for lo, hi in itertools.pairwise(edges)]
    return [idx[u >= edges[-1]], *parts]


def _fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray):
    """(method used, fitted calibrator) mapping a learner's raw probability to a calibrated one.

    Isotonic regression needs enough events to be trusted at the top of the range; with fewer
    than MIN_ISOTONIC_EVENTS in the calibration set, Platt scaling (sigmoid) is used instead.
    """
    if method not in ("isotonic", "sigmoid"):
        raise ValueError("calibration must be isotonic or sigmoid")
    if method == "isotonic" and y.sum() >= MIN_ISOTONIC_EVENTS:
        return "isotonic", IsotonicRegression(y_min=_EPS, y_max=1 - _EPS, out_of_bounds="clip").fit(raw, y)
    return "sigmoid", LogisticRegression(C=1e6).fit(logit(np.clip(raw, _EPS, 1 - _EPS))[:, None], y)


def _calibration_rows(cal_idx: np.ndarray, calibrate_on) -> np.ndarray:
    """The calibration people's rows limited to ``calibrate_on`` (all of them when it is None or
    selects none of them)."""
    if calibrate_on is None:
        return cal_idx
    kept = cal_idx[np.asarray(calibrate_on, dtype=bool)[cal_idx]]
    return kept if kept.size else cal_idx


def _calibrated(method: str, calibrator, raw: np.ndarray) -> np.ndarray:
    if method == "isotonic":
        return calibrator.predict(raw)
    return calibrator.predict_proba(logit(np.clip(raw, _EPS, 1 - _EPS))[:, None])[:, 1]


def _frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-d table of features, got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


class _ShapWorkBudget:
    """LightGBM callback: stops adding trees before their TreeSHAP work per person (the sum of
    :func:`~riskstrat.modelling.treeshap.tree_work`) passes ``limit``, keeping the best number of
    trees so far on the first validation metric, as early stopping does (at least one tree).

    Counted in trees, not iterations: an iteration whose tree cannot split adds no tree, and
    LightGBM goes on, so the two drift apart; the model keeps exactly the trees counted."""

    order = 40  # after LightGBM's early stopping (30) at each iteration

    def __init__(self, limit: int):
        self.limit = limit
        self.work = 0
        self.trees = 0
        self.best: tuple[int, list] | None = None  # (trees, validation scores with them)
        self.best_score: float | None = None
        self.stopped = False

    def __call__(self, env: CallbackEnv) -> None:
        trees = env.model.current_iteration()
        if trees > self.trees:
            added = env.model.dump_model(start_iteration=self.trees, num_iteration=trees - self.trees)["tree_info"]
            work = sum(tree_work(t["tree_structure"]) for t in added)
            if self.best is not None and self.work + work > self.limit:
                self.stopped = True
                raise EarlyStopException(self.best[0] - 1, self.best[1])  # keeps best[0] trees
            self.work, self.trees = self.work + work, trees
        if self.trees == 0:
            return
        results = list(env.evaluation_result_list or [])
        if not results:  # nothing to judge by: the latest trees are the best
            self.best = (self.trees, results)
            return
        _, _, score, maximize = results[0][:4]
        if self.best_score is None or (score > self.best_score if maximize else score < self.best_score):
            self.best, self.best_score = (self.trees, results), score


class AdmissionRiskModel(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees (LightGBM) with early stopping and held-out calibration.

    ``fit`` splits the people it is given three ways (stratified, seeded): trees are grown on
    ``1 - validation_share - calibration_share``, stopped early on ``validation_share`` and
    calibrated on ``calibration_share``. Categorical columns are named in ``categorical``.

    Parameters mirror LightGBM's; ``calibration`` is ``"isotonic"`` or ``"sigmoid"``.
    ``max_shap_work`` (None: no bound) bounds what the reasons of one person cost to compute:
    trees stop being added before their TreeSHAP work per person
    (:func:`~riskstrat.modelling.treeshap.shap_work`) would pass it, and the best iteration
    within it is kept. So scoring a population with reasons takes a time proportional to the
    number of people, whatever capacity the search chose. ``shap_work_`` is the fitted model's
    work; ``stopped_by_shap_work_`` says whether the bound stopped it.
    """

    def __init__(
        self,
        categorical=(),
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=200,
        n_estimators=3000,
        early_stopping_rounds=100,
        subsample=0.8,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        max_depth=-1,
        calibration="isotonic",
        validation_share=0.15,
        calibration_share=0.15,
        random_state=0,
        max_shap_work=None,
    ):
        self.categorical = categorical
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_depth = max_depth
        self.calibration = calibration
        self.validation_share = validation_share
        self.calibration_share = calibration_share
        self.random_state = random_state
        self.max_shap_work = max_shap_work

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM treats missing values natively
        tags.classifier_tags.multi_class = False  # an outcome happens or it does not
        return tags

    def _as_frame(self, X, reset: bool) -> pd.DataFrame:
        """A DataFrame keeps its columns (categoricals included); anything else is validated
        as a dense numeric array (sparse input is refused)."""
        if isinstance(X, pd.DataFrame):
            if not reset:
                missing = [c for c in self.feature_names_in_ if c not in X.columns]
                if missing:
                    raise ValueError(f"features missing from the table: {missing[:5]}")
            elif X.shape[0] < 2:
                raise ValueError(f"n_samples={X.shape[0]}: need at least 2 people to train")
            return X
        arr = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", ensure_min_samples=2 if reset else 1)
        return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X[list(self.feature_names_in_)].copy()
        for c in self.categorical:
            out[c] = pd.Categorical(out[c].astype(str), categories=self.categories_[c])
        for c in out.columns:
            if c not in self.categorical:
                out[c] = pd.to_numeric(out[c], errors="coerce").astype("float32")
        return out

    def fit(self, X, y, groups=None, calibrate_on=None):
        """Fit on people ``X`` (one row each, or several as-of dates stacked with ``groups``
        naming the person of each row: then whole people go to fitting, early stopping or
        calibration, never one person to two of them).

        ``calibrate_on`` (optional, one boolean per row): the calibration people's rows that
        the calibration is fitted on, e.g. the newest stacked date only, so the probabilities
        carry the most recent year's rate of the outcome.
        """
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = self._as_frame(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {y_type}.")
        self.classes_, y = np.unique(y, return_inverse=True)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.categories_ = {c: sorted(X[c].astype(str).unique()) for c in self.categorical}
        data = self._prepare(X)
        idx = np.arange(len(y))
        # Small data cannot be split three ways: then the trees stop at n_estimators and are
        # calibrated on the people they were grown on (flagged in small_sample_).
        self.small_sample_ = bool(np.bincount(y).min() < 20)
        if self.small_sample_:
            fit_idx = val_idx = cal_idx = idx
        else:
            fit_idx, val_idx, cal_idx = split_people(
                y, groups, (self.validation_share, self.calibration_share), self.random_state
            )
        self.booster_ = LGBMClassifier(
            objective="binary",
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            n_estimators=self.n_estimators,
            subsample=self.subsample,
            subsample_freq=1,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            max_depth=self.max_depth,
            random_state=self.random_state,
            n_jobs=2,
            verbose=-1,
        )
        callbacks = [] if self.small_sample_ else [early_stopping(self.early_stopping_rounds, verbose=False)]
        budget = None if self.max_shap_work is None else _ShapWorkBudget(int(self.max_shap_work))
        if budget is not None:
            callbacks.append(budget)
        self.booster_.fit(
            data.iloc[fit_idx],
            y[fit_idx],
            eval_X=(data.iloc[val_idx],),
            eval_y=(y[val_idx],),
            eval_metric="binary_logloss",
            categorical_feature=list(self.categorical) or "auto",
            callbacks=callbacks,
        )
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.n_estimators)
        self.shap_work_ = shap_work(self.booster_.booster_, self.best_iteration_)
        self.stopped_by_shap_work_ = bool(budget is not None and budget.stopped)
        cal_idx = _calibration_rows(cal_idx, calibrate_on)
        raw = self.booster_.predict_proba(data.iloc[cal_idx])[:, 1]
        self.calibration_used_, self.calibrator_ = _fit_calibrator(self.calibration, raw, y[cal_idx])
        self.n_calibration_ = int(cal_idx.size)
        return self

    def raw_proba(self, X) -> np.ndarray:
        """Uncalibrated probability from the trees."""
        check_is_fitted(self, "booster_")
        return self.booster_.predict_proba(self._prepare(self._as_frame(X, reset=False)))[:, 1]

    def predict_proba(self, X) -> np.ndarray:
        raw = self.raw_proba(X)
        used = getattr(self, "calibration_used_", self.calibration)  # models saved before 0.1
        p = _calibrated(used, self.calibrator_, raw)
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "booster_")
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def decision_function(self, X) -> np.ndarray:
        return logit(np.clip(self.predict_proba(X)[:, 1], _EPS, 1 - _EPS))

    def contributions(self, X) -> pd.DataFrame:
        """SHAP contributions (log-odds, LightGBM's path-dependent TreeSHAP) per feature, plus ``bias``.

        Computed with :func:`riskstrat.modelling.treeshap.tree_shap`: LightGBM's own values,
        once per group of people each tree cannot tell apart.
        """
        check_is_fitted(self, "booster_")
        frame = self._as_frame(X, reset=False)
        contrib = tree_shap(self.booster_.booster_, self._prepare(frame), self.best_iteration_)
        return pd.DataFrame(contrib, columns=[*self.feature_names_in_, "bias"], index=frame.index)

    def feature_importance(self) -> pd.Series:
        check_is_fitted(self, "booster_")
        gain = self.booster_.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)


class LogisticRiskModel(ClassifierMixin, BaseEstimator):
    """Penalised (L2) logistic regression on every feature: the candidate learner that
    competes with LightGBM.

    Each numeric column that is never negative is put on a log scale (``log1p``: counts,
    days, money), the others are kept; all are standardised. ``age_column`` is a cubic spline,
    ``categorical`` columns are one-hot coded. The model is fitted on ``1 - calibration_share``
    of the people and calibrated (``"isotonic"`` or ``"sigmoid"``) on the rest, split by person
    as :class:`AdmissionRiskModel` does. :meth:`contributions` are exact: each feature's share
    of the linear predictor (log-odds) against the average person, plus ``bias``.
    """

    def __init__(
        self,
        categorical=(),
        age_column="age_years",
        C=0.1,
        max_iter=500,
        calibration="isotonic",
        calibration_share=0.15,
        random_state=0,
    ):
        self.categorical = categorical
        self.age_column = age_column
        self.C = C
        self.max_iter = max_iter
        self.calibration = calibration
        self.calibration_share = calibration_share
        self.random_state = random_state

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        """The standardised design matrix, filled in place column block by column block (one
        array of the final size: no stacked copies, whatever the number of rows)."""
        z = np.empty((len(X), self.owner_.size), dtype=np.float64)
        at = 0
        for name, kind in self.columns_:
            if kind == "categorical":
                block = self.encoders_[name].transform(X[[name]].astype(str)).toarray()
            elif kind == "spline":
                block = self.encoders_[name].transform(X[[name]].to_numpy(dtype=float))
            else:
                x = pd.to_numeric(X[name], errors="coerce").fillna(0.0).to_numpy(dtype=float)
                block = (np.log1p(np.clip(x, 0.0, None)) if kind == "log" else x)[:, None]
            z[:, at : at + block.shape[1]] = block
            at += block.shape[1]
        z -= self.center_
        z /= self.scale_
        return z

    def fit(self, X, y, groups=None, calibrate_on=None):
        """As :meth:`AdmissionRiskModel.fit`: people split whole, calibration on ``calibrate_on`` rows."""
        X = _frame(X)
        y = column_or_1d(y)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if self.classes_.size != 2:
            raise ValueError("LogisticRiskModel needs both outcomes in y")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.columns_, self.encoders_ = [], {}
        for c in X.columns:
            if c in self.categorical:
                self.columns_.append((c, "categorical"))
                self.encoders_[c] = OneHotEncoder(handle_unknown="ignore").fit(X[[c]].astype(str))
            elif c == self.age_column:
                self.columns_.append((c, "spline"))
                self.encoders_[c] = SplineTransformer(n_knots=6, degree=3).fit(X[[c]].to_numpy(dtype=float))
            else:
                x = pd.to_numeric(X[c], errors="coerce")
                self.columns_.append((c, "log" if x.min() >= 0 else "linear"))
        widths = []
        for name, kind in self.columns_:
            if kind == "categorical":
                widths.append(len(self.encoders_[name].categories_[0]))
            elif kind == "spline":
                widths.append(self.encoders_[name].n_features_out_)
            else:
                widths.append(1)
        self.owner_ = np.repeat(np.arange(len(self.columns_)), widths)  # design column -> feature
        self.center_, self.scale_ = 0.0, 1.0
        z = self._design(X)
        center, spread = z.mean(axis=0), z.std(axis=0)
        self.center_, self.scale_ = center, np.where(spread > 0, spread, 1.0)
        z -= self.center_
        z /= self.scale_
        fit_idx, cal_idx = split_people(y, groups, (self.calibration_share,), self.random_state)
        # The calibration people weigh nothing in the fit (the same fit as leaving them out,
        # without a copy of the design matrix).
        weight = np.zeros(len(y))
        weight[fit_idx] = 1.0
        self.logistic_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(z, y, sample_weight=weight)
        cal_idx = _calibration_rows(cal_idx, calibrate_on)
        raw_p = self.logistic_.predict_proba(z[cal_idx])[:, 1]
        self.calibration_used_, self.calibrator_ = _fit_calibrator(self.calibration, raw_p, y[cal_idx])
        self.n_calibration_ = int(cal_idx.size)
        return self

    def _z(self, X) -> np.ndarray:
        check_is_fitted(self, "logistic_")
        X = _frame(X)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"features missing from the table: {missing[:5]}")
        return self._design(X)

    def raw_proba(self, X) -> np.ndarray:
        """Probability from the logistic regression before calibration."""
        return self.logistic_.predict_proba(self._z(X))[:, 1]

    def predict_proba(self, X) -> np.ndarray:
        p = _calibrated(self.calibration_used_, self.calibrator_, self.raw_proba(X))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def decision_function(self, X) -> np.ndarray:
        return self.logistic_.decision_function(self._z(X))

    def contributions(self, X) -> pd.DataFrame:
        """Each feature's part of the log-odds (before calibration), plus ``bias``; rows add
        up to :meth:`decision_function`. The standardised design is centred on the training
        mean, so a contribution is the feature's pull away from the average person."""
        z = self._z(X)
        terms = z * self.logistic_.coef_[0]
        out = np.zeros((z.shape[0], len(self.columns_) + 1))
        np.add.at(out.T, self.owner_, terms.T)
        out[:, -1] = self.logistic_.intercept_[0]
        return pd.DataFrame(out, columns=[*self.feature_names_in_, "bias"], index=_frame(X).index)

    def feature_importance(self) -> pd.Series:
        """Sum of absolute standardised coefficients of each feature's design columns."""
        check_is_fitted(self, "logistic_")
        weight = np.zeros(len(self.columns_))
        np.add.at(weight, self.owner_, np.abs(self.logistic_.coef_[0]))
        return pd.Series(weight, index=self.feature_names_in_).sort_values(ascending=False)


QADMISSIONS_FEATURES = (
    "age_years",
    "sex",
    "imd_decile",
    "heart_failure",
    "copd",
    "asthma",
    "diabetes",
    "chd",
    "af",
    "stroke",
    "ckd",
    "cancer",
    "dementia",
    "smi",
    "depression",
    "hypertension",
    "emergency_admissions_365d",
    "items_anticoagulants_182d",
    "items_oral_corticosteroids_182d",
    "items_antipsychotics_182d",
    "items_opioids_182d",
    "care_home",
)


def _selected(estimator, X, columns, *, reset: bool) -> pd.DataFrame:
    """The columns of the table ``X`` that ``estimator`` uses, each labelled by its name or
    position (values not yet checked).

    ``columns`` holds column names, or positions, or is None for every column. By name, ``X``
    must be a DataFrame; its other columns are ignored and may differ between fit and predict
    (only the named ones must be there, in any order). By position, ``X`` is any 2-d table and
    scikit-learn's rules apply: predict must be given the columns fit saw, in the same order.
    Either way fit records ``n_features_in_``, and ``feature_names_in_`` for a DataFrame with
    string column names (checked cheaply: only the used columns are converted).
    """
    name = type(estimator).__name__
    by_name = columns is not None and any(isinstance(c, str) for c in columns)
    if by_name:
        if not all(isinstance(c, str) for c in columns):
            raise ValueError(f"{name}: give the columns all by name or all by position, not both")
        if not isinstance(X, pd.DataFrame):
            raise ValueError(
                f"{name} uses columns by name ({', '.join(list(columns)[:3])}, ...): X must be a DataFrame "
                "(or give the columns by position)"
            )
        if reset:
            validate_data(estimator, X, reset=True, skip_check_array=True)
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise ValueError(f"{name}: columns missing from X: {missing}")
        return X[list(columns)]
    if isinstance(X, pd.DataFrame):
        validate_data(estimator, X, reset=reset, skip_check_array=True)
        table = X
    else:
        table = pd.DataFrame(validate_data(estimator, X, reset=reset))
    positions = list(range(table.shape[1])) if columns is None else [int(c) for c in columns]
    outside = [c for c in positions if not 0 <= c < table.shape[1]]
    if outside:
        raise ValueError(f"{name}: column positions {outside} are outside X, which has {table.shape[1]} columns")
    return table.iloc[:, positions].set_axis(positions, axis=1)


def _numbers(table: pd.DataFrame) -> np.ndarray:
    """The columns as a new float array: at least one row, no missing or infinite values."""
    return check_array(table, dtype=np.float64, copy=True, input_name="X")


def _binary_target(estimator, y, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes_, y coded 0/1)`` for a target with two outcomes; ``classes_[1]`` is the one
    whose probability is predicted (1 for the 0/1 labels of the feature table)."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n_samples:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n_samples}, {y.shape[0]}]")
    check_classification_targets(y)
    y_type = type_of_target(y, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError(f"Only binary classification is supported. The type of the target is {y_type}.")
    classes, coded = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"{type(estimator).__name__} needs both outcomes in y: found 1 class")
    return classes, coded


class QAdmissionsLikeLogistic(ClassifierMixin, BaseEstimator):
    """Logistic regression on a QAdmissions-like set (age as a spline, sex, deprivation,
    conditions, prior emergency admissions, key drug classes). A strong, transparent baseline.

    ``age_column`` is a cubic spline; the ``categorical`` columns, and any column holding
    text, are one-hot coded (a category not seen in fit counts as none); every other column is
    standardised, on a log scale (``log1p``, values below 0 read as 0) when it was never
    negative in fit (counts, flags, deciles).

    Parameters
    ----------
    features : sequence of str or int, or None, default QADMISSIONS_FEATURES
        The columns used, by name (``X`` is a DataFrame, e.g. the whole feature table; its
        other columns are ignored) or by position; None for every column of ``X``.
    age_column : str or int or None, default "age_years"
        One of ``features``, modelled as a spline; None for no spline.
    categorical : sequence of str or int, default ("sex",)
        Columns among ``features`` to one-hot code.
    C : float, default 1.0
        Inverse strength of the L2 penalty.
    max_iter : int, default 2000
        Iterations of the solver.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The outcomes; the probability of ``classes_[1]`` is the risk.
    columns_ : tuple of (list, list, list)
        The spline, one-hot and numeric columns.
    log_scale_ : ndarray of shape (n_numeric,)
        Whether each numeric column is put on a log scale.
    pipeline_ : Pipeline
        The encoding and the fitted logistic regression.
    n_iter_ : ndarray of shape (1,)
        Iterations the solver took.
    n_features_in_ : int
        Columns of the ``X`` given to fit (all of them, used or not).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Their names, when ``X`` had string column names.
    """

    def __init__(
        self, features=QADMISSIONS_FEATURES, age_column="age_years", categorical=("sex",), C=1.0, max_iter=2000
    ):
        self.features = features
        self.age_column = age_column
        self.categorical = categorical
        self.C = C
        self.max_iter = max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # an outcome happens or it does not
        return tags

    def fit(self, X, y):
        """Fit on people ``X`` (one row each) with outcomes ``y`` (two values)."""
        table = _selected(self, X, self.features, reset=True)
        if table.shape[0] == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={table.shape}) while a minimum of 1 is required.")
        self.classes_, y = _binary_target(self, y, table.shape[0])
        labels = list(table.columns)
        named = [*self.categorical, *([] if self.age_column is None else [self.age_column])]
        unknown = [c for c in named if c not in labels]
        if unknown:
            raise ValueError(f"{type(self).__name__}: {unknown} (age_column, categorical) are not among the features")
        categorical = [c for c in labels if c in self.categorical or not pd.api.types.is_numeric_dtype(table[c])]
        if self.age_column is not None and self.age_column in categorical:
            raise ValueError(f"{type(self).__name__}: the age column {self.age_column!r} must hold numbers")
        age = [] if self.age_column is None else [self.age_column]
        numeric = [c for c in labels if c not in categorical and c not in age]
        values = _numbers(table[numeric]) if numeric else np.empty((table.shape[0], 0))
        self.log_scale_ = (values >= 0).all(axis=0)
        self.columns_ = (age, categorical, numeric)
        transform = ColumnTransformer(
            [
                ("age", SplineTransformer(n_knots=6, degree=3), [str(c) for c in age]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), [str(c) for c in categorical]),
                ("num", StandardScaler(), [str(c) for c in numeric]),
            ]
        )
        self.pipeline_ = make_pipeline(transform, LogisticRegression(C=self.C, max_iter=self.max_iter))
        self.pipeline_.fit(self._design(table), y)
        self.n_iter_ = self.pipeline_[-1].n_iter_
        return self

    def _design(self, table: pd.DataFrame) -> pd.DataFrame:
        """The encoder's input: ages and numbers as floats (the log scale applied), categories as text."""
        age, categorical, numeric = self.columns_
        design = pd.DataFrame(index=range(table.shape[0]))
        for c in age:
            design[str(c)] = _numbers(table[[c]])[:, 0]
        for c in categorical:
            design[str(c)] = table[c].astype(str).to_numpy(dtype=object)
        if numeric:
            values = _numbers(table[numeric])
            values[:, self.log_scale_] = np.log1p(np.clip(values[:, self.log_scale_], 0.0, None))
            for i, c in enumerate(numeric):
                design[str(c)] = values[:, i]
        return design

    def predict_proba(self, X) -> np.ndarray:
        """Shape (n_people, 2): the probabilities of ``classes_[0]`` and ``classes_[1]``."""
        check_is_fitted(self)
        return self.pipeline_.predict_proba(self._design(_selected(self, X, self.features, reset=False)))

    def predict(self, X) -> np.ndarray:
        """Shape (n_people,): the more probable outcome."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PriorAdmissionsRule(ClassifierMixin, BaseEstimator):
    """Rank by emergency admissions in the last year; the score is the observed rate of the
    outcome among training people with the same count (counts above ``cap`` pooled).

    Each count's rate is pooled towards the overall rate by one pseudo-person (so a count no
    one had still has a sensible value) and never falls as the count rises. A count is a
    whole number: fractions are rounded down; a negative count is refused.

    Parameters
    ----------
    column : str or int, default "emergency_admissions_365d"
        The count: a column name (``X`` is a DataFrame, e.g. the whole feature table; its
        other columns are ignored) or a position.
    cap : int, default 5
        Counts above ``cap`` share its rate.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The outcomes; the rate is that of ``classes_[1]``.
    rates_ : ndarray of shape (cap + 1,)
        The probability of ``classes_[1]`` for a count of 0, 1, ..., ``cap``.
    n_features_in_ : int
        Columns of the ``X`` given to fit (all of them, used or not).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Their names, when ``X`` had string column names.
    """

    def __init__(self, column="emergency_admissions_365d", cap=5):
        self.column = column
        self.cap = cap

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # a count of admissions
        tags.classifier_tags.multi_class = False  # an outcome happens or it does not
        tags.classifier_tags.poor_score = True  # one count ranks people; it is not meant to classify well
        return tags

    def _expected_failed_checks(self) -> dict[str, str]:
        """scikit-learn's estimator checks this estimator fails, each with the reason (for
        ``parametrize_with_checks(expected_failed_checks=...)``: scikit-learn 1.6 took them out
        of the tags)."""
        return {
            "check_positive_only_tag_during_fit": (
                "only the count column must not be negative (others are ignored); the check makes X negative "
                "on average, which leaves some columns, the first included, positive"
            )
        }

    def _counts(self, X, reset: bool, y=None) -> np.ndarray:
        """The capped counts of ``X``'s people (at fit, with ``y`` checked before the counts)."""
        if not isinstance(self.column, str | numbers.Integral):
            raise ValueError(f"column must be a column name or position, not {self.column!r}")
        x = _numbers(_selected(self, X, [self.column], reset=reset))[:, 0]
        if reset:
            self.classes_, y = _binary_target(self, y, x.size)
        if (x < 0).any():
            raise ValueError(f"Negative values in data passed to {type(self).__name__}: {self.column!r} is a count")
        return np.minimum(x, self.cap).astype(int), y

    def fit(self, X, y):
        """Fit on people ``X`` (one row each) with outcomes ``y`` (two values)."""
        if not isinstance(self.cap, numbers.Integral) or self.cap < 0:
            raise ValueError(f"cap must be a whole number of admissions (0 or more), not {self.cap!r}")
        k, y = self._counts(X, reset=True, y=y)
        rates = np.zeros(self.cap + 1)
        for i in range(self.cap + 1):
            sel = k == i
            rates[i] = (y[sel].sum() + y.mean()) / (sel.sum() + 1)
        self.rates_ = np.maximum.accumulate(rates)  # more admissions never lowers the risk
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Shape (n_people, 2): the probabilities of ``classes_[0]`` and ``classes_[1]``."""
        check_is_fitted(self)
        p = self.rates_[self._counts(X, reset=False)[0]]
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        """Shape (n_people,): the more probable outcome."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
