"""Statistical disclosure control for anything that leaves as an aggregate.

The rules are those NHS England applies to Hospital Episode Statistics and OpenSAFELY asks
of its outputs:

* counts of 1 to 7 are redacted (shown as ``*``); zero is shown as 0;
* every other count is rounded to the nearest 5 (halves up), from its true value; the
  totals of a table are counts in their own right: rounded from the true totals, and
  redacted when 1 to 7;
* percentages are computed from the rounded counts and withheld when the numerator or the
  denominator is redacted; a mean or median based on 1 to 7 people is withheld;
* as an option for rates, numerator and denominator are rounded to midpoint 6 (0 stays 0,
  1-6 becomes 3, 7-12 becomes 9, ...), published under a ``..._midpoint6`` name;
* secondary suppression only where a redacted value could otherwise be worked out exactly
  from the published cells and totals of its table, and then the smallest complementary
  cell that prevents it (a large one only when no smaller cell of its line would).

Reasoning with rounding
-----------------------
Once every count is rounded, subtracting published cells from a published total no longer
gives a redacted cell exactly, so a lone ``*`` in a row is usually safe: the historical rule
"never one suppressed cell in a line" hid cells of hundreds of people for nothing. What a
reader can know about each cell, given the published table and its decision record
(:attr:`Protected.rules`, which says which cells are redacted for being 1 to 7 and which
for secondary suppression):

* a published non-zero count ``X`` stands for a true value in ``[max(X - 2, 8), X + 2]``
  (rounding to the nearest 5, and 1-7 never published); a published 0 is exactly 0;
* a cell redacted for being small is in ``[1, 7]``; a secondarily suppressed cell was a
  published non-zero count, so it is at least 8.

Every row and every column, its total included, is a line: the interior cells sum to the
total. From the other cells' ranges each line bounds each of its cells (a cell lies between
the total's lower bound minus the others' upper bounds and the total's upper bound minus the
others' lower bounds; a total lies between the sums of its cells' bounds). The bounds are
tightened line after line, rows and columns in turn, until none changes; a redacted cell
whose range has shrunk to a single value would be disclosed. For example the cells 13, 13
and 1 with their total 27 publish as 15, 15, ``*`` and 25, and 25 + 2 - (13 + 13) = 1 pins
the redacted cell to 1 (the all-ones and all-sevens cases of several redacted cells in one
line are caught the same way). Then a complementary cell is suppressed as well: among the
published non-zero interior cells of the lines whose arithmetic pins the disclosed cell (a
line's total only when no interior cell is left), the smallest whose hiding frees a pinned
cell (hiding a 10 can be useless: it stands for 8 to 12, and a suppressed cell is known to be
at least 8), else the smallest; and everything is checked again, until no redacted cell can
be pinned.

Limit: this is interval reasoning, line by line with the bounds carried from line to line;
it does not solve the whole table's integer linear system, so in principle a combination of
several lines could narrow a cell further than the bounds show. The tests therefore check
the result on small tables by enumerating every table consistent with what is published. It
also reasons about one table at a time: overlapping tables published side by side (the same
people broken down two ways) are not reasoned about together, and neither is a reader's
knowledge of how complements are chosen.

The constants live in :class:`DisclosureRules`; deployments may set stricter values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_RULES",
    "SUPPRESSED",
    "DisclosureRules",
    "Protected",
    "RateRounding",
    "midpoint6",
    "percentages",
    "protect_counts",
    "protect_table",
    "rate_midpoint6",
    "round_count",
    "safe_statistic",
]

SUPPRESSED = "*"


class RateRounding(StrEnum):
    """How percentages are computed: from the rounded counts, or from midpoint-6 rounded ones."""

    ROUND5 = "round5"
    MIDPOINT6 = "midpoint6"


@dataclass(frozen=True)
class DisclosureRules:
    """Counts ``suppress_min`` to ``suppress_max`` are redacted, others rounded to a multiple of
    ``round_to``; ``rates`` says how percentages are made (:class:`RateRounding`)."""

    suppress_min: int = 1  # smallest count that is redacted
    suppress_max: int = 7  # largest count that is redacted
    round_to: int = 5  # published counts are rounded to a multiple of this
    rates: RateRounding | str = RateRounding.ROUND5  # "round5" or "midpoint6"

    def __post_init__(self) -> None:
        if not 1 <= self.suppress_min <= self.suppress_max or self.round_to < 1:
            raise ValueError("need 1 <= suppress_min <= suppress_max and round_to >= 1")
        object.__setattr__(self, "rates", RateRounding(self.rates))

    def is_small(self, n: np.ndarray | int) -> np.ndarray:
        n = np.asarray(n)
        return (n >= self.suppress_min) & (n <= self.suppress_max)


DEFAULT_RULES = DisclosureRules()

_ZERO = "zero"
_SECONDARY = "redacted: secondary (would reveal a redacted cell of its {line})"


def _rounded_rule(rules: DisclosureRules) -> str:
    return f"rounded to the nearest {rules.round_to}"


def _redacted_rule(rules: DisclosureRules) -> str:
    return f"redacted: {rules.suppress_min} to {rules.suppress_max}"


def round_count(n: np.ndarray | int, rules: DisclosureRules = DEFAULT_RULES) -> np.ndarray:
    """Round to the nearest multiple of ``rules.round_to`` (halves round up)."""
    n = np.asarray(n, dtype=np.int64)
    return (np.floor(n / rules.round_to + 0.5) * rules.round_to).astype(np.int64)


def midpoint6(n: np.ndarray | int) -> np.ndarray:
    """Round to midpoint 6: 0 stays 0, 1-6 becomes 3, 7-12 becomes 9, 13-18 becomes 15, ...

    That is ``6 * floor((n - 1) / 6) + 3`` for ``n >= 1``: unbiased, zero is zero, and a
    non-zero result ``x`` stands for a true value between ``x - 2`` and ``x + 3``.
    """
    n = np.asarray(n, dtype=np.int64)
    if (n < 0).any():
        raise ValueError("counts must not be negative")
    return np.where(n == 0, 0, 6 * ((n - 1) // 6) + 3).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Protected:
    """A protected table and its decision record.

    ``published`` holds what may leave: rounded counts (int) or ``"*"``. ``rules`` has the
    same index and columns and names the rule applied to each cell: ``"zero"``, ``"rounded to
    the nearest 5"``, ``"redacted: 1 to 7"`` or ``"redacted: secondary (would reveal a
    redacted cell of its row)"`` (or ``"... of its column"``). It never holds a true value.
    """

    published: pd.DataFrame
    rules: pd.DataFrame


# What a reader knows of a cell: published, redacted for being small, or secondarily suppressed.
_PUBLISHED, _SMALL, _SECONDARY_CELL = 0, 1, 2
# An upper bound for a secondarily suppressed cell that no count of people reaches.
_UNBOUNDED = 2**40
_MAX_SWEEPS = 10_000
# How many of the smallest candidates are tried, each on its own, before taking the smallest.
_LOOKAHEAD = 25


def _published_range(shown: np.ndarray, rules: DisclosureRules) -> tuple[np.ndarray, np.ndarray]:
    """The true values a published count stands for: those that round to it and are not redacted."""
    lo = np.maximum(shown - rules.round_to // 2, 0)
    hi = shown + (rules.round_to - 1) // 2
    lo = np.where(rules.is_small(lo), rules.suppress_max + 1, lo)
    hi = np.where(rules.is_small(hi), rules.suppress_min - 1, hi)
    return lo, hi


def _known_ranges(shown: np.ndarray, state: np.ndarray, rules: DisclosureRules) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _published_range(shown, rules)
    lo = np.where(state == _SMALL, rules.suppress_min, np.where(state == _SECONDARY_CELL, rules.suppress_max + 1, lo))
    hi = np.where(state == _SMALL, rules.suppress_max, np.where(state == _SECONDARY_CELL, _UNBOUNDED, hi))
    return lo.astype(np.int64), hi.astype(np.int64)


def _tighten_columns(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the column lines of ``lo``/``hi`` (interior rows, then the total in the last row)."""
    cell_lo, cell_hi, total_lo, total_hi = lo[:-1], hi[:-1], lo[-1], hi[-1]
    sum_lo, sum_hi = cell_lo.sum(axis=0), cell_hi.sum(axis=0)
    new_lo, new_hi = lo.copy(), hi.copy()
    new_lo[-1] = np.maximum(total_lo, sum_lo)
    new_hi[-1] = np.minimum(total_hi, sum_hi)
    new_lo[:-1] = np.maximum(cell_lo, total_lo - (sum_hi - cell_hi))
    new_hi[:-1] = np.minimum(cell_hi, total_hi - (sum_lo - cell_lo))
    return new_lo, new_hi


