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
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier, early_stopping
from scipy.special import logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, SplineTransformer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from riskstrat.modelling.treeshap import tree_shap

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


class AdmissionRiskModel(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees (LightGBM) with early stopping and held-out calibration.

    ``fit`` splits the people it is given three ways (stratified, seeded): trees are grown on
    ``1 - validation_share - calibration_share``, stopped early on ``validation_share`` and
    calibrated on ``calibration_share``. Categorical columns are named in ``categorical``.

    Parameters mirror LightGBM's; ``calibration`` is ``"isotonic"`` or ``"sigmoid"``.
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


class QAdmissionsLikeLogistic(ClassifierMixin, BaseEstimator):
    """Logistic regression on a QAdmissions-like set (age as a spline, sex, deprivation,
    conditions, prior emergency admissions, key drug classes). A strong, transparent baseline."""

    def __init__(self, features=QADMISSIONS_FEATURES, C=1.0, max_iter=2000):
        self.features = features
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, y):
        X = _frame(X)
        y = np.asarray(y).astype(int)
        self.classes_ = np.unique(y)
        cols = [c for c in self.features if c in X.columns]
        categorical = [c for c in cols if X[c].dtype == object or str(X[c].dtype).startswith("str") or c == "sex"]
        numeric = [c for c in cols if c not in categorical and c != "age_years"]
        transform = ColumnTransformer(
            [
                ("age", SplineTransformer(n_knots=6, degree=3), ["age_years"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                ("num", StandardScaler(), numeric),
            ]
        )
        self.pipeline_ = make_pipeline(transform, LogisticRegression(C=self.C, max_iter=self.max_iter))
        frame = X[cols].copy()
        for c in categorical:
            frame[c] = frame[c].astype(str)
        frame[numeric] = np.log1p(frame[numeric].clip(lower=0).astype(float))
        self.columns_ = (cols, categorical, numeric)
        self.pipeline_.fit(frame, y)
        return self

    def _frame(self, X) -> pd.DataFrame:
        cols, categorical, numeric = self.columns_
        frame = _frame(X)[cols].copy()
        for c in categorical:
            frame[c] = frame[c].astype(str)
        frame[numeric] = np.log1p(frame[numeric].clip(lower=0).astype(float))
        return frame

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self._frame(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


class PriorAdmissionsRule(ClassifierMixin, BaseEstimator):
    """Rank by emergency admissions in the last year; the score is the observed rate of the
    outcome among training people with the same count (counts above ``cap`` pooled)."""

    def __init__(self, column="emergency_admissions_365d", cap=5):
        self.column = column
        self.cap = cap

    def fit(self, X, y):
        y = np.asarray(y).astype(int)
        self.classes_ = np.unique(y)
        k = np.minimum(_frame(X)[self.column].to_numpy(dtype=float), self.cap).astype(int)
        rates = np.zeros(self.cap + 1)
        for i in range(self.cap + 1):
            sel = k == i
            # pooled towards the overall rate so an empty count still has a sensible value
            rates[i] = (y[sel].sum() + y.mean()) / (sel.sum() + 1)
        self.rates_ = np.maximum.accumulate(rates)  # more admissions never lowers the risk
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "rates_")
        k = np.minimum(_frame(X)[self.column].to_numpy(dtype=float), self.cap).astype(int)
        p = self.rates_[k]
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
