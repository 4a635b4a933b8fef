"""Statistical disclosure control for anything that leaves as an aggregate.

The rules follow NHS Digital's HES analysis guide and OpenSAFELY's output checking:

* counts of 1 to 7 are suppressed (shown as ``*``); zero is shown;
* every other count is rounded to the nearest 5;
* percentages are computed from the rounded counts (never from the true ones);
* secondary suppression: in every row and every column of a table *with its totals*, a
  suppressed cell is never alone — so no suppressed cell can be recovered by subtracting
  the published cells from a published total;
* a mean or median based on 1 to 7 people is withheld.

The constants live in :class:`DisclosureRules`; deployments may set stricter values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_RULES",
    "SUPPRESSED",
    "DisclosureRules",
    "percentages",
    "protect_counts",
    "protect_table",
    "round_count",
    "safe_statistic",
]

SUPPRESSED = "*"


@dataclass(frozen=True)
class DisclosureRules:
    suppress_min: int = 1  # smallest count that is suppressed
    suppress_max: int = 7  # largest count that is suppressed
    round_to: int = 5  # published counts are rounded to a multiple of this

    def is_small(self, n: np.ndarray | int) -> np.ndarray:
        n = np.asarray(n)
        return (n >= self.suppress_min) & (n <= self.suppress_max)


DEFAULT_RULES = DisclosureRules()


def round_count(n: np.ndarray | int, rules: DisclosureRules = DEFAULT_RULES) -> np.ndarray:
    """Round to the nearest multiple of ``rules.round_to`` (halves round up)."""
    n = np.asarray(n, dtype=np.int64)
    return (np.floor(n / rules.round_to + 0.5) * rules.round_to).astype(np.int64)


def _secondary(values: np.ndarray, suppressed: np.ndarray) -> np.ndarray:
    """Grow ``suppressed`` until no line (row or column, margins included) has exactly one.

    ``values`` and ``suppressed`` are (r + 1) x (c + 1) with the totals in the last row and
    column. To complete a line, the smallest non-zero interior cell is suppressed; failing
    that any interior cell; failing that the line's total.
    """
    s = suppressed.copy()
    r, c = values.shape[0] - 1, values.shape[1] - 1
    changed = True
    while changed:
        changed = False
        for axis in (0, 1):
            n_lines = values.shape[0] if axis == 0 else values.shape[1]
            for i in range(n_lines):
                line_s = s[i, :] if axis == 0 else s[:, i]
                if line_s.sum() != 1:
                    continue
                line_v = values[i, :] if axis == 0 else values[:, i]
                interior = c if axis == 0 else r
                order = np.lexsort((line_v[:interior], line_v[:interior] == 0))  # non-zero first, smallest
                pick = next((j for j in order if not line_s[j]), None)
                if pick is None:
                    pick = interior  # the line's total
                if axis == 0:
                    s[i, pick] = True
                else:
                    s[pick, i] = True
                changed = True
    return s


def protect_table(counts: pd.DataFrame, rules: DisclosureRules = DEFAULT_RULES, total: str = "Total") -> pd.DataFrame:
    """A two-way table of counts with row and column totals, safe to publish.

    Parameters
    ----------
    counts : DataFrame of non-negative integer counts (rows x columns), true values.

    Returns
    -------
    DataFrame of objects, shape (r + 1, c + 1): rounded counts (int) or ``"*"``; totals
    are computed from the true counts, then protected like any cell.
    """
    v = counts.to_numpy(dtype=np.int64)
    if (v < 0).any():
        raise ValueError("counts must not be negative")
    full = np.zeros((v.shape[0] + 1, v.shape[1] + 1), dtype=np.int64)
    full[:-1, :-1] = v
    full[:-1, -1] = v.sum(1)
    full[-1, :-1] = v.sum(0)
    full[-1, -1] = v.sum()
    suppressed = _secondary(full, rules.is_small(full))
    shown = np.where(suppressed, SUPPRESSED, round_count(full, rules).astype(object)).astype(object)
    index = [*counts.index.tolist(), total]
    columns = [*counts.columns.tolist(), total]
    return pd.DataFrame(shown, index=index, columns=columns)


def protect_counts(counts: pd.Series, rules: DisclosureRules = DEFAULT_RULES, total: str = "Total") -> pd.Series:
    """A one-way list of counts with its total, safe to publish (see :func:`protect_table`)."""
    table = protect_table(counts.to_frame("n"), rules, total)
    return table["n"]


def percentages(numerator: pd.Series | pd.DataFrame, denominator: pd.Series | pd.DataFrame, decimals: int = 1):
    """Percentages from *published* counts; ``"*"`` where either count is suppressed or 0."""
    num = pd.DataFrame(numerator)
    den = pd.DataFrame(denominator)
    out = num.copy().astype(object)
    for col in num.columns:
        dcol = den[col] if col in den.columns else den.iloc[:, 0]
        for idx in num.index:
            a, b = num.at[idx, col], dcol.loc[idx]
            if a == SUPPRESSED or b == SUPPRESSED or b == 0:
                out.at[idx, col] = SUPPRESSED
            else:
                out.at[idx, col] = round(100 * float(a) / float(b), decimals)
    return out.iloc[:, 0] if isinstance(numerator, pd.Series) else out


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
