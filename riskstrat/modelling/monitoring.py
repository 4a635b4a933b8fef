"""Monitoring a deployed model month by month: population stability and performance with and
without labels. Tables and arrays in, figures out: no paths, no MLflow (``docs/modelling.md``,
"Safe monthly operation").

* **Population stability index** (PSI) of each feature and of the score against the training
  population: the reference is cut into (up to) ten bins at its deciles (a categorical feature:
  one bin per level, plus "other"), and ``PSI = sum((a - e) * ln(a / e))`` over the bins, with
  ``e`` the reference's share and ``a`` this month's (a share of 0 counts as 0.0001, so an empty
  bin gives a large but finite term). Below 0.1 is usually read as no shift, 0.1 to 0.25 as a
  moderate one, above 0.25 as a major one.
* **Expected performance without labels**, from the calibrated probabilities alone
  (confidence-based performance estimation, as NannyML's CBPE): if the model is calibrated,
  person ``i`` has the event with probability ``p_i``, so the expected ROC curve has
  ``TPR(t) = sum(p_i, s_i >= t) / sum(p_i)`` and ``FPR(t) = sum(1 - p_i, s_i >= t) /
  sum(1 - p_i)``, and the expected AUROC is its area: the probability-weighted share of
  (event, non-event) pairs the ranking orders correctly, ties counting a half. The expected PPV
  of a band threshold is the mean probability of the people flagged at it; the expected
  sensitivity, their share of the expected events. It is an estimate under the model's own
  calibration, so it sees a change in *who* is scored (covariate shift) but not a change in how
  risk follows from the features (concept shift): the realised figures, once outcomes have
  matured, see both.
* **Realised performance** on people whose outcome window has closed: AUROC (with the
  Hanley-McNeil standard error), observed over expected events (with the standard error of the
  observed count under calibration, ``sqrt(sum p(1 - p))``), the calibration slope and the PPV
  at each band threshold.

A warning needs the figure past its threshold (``monitoring`` settings, :mod:`riskstrat.config`)
and, for realised figures, past the noise of the population's size (two standard errors), so a
small population does not raise alarms by chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "PSI_BINS",
    "PSI_FLOOR",
    "SCORE_DECIMALS",
    "anticipated",
    "as_stored",
    "expected_auroc",
    "expected_performance",
    "finite",
    "flagged_at",
    "list_order",
    "ppv_se",
    "profile_of",
    "psi",
    "realised_performance",
    "reference_profile",
]

PSI_BINS = 10
#: decimals of the risk and model scores as the score stage stores them, and as monitoring bins
#: them: a calibrated risk is a step function, so whole groups of people sit on one value, and a
#: bin edge taken at full precision would split them differently from the stored scores
SCORE_DECIMALS = 6
#: the share an empty bin counts as in the PSI (keeps the logarithm finite)
PSI_FLOOR = 1e-4
#: a realised PPV is given only over at least this many people flagged (an expected PPV, a mean
#: of probabilities, over at least MIN_FLAGGED_EXPECTED)
MIN_FLAGGED = 50
MIN_FLAGGED_EXPECTED = 10
_OTHER = "(other)"


def profile_of(values: pd.Series, categorical: bool) -> dict:
    """The bins of one column of the reference population and its share in each: decile edges of
    a numeric column (repeated edges merged: a count that is mostly 0 gets fewer bins), the
    levels of a categorical one (plus "other"). Only edges and shares: no person's value."""
    n = max(len(values), 1)
    if categorical:
        counts = values.astype(str).value_counts()
        levels = sorted(counts.index.tolist())
        shares = [float(counts[v]) / n for v in levels] + [0.0]
        return {"levels": [*levels, _OTHER], "shares": shares}
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    edges = np.unique(np.quantile(x, np.linspace(0, 1, PSI_BINS + 1)[1:-1], method="lower")) if len(x) else np.array([])
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "shares": (counts / max(len(x), 1)).tolist()}


def _shares(profile: dict, values: pd.Series) -> np.ndarray:
    if "levels" in profile:
        known = profile["levels"][:-1]
        v = values.astype(str)
        counts = [float((v == level).sum()) for level in known] + [float((~v.isin(known)).sum())]
        return np.asarray(counts) / max(len(v), 1)
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    edges = np.asarray(profile["edges"], dtype=float)
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)
    return counts / max(len(x), 1)


