"""Risk bands and reasons in plain words, from scores and SHAP contributions."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

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
    by_row = np.zeros(len(names), dtype=bool)
    by_row[list(row_reads)] = True

    def words(rows: np.ndarray, cols: np.ndarray) -> list[str]:
        """The words of each (person, feature) pair: described once per distinct (feature,
        value), except the features named from the person's other features."""
        out: list[str] = [""] * len(rows)
        by_value = np.flatnonzero(~by_row[cols])
        if len(by_value):
            # (feature, value) as one complex number: a 1-d unique, much faster than rows of two
            keys = cols[by_value] + 1j * numeric[rows[by_value], cols[by_value]]
            pairs, inverse = np.unique(keys, return_inverse=True)
            said = [describe(names[int(p.real)], p.imag) for p in pairs.tolist()]
            for x, p in zip(by_value.tolist(), inverse.ravel().tolist(), strict=True):
                out[x] = said[p]
        for x in np.flatnonzero(by_row[cols]).tolist():
            i, j = int(rows[x]), int(cols[x])
            out[x] = describe(names[j], numeric[i, j], {c: read_values[c][i] for c in row_reads[j]})
        return out

    out: dict[str, list[list[str]]] = {}
    with _collector_paused():
        for group in GROUPS:
            if group == TOP:
                order, valid = _largest(score, k)
            else:
                among = np.flatnonzero(kinds == group)
                order, valid = _largest(score[:, among], k)
                order = among[order]  # ``among`` ascends: ties stay in column order
            rows, slot = np.nonzero(valid)  # row-major: each person's reasons in order
            flat = words(rows, order[rows, slot])
            ends = np.cumsum(valid.sum(axis=1)).tolist()
            out[group] = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused while :func:`reasons` makes a list per person and group
    (three quarters of a million lists a batch of 250,000 people), which cannot form cycles:
    otherwise, as the lists pile up, the collector walks them again and again. Measured at
    2 million people (1.3 million scored in batches of 250,000, in one process): 21.9 s of
    reasons with the collector, 18.5 s without. Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _largest(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the ``k`` largest values above ``-inf``, largest first, ties in
    column order (what a stable sort of every column gives), and which of them there are (a row
    with fewer than ``k`` such values). Found by ``k`` passes of ``argmax``, which returns the
    first of equal values: sorting about 140 columns for each of a region's people, three times
    over, was a third of scoring's time; ``k`` is 3."""
    k = min(k, values.shape[1])
    left = values.copy()
    rows = np.arange(len(values))
    order = np.empty((len(values), k), dtype=np.intp)
    found = np.empty((len(values), k), dtype=bool)
    for t in range(k):
        order[:, t] = left.argmax(axis=1)
        found[:, t] = left[rows, order[:, t]] != -np.inf
        left[rows, order[:, t]] = -np.inf
    return order, found


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> list[list[str]]:
    """The ``k`` features that raise each person's risk most (positive SHAP), in plain words:
    the ``"top"`` group of :func:`reasons`."""
    return reasons(contributions, features, k)[TOP]
