"""Exact TreeSHAP for a whole population, computed once per group of people a tree cannot tell apart.

LightGBM's ``pred_contrib`` (path-dependent TreeSHAP, Lundberg et al. 2020) costs about
``trees x leaves x depth^2`` per person: about 230 s for 650,000 people with the champion
model on two cores. But a tree's SHAP values for a person depend only on which side of each
of that tree's splits the person falls. People on the same side of every split of a tree get
the same values from it. So, per tree, this module:

1. codes each person by the tree's own thresholds on each feature the tree uses (the same
   decisions LightGBM makes, including its handling of zeros and missing values), combined into
   one integer per person (a deep tree's combinations can outgrow 64 bits: then those seen so far
   are renumbered 0, 1, … before the next feature is combined);
2. asks LightGBM for that one tree's SHAP values (``start_iteration=t, num_iteration=1``)
   for one representative of each distinct code;
3. adds them to everyone in the group.

An ensemble's TreeSHAP values are the sums of its trees', so the result is LightGBM's own,
to rounding (tested against ``pred_contrib`` on whole populations). It is about ten times
faster on the 1M synthetic population (23 s, not 230 s). A sample of people is still checked against the full
computation on every call, and the full computation is used if they differ.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from lightgbm import Booster

__all__ = ["TREE_OVERHEAD_WORK", "shap_work", "tree_shap", "tree_work"]

log = logging.getLogger(__name__)

#: LightGBM treats |x| <= this as zero (kZeroThreshold in LightGBM's meta.h)
_ZERO = 1e-35
#: people checked against LightGBM's full pred_contrib on each call
CHECK_PEOPLE = 500
_TOLERANCE = 1e-9
#: above this many code combinations in one tree, the combinations seen so far are numbered 0, 1, … first
_MAX_RADIX = 2**62


def _matrix(frame: pd.DataFrame, booster: Booster) -> np.ndarray:
    """The float matrix LightGBM predicts from: categories as codes in the booster's order."""
    cats = iter(booster.pandas_categorical or [])
    cols = []
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.set_categories(next(cats)).cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(cols) if cols else np.empty((len(frame), 0))


def _splits(node: dict, acc: list[dict]) -> list[dict]:
    if "split_index" in node:
        acc.append(node)
        _splits(node["left_child"], acc)
        _splits(node["right_child"], acc)
    return acc


#: the grouping's own cost per tree and person (coding people by the tree's thresholds, numbering
#: the groups, adding the values back), in units of :func:`tree_work`: about 200 ns against about
#: 2 ns per unit on 2 cores (measured at 1.3 million people, ``docs/modelling.md``)
TREE_OVERHEAD_WORK = 100


def tree_work(structure: dict) -> int:
    """The TreeSHAP work of one tree for one person: :data:`TREE_OVERHEAD_WORK` plus the sum over
    its leaves of the leaf's depth squared (a stump: 100 + 2). Path-dependent TreeSHAP visits
    every node and, at each leaf, unwinds the path to it (``depth^2`` steps); grouping people
    saves much of that for shallow trees but little for deep ones, so this bounds the cost from
    above: about 2 ns per unit per person on 2 cores (1.6-3.0 ns measured, ``docs/modelling.md``).

    ``structure``: a tree's ``tree_structure`` from ``Booster.dump_model()``.
    """
    work, stack = TREE_OVERHEAD_WORK, [(structure, 0)]
    while stack:
        node, depth = stack.pop()
        if "split_index" in node:
            stack += [(node["left_child"], depth + 1), (node["right_child"], depth + 1)]
        else:
            work += depth * depth
    return work


def shap_work(booster: Booster, num_iteration: int | None = None, start_iteration: int = 0) -> int:
    """The TreeSHAP work per person of ``num_iteration`` trees from ``start_iteration`` (all
    when None): the sum of :func:`tree_work` over them. What scoring's reasons cost per person,
    whatever the number of people; the learner's ``max_shap_work`` bounds it."""
    dump = booster.dump_model(num_iteration=num_iteration, start_iteration=start_iteration)
    return sum(tree_work(t["tree_structure"]) for t in dump["tree_info"])


