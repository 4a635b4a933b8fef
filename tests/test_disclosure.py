"""Disclosure control: spec examples and property tests over random tables."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from riskstrat.privacy.disclosure import (
    SUPPRESSED,
    DisclosureRules,
    Protected,
    midpoint6,
    percentages,
    protect_counts,
    protect_table,
    rate_midpoint6,
    round_count,
    safe_statistic,
)

ZERO = "zero"
ROUNDED = "rounded to the nearest 5"
SMALL = "redacted: 1 to 7"
SECONDARY_ROW = "redacted: secondary (would reveal a redacted cell of its row)"
SECONDARY_COLUMN = "redacted: secondary (would reveal a redacted cell of its column)"
RULES = {ZERO, ROUNDED, SMALL, SECONDARY_ROW, SECONDARY_COLUMN}


def with_totals(counts: pd.DataFrame) -> np.ndarray:
    """The true table with its totals in the last row and column."""
    v = counts.to_numpy(dtype=int)
    full = np.zeros((v.shape[0] + 1, v.shape[1] + 1), dtype=int)
    full[:-1, :-1], full[:-1, -1], full[-1, :-1], full[-1, -1] = v, v.sum(1), v.sum(0), v.sum()
    return full


# ---------------------------------------------------------------------------------------------
# Spec examples


def test_rounding_to_nearest_five():
    assert round_count(np.array([0, 8, 12, 13, 22, 23, 100])).tolist() == [0, 10, 10, 15, 20, 25, 100]


def test_midpoint6():
    assert midpoint6(np.array([0, 1, 6, 7, 12, 13, 18, 19])).tolist() == [0, 3, 3, 9, 9, 15, 15, 21]
    with pytest.raises(ValueError):
        midpoint6(-1)


def test_rates_from_midpoint6_counts():
    rate = rate_midpoint6(pd.Series({"a": 5, "b": 13, "c": 0, "d": 4}), pd.Series({"a": 20, "b": 13, "c": 9, "d": 0}))
    assert rate["a"] == 14.3  # 5 -> 3 and 20 -> 21: never withheld, 1-6 shows as 3
    assert rate["b"] == 100.0  # 13 -> 15 over 13 -> 15
    assert rate["c"] == 0.0  # zero is zero
    assert rate["d"] == SUPPRESSED  # no denominator
    assert DisclosureRules(rates="midpoint6").rates == "midpoint6"
    assert DisclosureRules().rates == "round5"
    with pytest.raises(ValueError):
        DisclosureRules(rates="round10")


def test_a_lone_redacted_cell_protected_by_rounding_is_not_complemented():
    counts = pd.DataFrame({"high": [3, 40, 52], "low": [120, 230, 310]}, index=["P1", "P2", "P3"])
    out = protect_table(counts)
    assert isinstance(out, Protected)
    # 3 in 1-7 is redacted; its row (120 -> 120 of [118, 122], total 123 -> 125 of [123, 127])
    # leaves it anywhere in 1-7, and so does its column: nothing else is hidden
    assert out.published.loc["P1", "high"] == SUPPRESSED
    assert out.published.to_dict() == {
        "high": {"P1": SUPPRESSED, "P2": 40, "P3": 50, "Total": 95},
        "low": {"P1": 120, "P2": 230, "P3": 310, "Total": 660},
        "Total": {"P1": 125, "P2": 270, "P3": 360, "Total": 755},
    }
    assert out.rules.loc["P1", "high"] == SMALL
    assert out.rules.loc["P1", "Total"] == ROUNDED
    assert out.rules.drop(index="P1", columns="high").isin([ROUNDED]).all().all()


def test_a_redacted_cell_pinned_by_rounding_is_complemented_by_the_smallest_cell():
    # 13, 13, 1 with total 27 would publish as 15, 15, *, 25: 25 + 2 - (13 + 13) = 1 pins the *
    plain = protect_counts(pd.Series({"a": 13, "b": 13, "c": 1}))
    assert plain.published["n"].tolist() == [SUPPRESSED, 15, SUPPRESSED, 25]
    assert plain.rules["n"].tolist() == [SECONDARY_COLUMN, ROUNDED, SMALL, ROUNDED]
    # 18, 13, 1 with total 32: 30 + 2 - (18 + 13) = 1; the complement is the 13, not the 18
    out = protect_counts(pd.Series({"a": 18, "b": 13, "c": 1}))
    assert out.published["n"].tolist() == [20, SUPPRESSED, SUPPRESSED, 30]
    # in a two-way table the row that pins its * gives its smallest cell, nothing else moves
    table = pd.DataFrame([[13, 18, 1, 0], [200, 300, 350, 420]], index=["P1", "P2"], columns=list("xyzw"))
    protected = protect_table(table)
    assert protected.published.loc["P1"].tolist() == [SUPPRESSED, 20, SUPPRESSED, 0, 30]
    assert protected.rules.loc["P1"].tolist() == [SECONDARY_ROW, ROUNDED, SMALL, ZERO, ROUNDED]
    assert protected.published.loc["P2"].tolist() == [200, 300, 350, 420, 1270]
    assert protected.published.loc["Total"].tolist() == [215, 320, 350, 420, 1300]  # from the true 1302


def test_the_reported_over_suppression_is_gone():
    counts = pd.DataFrame(
        [[700, 3, 950, 12], [410, 380, 290, 520], [630, 220, 470, 310]],
        index=["P1", "P2", "P3"],
        columns=["very high", "high", "moderate", "low"],
    )
    out = protect_table(counts)
    assert out.published.loc["P1", "very high"] == 700
    assert out.published.loc["P1", "low"] == 10
    assert (out.published == SUPPRESSED).sum().sum() == 1  # only the 3
    assert out.rules.loc["P1", "high"] == SMALL


def test_zero_is_published_and_a_small_total_is_redacted():
    out = protect_counts(pd.Series({"a": 0, "b": 5}))
    assert list(out.published.columns) == ["n"] and list(out.published.index) == ["a", "b", "Total"]
    assert out.published["n"].tolist() == [0, SUPPRESSED, SUPPRESSED]
    assert out.rules["n"].tolist() == [ZERO, SMALL, SMALL]


def test_a_line_no_suppression_can_protect_is_refused():
    # seven redacted cells and a redacted total: the total can only be 7 and every cell 1
    with pytest.raises(ValueError, match="combine categories"):
        protect_counts(pd.Series([1] * 7 + [0]))


def test_percentages_come_from_rounded_counts():
    num = pd.Series({"a": 13, "b": 48})
    den = pd.Series({"a": 22, "b": 49})
    pct = percentages(protect_counts(num).published["n"], protect_counts(den).published["n"])
    assert pct["a"] == 75.0  # 13 -> 15 and 22 -> 20: 75.0, not 59.1 from the true counts
    assert pct["b"] == 100.0  # 48 -> 50 and 49 -> 50
    small = percentages(
        protect_counts(pd.Series({"a": 3, "b": 4, "c": 100})).published["n"],
        protect_counts(den.reindex(["a", "b", "c"], fill_value=200)).published["n"],
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
    assert out.published["n"].tolist() == [SUPPRESSED, 10, 300, 320]
    assert out.rules["n"].tolist() == ["redacted: 1 to 10"] + ["rounded to the nearest 10"] * 3


# ---------------------------------------------------------------------------------------------
# Property tests

# small counts are common, some counts are large; counts at the bottom of their rounding range
# (13 -> 15 stands for 13 to 17) are the ones that pin a redacted cell
cells = st.one_of(
    st.integers(0, 10),
    st.integers(0, 10),
    st.integers(1, 8).map(lambda k: 5 * k + 3),
    st.integers(8, 40),
    st.integers(50, 400),
)


def tables(cell=cells, rows=(1, 4), columns=(2, 4)):
    return st.integers(*rows).flatmap(
        lambda r: st.integers(*columns).flatmap(
            lambda c: st.lists(st.lists(cell, min_size=c, max_size=c), min_size=r, max_size=r).map(pd.DataFrame)
        )
    )


def protect(counts: pd.DataFrame) -> Protected | None:
    try:
        return protect_table(counts)
    except ValueError:  # the rare table no suppression protects (a line of seven 1s)
        return None


@settings(max_examples=150, deadline=None)
@given(tables())
def test_published_counts_are_rounded_and_never_small(counts):
    out = protect(counts)
    assume(out is not None)
    values = out.published.to_numpy()
    full = with_totals(counts)
    shown = values != SUPPRESSED
    published = values[shown].astype(int)
    assert not ((published >= 1) & (published <= 7)).any()
    assert (published % 5 == 0).all()
    assert (published == np.floor(full[shown] / 5 + 0.5) * 5).all()  # rounded from the true value
    assert (values[(full >= 1) & (full <= 7)] == SUPPRESSED).all()  # every true 1-7, totals included


@settings(max_examples=150, deadline=None)
@given(tables())
def test_the_rule_record_names_one_rule_per_cell_and_no_value(counts):
    out = protect(counts)
    assume(out is not None)
    assert out.rules.shape == out.published.shape
    assert list(out.rules.index) == list(out.published.index) == [*counts.index, "Total"]
    assert list(out.rules.columns) == list(out.published.columns) == [*counts.columns, "Total"]
    # five fixed strings: none can carry a true value
    assert set(out.rules.to_numpy().ravel()) <= RULES
    for value, rule in zip(out.published.to_numpy().ravel(), out.rules.to_numpy().ravel(), strict=True):
        if value == SUPPRESSED:
            assert rule in {SMALL, SECONDARY_ROW, SECONDARY_COLUMN}
        else:
            assert rule == (ZERO if value == 0 else ROUNDED)
    full = with_totals(counts)
    small = out.rules.to_numpy() == SMALL
    assert (small == ((full >= 1) & (full <= 7))).all()


# The exact check, independent of the engine's reasoning: every true table consistent with what
# is published and with the decision record, enumerated, and each redacted cell must take at
# least two values across them.


def _rounds_to(x: int) -> range:
    """True values a published count stands for, by brute force: halves up, 1-7 never published."""
    values = [n for n in range(max(x - 5, 0), x + 6) if (n + 2) // 5 * 5 == x and not 1 <= n <= 7]
    return range(min(values), max(values) + 1)


def _candidates(value, rule: str, cap: int) -> range:
    if value != SUPPRESSED:
        return _rounds_to(int(value))
    return range(1, 8) if rule == SMALL else range(8, cap + 1)


def value_ranges(out: Protected, cap: int) -> dict[tuple[int, int], tuple[int, int]]:
    """For each cell (totals included), the least and greatest true value over all tables of at
    most 2 rows consistent with ``out``; secondary cells are searched up to ``cap`` (a smaller
    search can only make a cell look more exposed)."""
    values, rules = out.published.to_numpy(), out.rules.to_numpy()
    n_rows, n_cols = values.shape[0] - 1, values.shape[1] - 1
    assert n_rows <= 2
    sets = [[_candidates(values[i, j], rules[i, j], cap) for j in range(n_cols + 1)] for i in range(n_rows + 1)]
    col_total, row_total, grand = sets[n_rows][:n_cols], [sets[i][n_cols] for i in range(n_rows)], sets[n_rows][n_cols]
    seen: dict[tuple[int, int], tuple[int, int]] = {}

    def see(cell, lo, hi):
        old = seen.get(cell, (lo, hi))
        seen[cell] = (min(old[0], lo), max(old[1], hi))

    # a cell of the first row is at most its column total (the second row is not negative)
    first = [range(s.start, min(s.stop, c.stop)) for s, c in zip(sets[0][:n_cols], col_total, strict=True)]
    for x in itertools.product(*first):
        s0 = sum(x)
        if s0 not in row_total[0]:
            continue
        if n_rows == 1:
            if all(v in c for v, c in zip(x, col_total, strict=True)) and s0 in grand:
                for j, v in enumerate(x):
                    see((0, j), v, v)
                    see((1, j), v, v)
                see((0, n_cols), s0, s0)
                see((1, n_cols), s0, s0)
            continue
        # second row: each cell independently within its own range and its column total's,
        # and their sum within the second row total and the grand total less the first row
        lo = [max(s.start, c.start - v) for s, c, v in zip(sets[1][:n_cols], col_total, x, strict=True)]
        hi = [min(s.stop - 1, c.stop - 1 - v) for s, c, v in zip(sets[1][:n_cols], col_total, x, strict=True)]
        t_lo, t_hi = max(row_total[1].start, grand.start - s0), min(row_total[1].stop - 1, grand.stop - 1 - s0)
        if any(a > b for a, b in zip(lo, hi, strict=True)) or sum(lo) > t_hi or sum(hi) < t_lo:
            continue
        for j, v in enumerate(x):
            v_lo = max(lo[j], t_lo - (sum(hi) - hi[j]))
            v_hi = min(hi[j], t_hi - (sum(lo) - lo[j]))
            see((0, j), v, v)
            see((1, j), v_lo, v_hi)
            see((2, j), v + v_lo, v + v_hi)
        s1_lo, s1_hi = max(sum(lo), t_lo), min(sum(hi), t_hi)
        see((0, n_cols), s0, s0)
        see((1, n_cols), s1_lo, s1_hi)
        see((2, n_cols), s0 + s1_lo, s0 + s1_hi)
    return seen


# counts at the bottom of their rounding range (13 -> 15 of 13-17) are the ones that pin a redacted cell
small_cells = st.one_of(
    st.integers(0, 10),
    st.integers(1, 3),
    st.integers(1, 8).map(lambda k: 5 * k + 3),
    st.integers(1, 8).map(lambda k: 5 * k + 3),
    st.integers(8, 90),
)


def pinning_tables():
    """Tables of 1 or 2 rows whose first row is 5a + 3, 5b + 3 and 1 in some order: its total
    5(a + b) + 7 publishes as 5(a + b) + 5, which pins the 1 unless something else is hidden.
    The second cell is sometimes 100 to 900, the second row sometimes holds such counts."""
    first = st.tuples(st.integers(1, 8), st.one_of(st.integers(1, 8), st.integers(19, 179))).flatmap(
        lambda ab: st.permutations([5 * ab[0] + 3, 5 * ab[1] + 3, 1])
    )
    second = st.lists(st.one_of(small_cells, st.integers(100, 900)), min_size=3, max_size=3)
    return st.tuples(first, st.lists(second, max_size=1)).map(lambda t: pd.DataFrame([t[0], *t[1]]))


small_tables = st.one_of(tables(cell=small_cells, rows=(1, 2), columns=(2, 3)), pinning_tables())


@settings(max_examples=300, deadline=None)
@given(small_tables)
def test_no_redacted_value_can_be_recovered_exactly(counts):
    out = protect(counts)
    assume(out is not None)
    full = with_totals(counts)
    ranges = value_ranges(out, cap=int(full[-1, -1]) + 10)
    values = out.published.to_numpy()
    for cell in np.ndindex(values.shape):
        lo, hi = ranges[cell]
        assert lo <= full[cell] <= hi  # the true table is among those enumerated
        if values[cell] == SUPPRESSED:
            assert lo < hi, (cell, out.published)


def test_the_exact_check_finds_a_pinned_cell():
    # the check itself: without secondary suppression, 13, 13, 1 / 27 pins the 1
    unprotected = Protected(
        published=pd.DataFrame([[15, 15, SUPPRESSED, 25], [15, 15, SUPPRESSED, 25]], index=[0, "Total"]),
        rules=pd.DataFrame([[ROUNDED, ROUNDED, SMALL, ROUNDED]] * 2, index=[0, "Total"]),
    )
    assert value_ranges(unprotected, cap=40)[(0, 2)] == (1, 1)


def exposed(out: Protected, cap: int) -> list[tuple[int, int]]:
    """The redacted cells of ``out`` that take a single value over all consistent tables."""
    ranges = value_ranges(out, cap)
    values = out.published.to_numpy()
    return [
        cell for cell in np.ndindex(values.shape) if values[cell] == SUPPRESSED and ranges[cell][0] == ranges[cell][1]
    ]


def secondary_cells(out: Protected):
    """Each secondarily suppressed cell, with the cells of the line it completes and its place in it."""
    rules = out.rules.to_numpy()
    for i, j in zip(*np.nonzero(np.isin(rules, [SECONDARY_ROW, SECONDARY_COLUMN])), strict=True):
        if rules[i, j] == SECONDARY_ROW:
            yield (i, j), [(i, k) for k in range(rules.shape[1])], j
        else:
            yield (i, j), [(k, j) for k in range(rules.shape[0])], i


@settings(max_examples=150, deadline=None)
@given(tables())
def test_secondary_suppression_completes_a_line_with_a_redacted_cell(counts):
    out = protect(counts)
    assume(out is not None)
    full = with_totals(counts)
    values = out.published.to_numpy()
    for cell, line, at in secondary_cells(out):
        assert full[cell] >= 8  # a count that would have been published, not a zero
        assert sum(values[c] == SUPPRESSED for c in line) >= 2  # it complements a redacted cell of its line
        if at == len(line) - 1:  # a total only when no published cell of its line was left
            assert all(values[c] in (SUPPRESSED, 0) for c in line[:-1])


def test_a_large_cell_is_hidden_when_no_smaller_one_can_help():
    # the 1 is pinned by its row: 227 at most, less 8 and 218 at least. Hiding the 8 (published
    # 10, so 8 to 12) would not help, since a reader knows a hidden complement is at least 8:
    # only the 218 or the row total frees it, and the 218 is the smaller
    out = protect_table(pd.DataFrame([[8, 8, 8], [8, 1, 218]]))
    assert out.published.loc[1].tolist() == [10, SUPPRESSED, SUPPRESSED, 225]
    assert out.rules.loc[1].tolist() == [ROUNDED, SMALL, SECONDARY_ROW, ROUNDED]
    assert (out.published.drop(index=1) != SUPPRESSED).all().all()
    swapped = Protected(out.published.copy(), out.rules.copy())
    swapped.published.iat[1, 2], swapped.rules.iat[1, 2] = 220, ROUNDED
    swapped.published.iat[1, 0], swapped.rules.iat[1, 0] = SUPPRESSED, SECONDARY_ROW
    assert (1, 1) in exposed(swapped, cap=300)  # the 1, and the hidden 8 with it


@settings(max_examples=150, deadline=None)
@given(pinning_tables())
def test_a_cell_is_complemented_by_a_larger_one_only_when_no_smaller_one_would_do(counts):
    """Never a large cell while a smaller one of its line would do (so no cell of 100 or more is
    hidden when a smaller cell of its line would protect the table)."""
    out = protect(counts)
    assume(out is not None)
    full = with_totals(counts)
    cap = int(full[-1, -1]) + 10
    # with one complement the claim is exact; with several, another choice could have been
    # enough together with a later one, which is more than the engine promises
    complements = list(secondary_cells(out))
    assume(len(complements) == 1)
    for cell, line, _ in complements:
        smaller = [c for c in line[:-1] if out.published.iat[c] not in (SUPPRESSED, 0) and full[c] < full[cell]]
        for other in smaller:  # publish this cell and hide the smaller one instead: something is exposed
            published, rules = out.published.copy(), out.rules.copy()
            published.iat[cell], rules.iat[cell] = int(round_count(full[cell])), ROUNDED
            published.iat[other], rules.iat[other] = SUPPRESSED, out.rules.iat[cell]
            assert exposed(Protected(published, rules), cap), (cell, other, out.published)