def _bounds(lo: np.ndarray, hi: np.ndarray, two_way: bool) -> tuple[np.ndarray, np.ndarray]:
    """Tighten the ranges line by line (columns, and rows when ``two_way``) until none changes."""
    for _ in range(_MAX_SWEEPS):
        new_lo, new_hi = _tighten_columns(lo, hi)
        if two_way:
            t_lo, t_hi = _tighten_columns(new_lo.T, new_hi.T)
            new_lo, new_hi = t_lo.T, t_hi.T
        if (new_lo > new_hi).any():
            raise RuntimeError("disclosure control: the published ranges contradict each other (a bug)")
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            return lo, hi
        lo, hi = new_lo, new_hi
    raise RuntimeError("disclosure control: the bounds did not settle")


def _derived(cells: list[tuple[int, int]], at: int, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int]:
    """The range of ``cells[at]`` that its line gives from the others' ranges (the last cell is the total)."""
    others_lo = sum(int(lo[c]) for k, c in enumerate(cells[:-1]) if k != at)
    others_hi = sum(int(hi[c]) for k, c in enumerate(cells[:-1]) if k != at)
    if at == len(cells) - 1:
        return others_lo, others_hi
    total = cells[-1]
    return int(lo[total]) - others_hi, int(hi[total]) - others_lo