class _Coder:
    """Codes people by one feature's thresholds, first over the whole model, then per tree."""

    def __init__(self, values: np.ndarray, splits: list[dict]):
        self.categorical = splits[0]["decision_type"] == "=="
        if self.categorical:
            # Finer than any categorical split needs: one code per category, one for missing.
            self.codes = np.where(np.isnan(values), 0, values + 1).astype(np.int64)
            self.size = int(self.codes.max(initial=0)) + 1
            return
        self.thresholds = np.unique([float(s["threshold"]) for s in splits])
        t = len(self.thresholds)
        codes = np.searchsorted(self.thresholds, values, side="left")
        codes[np.abs(values) <= _ZERO] = t + 1
        codes[np.isnan(values)] = t + 2
        self.codes = codes.astype(np.int32)

    def in_tree(self, splits: list[dict]) -> tuple[np.ndarray, int]:
        """Each person's code for one tree (its thresholds and missing-value rules) and the radix."""
        if self.categorical:
            return self.codes, self.size
        own = np.unique([float(s["threshold"]) for s in splits])
        missing = {s["missing_type"] for s in splits}
        lut = np.empty(len(self.thresholds) + 3, dtype=np.int64)
        lut[: len(self.thresholds)] = np.searchsorted(own, self.thresholds, side="left")
        lut[len(self.thresholds)] = len(own)
        # Zero (and missing, which LightGBM reads as zero unless missing_type is NaN).
        lut[-2] = len(own) + 1 if "Zero" in missing else np.searchsorted(own, 0.0, side="left")
        lut[-1] = len(own) + 2 if "NaN" in missing else lut[-2]
        return lut[self.codes], len(own) + 3


def tree_shap(booster: Booster, frame: pd.DataFrame, num_iteration: int | None = None) -> np.ndarray:
    """SHAP contributions of each feature to each person's log-odds, plus the bias column.

    Parameters
    ----------
    booster : lightgbm.Booster
        A trained binary model.
    frame : DataFrame, shape (n_people, n_features)
        The features in the booster's order, categoricals as pandas categoricals.
    num_iteration : int, optional
        Trees to use (the early-stopping iteration); all trees when None.

    Returns
    -------
    ndarray, shape (n_people, n_features + 1)
        The same values as ``booster.predict(frame, pred_contrib=True)``.
    """
    X = _matrix(frame, booster)
    n, n_features = X.shape
    out = np.zeros((n_features + 1, n))
    if n == 0:
        return out.T
    trees = [_splits(t["tree_structure"], []) for t in booster.dump_model(num_iteration=num_iteration)["tree_info"]]
    by_feature: dict[int, list[dict]] = {}
    for splits in trees:
        for s in splits:
            by_feature.setdefault(s["split_feature"], []).append(s)
    coders = {f: _Coder(X[:, f], splits) for f, splits in by_feature.items()}
    for t, splits in enumerate(trees):
        used = sorted({s["split_feature"] for s in splits})
        key, radix = np.zeros(n, dtype=np.int64), 1
        for f in used:
            codes, size = coders[f].in_tree([s for s in splits if s["split_feature"] == f])
            if radix * size > _MAX_RADIX:  # the key would overflow: number the combinations seen so far
                key, uniques = pd.factorize(key)
                radix = len(uniques)
            key += codes * radix
            radix *= size
        group, uniques = pd.factorize(key)
        groups = len(uniques)
        representative = np.empty(groups, dtype=np.int64)
        representative[group] = np.arange(n)  # any member stands for its group
        phi = booster.predict(X[representative], start_iteration=t, num_iteration=1, pred_contrib=True)
        columns = [*used, n_features]
        for f, values in zip(columns, np.ascontiguousarray(phi[:, columns].T), strict=True):
            out[f] += values.take(group)
    contributions = out.T
    _check(booster, X, contributions, num_iteration)
    return contributions


def _check(booster: Booster, X: np.ndarray, contributions: np.ndarray, num_iteration: int | None) -> None:
    """Compare a sample of people with LightGBM's full computation; replace all if they differ."""
    rng = np.random.default_rng(len(X))
    sample = rng.choice(len(X), size=min(CHECK_PEOPLE, len(X)), replace=False)
    full = booster.predict(X[sample], num_iteration=num_iteration, pred_contrib=True)
    gap = float(np.abs(full - contributions[sample]).max())
    if gap > _TOLERANCE:
        log.warning("grouped TreeSHAP differs from LightGBM's by %.3g: using the full computation", gap)
        contributions[:] = booster.predict(X, num_iteration=num_iteration, pred_contrib=True)
