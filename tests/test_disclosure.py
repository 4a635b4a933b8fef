"""Disclosure control: spec examples and property tests over random tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstrat.privacy.disclosure import (
    SUPPRESSED,
    DisclosureRules,
    percentages,
    protect_counts,
    protect_table,
    round_count,
    safe_statistic,
)


def test_rounding_to_nearest_five():
    assert round_count(np.array([0, 8, 12, 13, 22, 23, 100])).tolist() == [0, 10, 10, 15, 20, 25, 100]


def test_primary_and_secondary_suppression_example():
    counts = pd.DataFrame({"high": [3, 40, 52], "low": [120, 230, 310]}, index=["P1", "P2", "P3"])
    out = protect_table(counts)
    assert out.loc["P1", "high"] == SUPPRESSED  # 3 is in 1-7
    # P1's row and the 'high' column would otherwise each hold one suppressed cell
    assert out.loc["P1", "low"] == SUPPRESSED
    assert out.loc["P2", "high"] == SUPPRESSED  # the smallest other cell in the column
    assert out.loc["P2", "low"] == SUPPRESSED
    assert out.loc["P3", "high"] == 50 and out.loc["P3", "low"] == 310
    assert out.loc["Total", "Total"] == 755  # 755 is already a multiple of 5


def test_zero_is_published_and_a_lone_small_total_is_suppressed():
    out = protect_counts(pd.Series({"a": 0, "b": 5}))
    assert out["a"] == 0
    assert out["b"] == SUPPRESSED and out["Total"] == SUPPRESSED


def test_percentages_come_from_rounded_counts():
    num = pd.Series({"a": 13, "b": 48})
    den = pd.Series({"a": 22, "b": 49})
    pct = percentages(protect_counts(num), protect_counts(den))
    assert pct["a"] == 75.0  # 13 -> 15 and 22 -> 20: 75.0, not 59.1 from the true counts
    assert pct["b"] == 100.0  # 48 -> 50 and 49 -> 50
    small = percentages(
        protect_counts(pd.Series({"a": 3, "b": 4, "c": 100})),
        protect_counts(den.reindex(["a", "b", "c"], fill_value=200)),
    )
    assert small["a"] == SUPPRESSED and small["b"] == SUPPRESSED and small["c"] == 50.0


def test_statistics_on_few_people_are_withheld():
    assert safe_statistic([10, 20, 30], "mean") == SUPPRESSED
    assert safe_statistic(list(range(8)), "median") == 3.5
    assert safe_statistic([], "mean") is None
    with pytest.raises(ValueError):
        safe_statistic([1] * 10, "mode")


def test_stricter_rules_are_configurable():
    rules = DisclosureRules(suppress_min=1, suppress_max=10, round_to=10)
    out = protect_counts(pd.Series({"a": 9, "b": 14, "c": 300}), rules)
    assert out["a"] == SUPPRESSED and out["c"] == 300


tables = st.integers(1, 6).flatmap(
    lambda r: st.integers(1, 6).flatmap(
        lambda c: st.lists(
            st.lists(st.one_of(st.integers(0, 9), st.integers(0, 500)), min_size=c, max_size=c), min_size=r, max_size=r
        )
    )
)


@settings(max_examples=300, deadline=None)
@given(tables)
def test_no_small_cell_and_no_lone_suppressed_cell(rows):
    counts = pd.DataFrame(rows)
    out = protect_table(counts)
    values = out.to_numpy()
    published = values[values != SUPPRESSED].astype(int)
    # no published count in 1-7, and every published count is a multiple of 5
    assert not ((published >= 1) & (published <= 7)).any()
    assert (published % 5 == 0).all()
    # every true count in 1-7 (cells and totals) is suppressed
    full = np.zeros(values.shape, dtype=int)
    full[:-1, :-1] = counts.to_numpy()
    full[:-1, -1] = counts.to_numpy().sum(1)
    full[-1, :-1] = counts.to_numpy().sum(0)
    full[-1, -1] = counts.to_numpy().sum()
    assert (values[(full >= 1) & (full <= 7)] == SUPPRESSED).all()
    # no suppressed cell can be recovered from its row or column total: never alone in a line
    s = values == SUPPRESSED
    assert all(k != 1 for k in s.sum(1)), out
    assert all(k != 1 for k in s.sum(0)), out