def as_stored(profile: dict) -> dict:
    """A score profile with its bin edges at the decimals the scores are stored to
    (:data:`SCORE_DECIMALS`). A calibrated risk is a step function: tens of
    thousands of people share one value, which is often a decile edge; against an edge at full
    precision, the stored (rounded) value of a whole step can fall in the next bin, and the PSI
    of an unchanged population read 0.52 at 2,000,000 people. References made since are binned
    on rounded scores (:func:`reference_profile`), where this changes nothing."""
    edges = np.round(np.asarray(profile["edges"], dtype=float), SCORE_DECIMALS)
    return {**profile, "edges": edges.tolist()}


def psi(profile: dict, values: pd.Series) -> float:
    """The population stability index of ``values`` against the reference ``profile``
    (:func:`profile_of`)."""
    expected = np.maximum(np.asarray(profile["shares"], dtype=float), PSI_FLOOR)
    actual = np.maximum(_shares(profile, values), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def list_order(risk: np.ndarray, model_score: np.ndarray | None = None) -> np.ndarray:
    """Each person's rank as the practice lists order people (1 = lowest risk; equal rank for a
    tie in both): by calibrated risk, then by the model's own score where calibration ties them."""
    risk = np.asarray(risk, dtype=float)
    second = np.zeros(len(risk)) if model_score is None else np.asarray(model_score, dtype=float)
    pairs = np.rec.fromarrays([risk, second])
    _, inverse = np.unique(pairs, return_inverse=True)
    return inverse.astype(float) + 1


def flagged_at(rank: np.ndarray, top_share: float) -> np.ndarray:
    """True for the people a band threshold flags: the ``top_share`` of people by ``rank``
    (highest first), as :func:`riskstrat.scoring.bands_of_ranks` assigns bands."""
    n = len(rank)
    order = np.argsort(-np.asarray(rank), kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(1, n + 1)
    return position / max(n, 1) - 1e-12 <= top_share


def expected_auroc(p: np.ndarray, rank: np.ndarray) -> float:
    """The AUROC the ranking ``rank`` would have if the outcomes followed the calibrated
    probabilities ``p``: the area under the expected ROC curve (ties count a half)."""
    p = np.asarray(p, dtype=float)
    if len(p) == 0:
        return float("nan")
    levels, inverse = np.unique(-np.asarray(rank, dtype=float), return_inverse=True)  # highest rank first
    tp = np.bincount(inverse, weights=p, minlength=len(levels))
    fp = np.bincount(inverse, weights=1 - p, minlength=len(levels))
    tpr = np.concatenate([[0.0], np.cumsum(tp)]) / max(p.sum(), 1e-12)
    fpr = np.concatenate([[0.0], np.cumsum(fp)]) / max((1 - p).sum(), 1e-12)
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


def _band_key(name: str) -> str:
    return "_".join(name.split())


def expected_performance(p: np.ndarray, rank: np.ndarray, bands: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Performance expected from the calibrated probabilities ``p`` of people ranked by ``rank``:
    ``people``, ``expected_events``, ``expected_prevalence``, ``expected_brier``
    (``mean p(1 - p)``), ``expected_auroc``, and for each band threshold but the last (``bands``:
    name and cumulative top share, highest risk first) ``expected_ppv_<band>`` and
    ``expected_sensitivity_<band>`` (flagged: that band and the ones above it)."""
    p = np.asarray(p, dtype=float)
    out = {
        "people": float(len(p)),
        "expected_events": float(p.sum()),
        "expected_prevalence": float(p.mean()) if len(p) else float("nan"),
        "expected_brier": float(np.mean(p * (1 - p))) if len(p) else float("nan"),
        "expected_auroc": expected_auroc(p, rank),
    }
    for name, share in bands:
        if share >= 1:
            continue
        flagged = flagged_at(rank, share)
        key = _band_key(name)
        enough = flagged.sum() >= MIN_FLAGGED_EXPECTED
        out[f"expected_ppv_{key}"] = float(p[flagged].mean()) if enough else float("nan")
        out[f"expected_sensitivity_{key}"] = float(p[flagged].sum() / max(p.sum(), 1e-12))
    return out


def ppv_se(ppv: float | None, flagged: float | None) -> float:
    """The binomial standard error of a PPV over ``flagged`` people (0 when either is unknown)."""
    if ppv is None or not flagged or not math.isfinite(ppv):
        return 0.0
    return math.sqrt(ppv * (1 - ppv) / flagged)


def _auroc_se(auroc: float, events: int, non_events: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUROC."""
    a = auroc
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (events - 1) * (q1 - a * a) + (non_events - 1) * (q2 - a * a)) / max(events * non_events, 1)
    return float(math.sqrt(max(var, 0.0)))


def _slope(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration slope: logistic regression of the outcome on the logit of ``p``."""
    from sklearn.linear_model import LogisticRegression

    q = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log(q / (1 - q)).reshape(-1, 1)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(LogisticRegression(C=1e6, max_iter=1000).fit(logit, y).coef_[0, 0])


def realised_performance(
    y: np.ndarray, p: np.ndarray, rank: np.ndarray, bands: Sequence[tuple[str, float]]
) -> dict[str, float]:
    """Performance realised once outcomes ``y`` (0/1) have matured, for people with calibrated
    probabilities ``p`` ranked by ``rank``: ``people``, ``events``, ``auroc`` and ``auroc_se``,
    ``observed_over_expected`` and ``oe_z`` (the observed count's distance from the expected in
    standard errors under calibration), ``calibration_slope``, and at each band threshold but the
    last the people flagged (``flagged_<band>``) and the PPV (``ppv_<band>``, over at least
    :data:`MIN_FLAGGED` people)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    events, people = int(y.sum()), len(y)
    out: dict[str, float] = {"people": float(people), "events": float(events)}
    if 0 < events < people:
        auroc = float(roc_auc_score(y, rank))
        out["auroc"] = auroc
        out["auroc_se"] = _auroc_se(auroc, events, people - events)
    else:
        out["auroc"] = out["auroc_se"] = float("nan")
    expected = float(p.sum())
    out["observed_over_expected"] = events / expected if expected > 0 else float("nan")
    sd = math.sqrt(float(np.sum(p * (1 - p))))
    out["oe_z"] = (events - expected) / sd if sd > 0 else float("nan")
    out["calibration_slope"] = _slope(y, p)
    for name, share in bands:
        if share >= 1:
            continue
        flagged = flagged_at(rank, share)
        out[f"flagged_{_band_key(name)}"] = float(flagged.sum())
        out[f"ppv_{_band_key(name)}"] = float(y[flagged].mean()) if flagged.sum() >= MIN_FLAGGED else float("nan")
    return out


def reference_profile(
    features: pd.DataFrame,
    categorical: Sequence[str],
    risk: np.ndarray,
    expected: dict[str, float],
    population: str,
    validation: dict[str, float] | None = None,
) -> dict:
    """What monitoring compares each month with: the bins and shares of every feature of
    ``features`` (the training population) and of its calibrated risk ``risk``, the performance
    expected without labels on the validation population (``expected``:
    :func:`expected_performance`) and, when known, the performance realised there
    (``validation``: :func:`realised_performance`). ``population`` says in words which
    population it is."""
    return {
        "population": population,
        "people": len(features),
        "features": {c: profile_of(features[c], c in categorical) for c in features.columns},
        "score": profile_of(pd.Series(np.round(np.asarray(risk, dtype=float), SCORE_DECIMALS)), False),
        "expected": finite(expected),
        "validation": None if validation is None else finite(validation),
    }


def finite(figures: dict[str, float]) -> dict[str, float | None]:
    """The figures with a missing (NaN or infinite) value as None, as JSON holds them."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in figures.items()}


def anticipated(
    validation: float | None, expected_then: float | None, expected_reference: float | None
) -> float | None:
    """What a figure should be on a new population, from what it was on the validation people and
    how much the label-free estimate moved between them: ``validation + (expected_then -
    expected_reference)``. Label-free estimates are biased where the model's calibration is off
    (an over-confident isotonic step function inflates the expected AUROC); the bias cancels in
    the difference, the measured validation figure carries the level. Without a validation
    figure, the label-free estimate itself."""
    if expected_then is None:
        return None
    if validation is None or expected_reference is None:
        return expected_then
    return validation + (expected_then - expected_reference)