def _candidates(
    pinned: list[tuple[int, int]],
    bounds: tuple[np.ndarray, np.ndarray],
    known: tuple[np.ndarray, np.ndarray],
    true: np.ndarray,
    open_: np.ndarray,
    two_way: bool,
) -> list[tuple[tuple[int, int], str]]:
    """The cells that may complement the pinned cells, smallest first, each with its line's kind.

    For each pinned cell, the lines to blame are those whose arithmetic sets the end of its
    range that its own range (``known``) does not; their published non-zero interior cells are
    candidates, and their total only when no interior cell is left.
    """
    lo, hi = bounds
    n_rows, n_cols = true.shape
    found: dict[tuple[int, int], tuple[int, str]] = {}
    for i, j in pinned:
        value = int(lo[i, j])
        lines = [("column", [(k, j) for k in range(n_rows)], i)]
        if two_way:
            lines.append(("row", [(i, k) for k in range(n_cols)], j))
        for kind, cells, at in lines:
            d_lo, d_hi = _derived(cells, at, lo, hi)
            if not (d_lo == value != known[0][i, j] or d_hi == value != known[1][i, j]):
                continue
            interior = [c for c in cells[:-1] if open_[c]]
            for cell in interior or [c for c in cells[-1:] if open_[c]]:
                found[cell] = min(found.get(cell, (int(true[cell]), kind)), (int(true[cell]), kind))
    return [(cell, kind) for cell, (_, kind) in sorted(found.items(), key=lambda item: (item[1][0], item[0]))]


