"""Risk bands and reasons in plain words, from scores and SHAP contributions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from riskstrat.features import BUILDERS, DAYS_SINCE_NONE
from riskstrat.features.registry import ReasonKind, RowReason

__all__ = [
    "GROUPS",
    "TOP",
    "assign_bands",
    "bands_of_ranks",
    "describe",
    "kind_of",
    "reason_inputs",
    "reasons",
    "top_reasons",
]

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


def describe(feature: str, value, row: Mapping[str, float] | None = None) -> str:
    """A feature's value in plain words, for a clinician reading a practice list: the reason
    the feature declares (:attr:`riskstrat.features.Feature.reason`; ``row``, the person's
    other features, for a reason that names them); for a name no builder declares, the name in
    words with its value."""
    f = _FEATURES.get(feature)
    if f is not None:
        return f.describe(value, row)
    v = float(value)
    n = round(v)
    return f"{feature.replace('_', ' ')}: {n if v == n else round(v, 2)}"


def kind_of(feature: str) -> ReasonKind:
    """What a feature's reason is to a clinician (:class:`~riskstrat.features.registry.ReasonKind`,
    declared on the feature); background for a name no builder declares."""
    f = _FEATURES.get(feature)
    return f.kind if f is not None else ReasonKind.BACKGROUND


def reason_inputs(inputs: list[str]) -> list[str]:
    """The feature columns, beyond a model's ``inputs``, that the reasons of those inputs read
    (a register count names the registers): scoring reads them with the inputs."""
    extra: dict[str, None] = {}
    for name in inputs:
        f = _FEATURES.get(name)
        if f is not None and isinstance(f.reason, RowReason):
            extra |= dict.fromkeys(c for c in f.reason.reads if c not in inputs)
    return list(extra)


#: the groups of reasons :func:`reasons` gives: the top ones whatever their kind, then each kind
TOP = "top"
GROUPS = (TOP, *(k.value for k in ReasonKind))


def reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> dict[str, list[list[str]]]:
    """Each person's reasons in plain words, in three groups: ``"top"``, the ``k`` features that
    raise the risk most (largest positive SHAP contribution), whatever their kind; and, by
    :class:`~riskstrat.features.registry.ReasonKind`, the ``k`` largest ``"actionable"`` ones and
    the ``k`` largest ``"background"`` ones, so that something to act on shows even when the
    background outweighs it.

    Only features the person has count as reasons (a zero count or an absent condition is never
    a reason, whatever its contribution), and a contribution below :data:`MIN_CONTRIBUTION` is
    never one. ``features`` holds the contributions' columns and may hold more: the columns a
    reason names (:func:`reason_inputs`).
    """
    contrib = contributions.drop(columns=["bias"], errors="ignore")
    names = list(contrib.columns)
    values = contrib.to_numpy()
    numeric = np.zeros(values.shape, dtype=float)
    usable = np.zeros(values.shape, dtype=bool)
    for j, name in enumerate(names):
        col = features[name]
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
    kinds = np.array([kind_of(n).value for n in names])
    row_reads = {
        j: _FEATURES[n].reason.reads
        for j, n in enumerate(names)
        if n in _FEATURES and isinstance(_FEATURES[n].reason, RowReason)
    }
    read_values = {c: features[c].to_numpy(dtype=float) for reads in row_reads.values() for c in reads}
    cache: dict[tuple[int, float], str] = {}

    def words(i: int, j: int) -> str:
        if j in row_reads:  # named from the person's other features: not cached by value
            return describe(names[j], numeric[i, j], {c: read_values[c][i] for c in row_reads[j]})
        key = (j, numeric[i, j])
        if key not in cache:
            cache[key] = describe(names[j], numeric[i, j])
        return cache[key]

    out: dict[str, list[list[str]]] = {}
    for group in GROUPS:
        masked = score if group == TOP else np.where(kinds == group, score, -np.inf)
        order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        valid = (np.take_along_axis(masked, order, axis=1) != -np.inf).tolist()
        out[group] = [
            [words(i, j) for j, ok in zip(js, oks, strict=True) if ok]
            for i, (js, oks) in enumerate(zip(order.tolist(), valid, strict=True))
        ]
    return out


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> list[list[str]]:
    """The ``k`` features that raise each person's risk most (positive SHAP), in plain words:
    the ``"top"`` group of :func:`reasons`."""
    return reasons(contributions, features, k)[TOP]
