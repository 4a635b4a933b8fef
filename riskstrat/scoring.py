"""Risk bands and reasons in plain words, from scores and SHAP contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.features import BUILDERS, DAYS_SINCE_NONE

__all__ = ["assign_bands", "bands_of_ranks", "describe", "top_reasons"]

#: a reason must raise the log-odds by at least this much (smaller pushes are not reasons)
MIN_CONTRIBUTION = 0.05
_FEATURES = {f.name: f for b in BUILDERS for f in b.features}
_DEFAULTS = {f.name: f.default for f in _FEATURES.values()}


def assign_bands(scores: pd.Series, bands: list[tuple[str, float]], model_score: pd.Series | None = None) -> pd.Series:
    """Risk band of each score: the highest ``top_share`` of people first.

    ``bands`` are ``(name, cumulative top share)`` in order, the last reaching 1.0. Ties in
    the calibrated score (isotonic calibration is a step function, so there are many) are
    broken by ``model_score``, the model's own log-odds before calibration, when given, and
    then by the index (the pseudonym), so bands are reproducible.
    """
    order = pd.DataFrame(
        {
            "s": scores.to_numpy(),
            "m": np.zeros(len(scores)) if model_score is None else model_score.to_numpy(),
            "k": scores.index.to_numpy(),
        }
    ).sort_values(["s", "m", "k"], ascending=[False, False, True])
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order.index.to_numpy()] = np.arange(1, len(scores) + 1)
    return pd.Series(bands_of_ranks(rank, len(scores), bands), index=scores.index)


def bands_of_ranks(rank: np.ndarray, people: int, bands: list[tuple[str, float]]) -> np.ndarray:
    """Risk band of people at 1-based ``rank`` (1 = highest risk) among ``people``: the rule
    of :func:`assign_bands` for ranks taken over a whole population elsewhere (on Spark)."""
    share = np.asarray(rank) / max(people, 1)
    names = np.array([b[0] for b in bands], dtype=object)
    limits = np.array([b[1] for b in bands])
    return names[np.searchsorted(limits, share - 1e-12, side="left")]


def describe(feature: str, value) -> str:
    """A feature's value in plain words, for a clinician reading a practice list: the reason
    the feature declares (:attr:`riskstrat.features.Feature.reason`); for a name no builder
    declares, the name in words with its value."""
    f = _FEATURES.get(feature)
    if f is not None:
        return f.describe(value)
    v = float(value)
    n = round(v)
    return f"{feature.replace('_', ' ')}: {n if v == n else round(v, 2)}"


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> list[list[str]]:
    """The ``k`` features that raise each person's risk most (positive SHAP), in plain words.

    Only features the person has count as reasons (a zero count or an absent condition is
    never a reason, whatever its contribution).
    """
    contrib = contributions.drop(columns=["bias"], errors="ignore")
    names = list(contrib.columns)
    values = contrib.to_numpy()
    feats = features[names]
    numeric = np.zeros(values.shape, dtype=float)
    usable = np.zeros(values.shape, dtype=bool)
    for j, name in enumerate(names):
        col = feats[name]
        if col.dtype == object or str(col.dtype).startswith(("str", "string", "category")):
            continue
        v = col.to_numpy(dtype=float)
        numeric[:, j] = v
        if name in ("age_years", "imd_decile", "years_registered"):
            usable[:, j] = True
        elif _DEFAULTS.get(name) == DAYS_SINCE_NONE:
            usable[:, j] = v < DAYS_SINCE_NONE  # the declared "none" value is never a reason
        else:
            usable[:, j] = v > 0
    score = np.where(usable & (values >= MIN_CONTRIBUTION), values, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    out = []
    cache: dict[tuple[int, float], str] = {}
    for i in range(values.shape[0]):
        reasons = []
        for j in order[i]:
            if score[i, j] == -np.inf:
                break
            key = (int(j), numeric[i, j])
            if key not in cache:
                cache[key] = describe(names[j], numeric[i, j])
            reasons.append(cache[key])
        out.append(reasons)
    return out