def _pinned(shown: np.ndarray, state: np.ndarray, rules: DisclosureRules, two_way: bool):
    """The redacted cells a reader could work out exactly, and what is known of every cell."""
    known = _known_ranges(shown, state, rules)
    lo, hi = _bounds(*known, two_way)
    pinned = [(int(i), int(j)) for i, j in np.argwhere((state != _PUBLISHED) & (lo == hi))]
    return pinned, (lo, hi), known


def _protect(true: np.ndarray, two_way: bool, rules: DisclosureRules) -> tuple[np.ndarray, np.ndarray]:
    """Published values and rules for ``true`` (totals in the last row, and in the last column
    when ``two_way``), both object arrays of its shape.

    Each round complements the pinned cells with the smallest candidate (:func:`_candidates`)
    whose suppression frees one of them, trying the smallest few; when none of those does on
    its own, the smallest candidate.
    """
    shown = round_count(true, rules)
    state = np.where(rules.is_small(true), _SMALL, _PUBLISHED)
    line_of = np.full(true.shape, "", dtype=object)
    pinned, bounds, known = _pinned(shown, state, rules, two_way)
    while pinned:
        open_ = (state == _PUBLISHED) & (shown > 0)
        candidates = _candidates(pinned, bounds, known, true, open_, two_way)
        if not candidates:
            raise ValueError(
                "this table cannot be protected by suppressing cells: no cell is left whose hiding would stop a "
                "redacted cell being worked out exactly (as when seven redacted cells have a redacted total, which "
                "can only be 7); combine categories before publishing it"
            )
        chosen = None
        for cell, kind in candidates[:_LOOKAHEAD]:
            trial = state.copy()
            trial[cell] = _SECONDARY_CELL
            result = _pinned(shown, trial, rules, two_way)
            if not set(pinned) <= set(result[0]):
                chosen = (cell, kind, trial, result)
                break
        if chosen is None:
            cell, kind = candidates[0]
            trial = state.copy()
            trial[cell] = _SECONDARY_CELL
            chosen = (cell, kind, trial, _pinned(shown, trial, rules, two_way))
        cell, kind, state, (pinned, bounds, known) = chosen
        line_of[cell] = kind
    zero_is_exact = _published_range(np.zeros(1, dtype=np.int64), rules)[1][0] == 0
    published = np.empty(true.shape, dtype=object)
    rule = np.empty(true.shape, dtype=object)
    for cell in np.ndindex(true.shape):
        published[cell] = int(shown[cell]) if state[cell] == _PUBLISHED else SUPPRESSED
        if state[cell] == _SMALL:
            rule[cell] = _redacted_rule(rules)
        elif state[cell] == _SECONDARY_CELL:
            rule[cell] = _SECONDARY.format(line=line_of[cell])
        elif shown[cell] == 0 and zero_is_exact:
            rule[cell] = _ZERO
        else:
            rule[cell] = _rounded_rule(rules)
    return published, rule


def _true_counts(counts: pd.DataFrame | pd.Series) -> np.ndarray:
    v = counts.to_numpy(dtype=np.int64)
    if (v < 0).any():
        raise ValueError("counts must not be negative")
    return v


