"""The baselines keep scikit-learn's estimator contract, and take their columns from the
whole feature table as training gives it to them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from riskstrat.modelling.estimators import QADMISSIONS_FEATURES, PriorAdmissionsRule, QAdmissionsLikeLogistic

#: scikit-learn's checks feed arrays without column names: the baselines take columns by position
CHECKED = [
    PriorAdmissionsRule(column=0),
    QAdmissionsLikeLogistic(features=None, age_column=None, categorical=()),
    QAdmissionsLikeLogistic(features=None, age_column=0, categorical=()),
]


def _expected_failures(estimator) -> dict[str, str]:
    """The checks an estimator declares it fails, with the reasons."""
    return getattr(estimator, "_expected_failed_checks", dict)()


@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failures, xfail_strict=True)
def test_baselines_pass_the_scikit_learn_estimator_checks(estimator, check):
    """Every check passes, or fails as the estimator declares (strict: a check that starts to
    pass must be taken off the list)."""
    check(estimator)


def test_every_expected_failure_has_a_reason():
    for estimator in CHECKED:
        assert all(len(reason) > 20 for reason in _expected_failures(estimator).values())
    assert list(_expected_failures(PriorAdmissionsRule())) == ["check_positive_only_tag_during_fit"]
    assert _expected_failures(QAdmissionsLikeLogistic()) == {}


def test_the_tags_say_what_is_true():
    rule, logistic = get_tags(PriorAdmissionsRule()), get_tags(QAdmissionsLikeLogistic())
    assert rule.input_tags.positive_only and not logistic.input_tags.positive_only  # a count is never negative
    assert rule.classifier_tags.poor_score  # one count ranks people; it does not classify well
    assert not rule.classifier_tags.multi_class and not logistic.classifier_tags.multi_class
    with pytest.raises(ValueError, match="Negative values in data"):
        PriorAdmissionsRule().fit(pd.DataFrame({"emergency_admissions_365d": [0, -1, 2, 3]}), [0, 1, 0, 1])


def _feature_table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A feature table as training holds it: the QAdmissions-like columns among others
    (pseudonym, practice, as-of date, the label itself)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.integers(0, 2, n) for c in QADMISSIONS_FEATURES})
    frame["age_years"] = rng.integers(18, 100, n)
    frame["imd_decile"] = rng.integers(1, 11, n)
    frame["emergency_admissions_365d"] = rng.poisson(0.4, n)
    frame["sex"] = pd.Series(rng.choice(["F", "M"], n), dtype="string")
    risk = 1 / (1 + np.exp(-(-4 + 0.04 * frame["age_years"] + 0.8 * frame["emergency_admissions_365d"])))
    y = (rng.random(n) < risk).astype(int)
    frame.insert(0, "pseudonym", [f"{i:064x}" for i in range(n)])
    frame["practice_code"] = rng.choice(["Y90000", "Y90001"], n)
    frame["as_of"] = pd.Timestamp("2024-10-01")
    frame["label"] = y
    return frame, y


@pytest.mark.parametrize("baseline", [PriorAdmissionsRule(), QAdmissionsLikeLogistic()])
def test_baselines_use_their_named_columns_of_whatever_table_they_are_given(baseline):
    """Training fits on the stacked table (with ``as_of``) and predicts on the validation
    table (without it): only the named columns count, in any order."""
    fit_frame, y = _feature_table(2000, 1)
    model = clone(baseline).fit(fit_frame, y)
    assert list(model.feature_names_in_) == list(fit_frame.columns) and model.n_features_in_ == fit_frame.shape[1]
    rep_frame, _ = _feature_table(300, 2)
    p = model.predict_proba(rep_frame)
    assert p.shape == (300, 2) and np.allclose(p.sum(axis=1), 1)
    shuffled = rep_frame.drop(columns=["as_of", "label"]).iloc[:, ::-1]
    assert np.array_equal(model.predict_proba(shuffled), p)
    assert np.array_equal(model.predict(rep_frame), model.classes_[(p[:, 1] > 0.5).astype(int)])
    with pytest.raises(ValueError, match="columns missing from X: \\['emergency_admissions_365d'\\]"):
        model.predict_proba(rep_frame.drop(columns="emergency_admissions_365d"))


def test_qadmissions_codes_sex_as_a_category_and_age_as_a_spline():
    frame, y = _feature_table(3000, 3)
    model = QAdmissionsLikeLogistic().fit(frame, y)
    age, categorical, numeric = model.columns_
    assert age == ["age_years"] and categorical == ["sex"]
    assert numeric == [c for c in QADMISSIONS_FEATURES if c not in ("age_years", "sex")]
    assert model.log_scale_.all()  # counts, flags and deciles: never negative, so on a log scale
    person = frame.iloc[:1]
    p = [model.predict_proba(person.assign(age_years=a))[0, 1] for a in (30, 60, 90)]
    assert p[0] < p[1] < p[2]  # the simulated risk rises with age


def test_baselines_predict_the_probability_of_the_second_class_whatever_its_label():
    X = pd.DataFrame({"emergency_admissions_365d": [0] * 8 + [2] * 4})
    labels = np.array(["no"] * 7 + ["yes"] + ["yes"] * 3 + ["no"])
    rule = PriorAdmissionsRule().fit(X, labels)
    assert list(rule.classes_) == ["no", "yes"]
    overall = 4 / 12
    assert rule.rates_[0] == pytest.approx((1 + overall) / 9)
    assert rule.rates_[2] == pytest.approx((3 + overall) / 5)
    assert list(rule.predict(pd.DataFrame({"emergency_admissions_365d": [0, 2]}))) == ["no", "yes"]
