"""Grouped TreeSHAP gives LightGBM's own pred_contrib values, whatever the data's awkward corners."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskstrat.modelling import treeshap
from riskstrat.modelling.treeshap import tree_shap


def _population(seed: int, n: int = 4000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    admissions = rng.poisson(0.3, n).astype(float)
    cost = np.where(rng.random(n) < 0.6, 0.0, rng.gamma(2.0, 900.0, n))  # many exact zeros
    bmi = np.where(rng.random(n) < 0.25, np.nan, rng.normal(28, 5, n))  # missing values
    frame = pd.DataFrame(
        {
            "age_years": rng.integers(0, 100, n).astype(float),
            "emergency_admissions_365d": admissions,
            "sus_cost_365d": cost,
            "bmi_latest": bmi,
            "sex": pd.Categorical(rng.choice(["1", "2", "9"], n, p=[0.49, 0.49, 0.02])),
            "ethnicity_group": pd.Categorical(rng.choice(["Asian", "Black", "Mixed", "White", "Unknown"], n)),
        }
    )
    logit = -3 + 0.03 * frame["age_years"] + 0.8 * admissions + 0.0002 * cost + np.nan_to_num(bmi - 28) * 0.05
    logit += np.where(frame["sex"] == "9", 1.0, 0.0) + np.where(frame["ethnicity_group"] == "Mixed", 0.5, 0.0)
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def _booster(frame, y, **params) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 20, "verbose": -1, "seed": 1}
    return lgb.train({**base, **params}, lgb.Dataset(frame, y), num_boost_round=40)


@pytest.mark.parametrize(
    "params",
    [
        {},  # missing values go their learned way (missing_type NaN)
        {"zero_as_missing": True},  # zeros and missing go the default way (missing_type Zero)
        {"use_missing": False},  # missing read as zero (missing_type None)
        {"max_cat_to_onehot": 8},  # categorical one-vs-rest splits
    ],
)
def test_grouped_tree_shap_equals_lightgbm_pred_contrib(params, caplog):
    frame, y = _population(7)
    booster = _booster(frame, y, **params)
    with caplog.at_level(logging.WARNING, logger=treeshap.__name__):
        grouped = tree_shap(booster, frame)
    assert not caplog.records  # no fallback to the full computation
    full = booster.predict(frame, pred_contrib=True)
    assert grouped.shape == full.shape == (len(frame), frame.shape[1] + 1)
    np.testing.assert_allclose(grouped, full, rtol=0, atol=1e-12)
    # the contributions add up to each person's log-odds
    np.testing.assert_allclose(grouped.sum(axis=1), booster.predict(frame, raw_score=True), atol=1e-12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 300), trees=st.integers(1, 30))
def test_grouped_tree_shap_on_new_people_and_early_stopped_models(seed, rows, trees):
    frame, y = _population(seed % 5)
    booster = _booster(frame, y)
    scored, _ = _population(seed, n=rows)  # people the model never saw, some in tiny groups
    np.testing.assert_allclose(
        tree_shap(booster, scored, num_iteration=trees),
        booster.predict(scored, num_iteration=trees, pred_contrib=True),
        rtol=0,
        atol=1e-12,
    )


def test_a_disagreement_falls_back_to_lightgbm(monkeypatch, caplog):
    frame, y = _population(3)
    booster = _booster(frame, y)
    # Break the grouping on purpose: every person looks alike to every tree.
    monkeypatch.setattr(treeshap._Coder, "in_tree", lambda self, splits: (np.zeros(len(self.codes), np.int64), 1))
    with caplog.at_level(logging.WARNING, logger=treeshap.__name__):
        values = tree_shap(booster, frame)
    assert "using the full computation" in caplog.text
    np.testing.assert_allclose(values, booster.predict(frame, pred_contrib=True), atol=1e-12)


def test_no_people_gives_an_empty_table():
    frame, y = _population(1)
    assert tree_shap(_booster(frame, y), frame.iloc[:0]).shape == (0, frame.shape[1] + 1)


def test_combinations_renumbered_when_one_integer_cannot_hold_them(monkeypatch, caplog):
    frame, y = _population(11)
    booster = _booster(frame, y)
    monkeypatch.setattr(treeshap, "_MAX_RADIX", 1)  # renumbered before every feature of every tree
    with caplog.at_level(logging.WARNING, logger=treeshap.__name__):
        values = tree_shap(booster, frame)
    assert not caplog.records
    np.testing.assert_allclose(values, booster.predict(frame, pred_contrib=True), rtol=0, atol=1e-12)


def test_trees_without_splits():
    frame, _ = _population(5, n=500)
    y = np.r_[np.zeros(450, int), np.ones(50, int)]
    booster = _booster(frame, y, min_data_in_leaf=300)  # 500 people cannot make two leaves of 300
    assert all("split_index" not in t["tree_structure"] for t in booster.dump_model()["tree_info"])
    np.testing.assert_allclose(tree_shap(booster, frame), booster.predict(frame, pred_contrib=True), atol=1e-12)


def test_a_tree_with_more_code_combinations_than_a_64_bit_integer_holds():
    # Found in CI: a deep tree splitting many features made the combined key overflow int64.
    rng = np.random.default_rng(3)
    n, k = 6000, 30
    frame = pd.DataFrame(rng.normal(size=(n, k)), columns=[f"x{i}" for i in range(k)])
    y = (frame.sum(axis=1) + rng.normal(size=n) > 0).astype(int).to_numpy()
    params = {"objective": "binary", "num_leaves": 255, "min_data_in_leaf": 5, "verbose": -1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(frame, y), num_boost_round=3)

    def combinations(tree):  # the product over the tree's features of (its thresholds + 3)
        features = {s["split_feature"] for s in tree}
        sizes = [len({s["threshold"] for s in tree if s["split_feature"] == f}) + 3 for f in features]
        return int(np.prod(sizes, dtype=object))

    trees = [treeshap._splits(t["tree_structure"], []) for t in booster.dump_model()["tree_info"]]
    radix = max(combinations(tree) for tree in trees)
    assert radix > 2**63  # the case that overflowed
    np.testing.assert_allclose(tree_shap(booster, frame), booster.predict(frame, pred_contrib=True), rtol=0, atol=1e-12)


def test_shap_work_is_the_sum_over_leaves_of_depth_squared_plus_each_trees_overhead():
    per_tree = treeshap.TREE_OVERHEAD_WORK
    frame, y = _population(6, n=3000)
    stumps = _booster(frame, y, num_leaves=2)  # 40 trees of two leaves at depth 1
    assert treeshap.shap_work(stumps) == 40 * (per_tree + 2)
    assert treeshap.shap_work(stumps, num_iteration=10) == 10 * (per_tree + 2)
    # three leaves: one at depth 1 and two at depth 2 (1 + 4 + 4), whichever side LightGBM grows
    three = _booster(frame, y, num_leaves=3)
    assert {treeshap.tree_work(t["tree_structure"]) for t in three.dump_model()["tree_info"]} == {per_tree + 9}
    assert treeshap.shap_work(three, num_iteration=5, start_iteration=30) == 5 * (per_tree + 9)
    # a tree without splits has one leaf at depth 0: only the overhead
    assert treeshap.tree_work({"leaf_index": 0, "leaf_value": 0.1}) == per_tree