def protect_table(counts: pd.DataFrame, rules: DisclosureRules = DEFAULT_RULES, total: str = "Total") -> Protected:
    """A two-way table of counts with row and column totals, safe to publish, and its decision record.

    Parameters
    ----------
    counts : DataFrame of non-negative integer counts (rows x columns), true values.
    rules : the disclosure rules.
    total : the label of the total row and column.

    Returns
    -------
    :class:`Protected` whose ``published`` and ``rules`` are DataFrames of shape
    (r + 1, c + 1), index ``[*counts.index, total]`` and columns ``[*counts.columns, total]``:
    rounded counts (int) or ``"*"``, and the rule applied to each cell. The totals are
    computed from the true counts, then rounded or redacted like any count.

    Raises
    ------
    ValueError : for negative counts, or (rarely) a table no suppression can protect, such
        as a line of seven redacted cells whose redacted total can only be 7.
    """
    v = _true_counts(counts)
    full = np.zeros((v.shape[0] + 1, v.shape[1] + 1), dtype=np.int64)
    full[:-1, :-1] = v
    full[:-1, -1] = v.sum(axis=1)
    full[-1, :-1] = v.sum(axis=0)
    full[-1, -1] = v.sum()
    published, rule = _protect(full, two_way=True, rules=rules)
    index = [*counts.index.tolist(), total]
    columns = [*counts.columns.tolist(), total]
    return Protected(
        published=pd.DataFrame(published, index=index, columns=columns),
        rules=pd.DataFrame(rule, index=index, columns=columns),
    )


def protect_counts(counts: pd.Series, rules: DisclosureRules = DEFAULT_RULES, total: str = "Total") -> Protected:
    """A one-way list of counts with its total, safe to publish (see :func:`protect_table`).

    Returns a :class:`Protected` with one column ``"n"`` and index ``[*counts.index, total]``.
    """
    v = _true_counts(counts)
    full = np.append(v, v.sum()).reshape(-1, 1)
    published, rule = _protect(full, two_way=False, rules=rules)
    index = [*counts.index.tolist(), total]
    return Protected(
        published=pd.DataFrame(published, index=index, columns=["n"]),
        rules=pd.DataFrame(rule, index=index, columns=["n"]),
    )


def _ratio(
    numerator: pd.Series | pd.DataFrame, denominator: pd.Series | pd.DataFrame, value
) -> pd.Series | pd.DataFrame:
    """``value(a, b)`` for each numerator cell and its denominator (the same column, else the first)."""
    num = pd.DataFrame(numerator)
    den = pd.DataFrame(denominator)
    out = num.copy().astype(object)
    for col in num.columns:
        dcol = den[col] if col in den.columns else den.iloc[:, 0]
        for idx in num.index:
            out.at[idx, col] = value(num.at[idx, col], dcol.loc[idx])
    return out.iloc[:, 0] if isinstance(numerator, pd.Series) else out


def percentages(
    numerator: pd.Series | pd.DataFrame, denominator: pd.Series | pd.DataFrame, decimals: int = 1
) -> pd.Series | pd.DataFrame:
    """Percentages from *published* counts; ``"*"`` where either count is redacted or the denominator is 0."""

    def value(a, b):
        if a == SUPPRESSED or b == SUPPRESSED or b == 0:
            return SUPPRESSED
        return round(100 * float(a) / float(b), decimals)

    return _ratio(numerator, denominator, value)


def rate_midpoint6(
    numerator_true: pd.Series | pd.DataFrame, denominator_true: pd.Series | pd.DataFrame, decimals: int = 1
) -> pd.Series | pd.DataFrame:
    """Percentages from *true* counts each rounded to midpoint 6 (:func:`midpoint6`).

    Never withheld (midpoint 6 keeps 1-7 from showing), except ``"*"`` where the denominator
    is 0. Publish them under a measure name ending ``_midpoint6``, as OpenSAFELY asks.
    """

    def value(a, b):
        if b == 0:
            return SUPPRESSED
        return round(100 * float(midpoint6(int(a))) / float(midpoint6(int(b))), decimals)

    return _ratio(numerator_true, denominator_true, value)


def safe_statistic(values: np.ndarray | pd.Series, statistic: str, rules: DisclosureRules = DEFAULT_RULES):
    """Mean or median of ``values``, or ``"*"`` when based on 1 to 7 people (None for 0)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return None
    if rules.is_small(arr.size):
        return SUPPRESSED
    if statistic == "mean":
        return float(arr.mean())
    if statistic == "median":
        return float(np.median(arr))
    raise ValueError(f"statistic must be mean or median, not {statistic}")
