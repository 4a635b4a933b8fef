"""Prescriptions by person and BNF chemical substance, shared by the prescribing builders.

:func:`by_substance` groups the prescriptions of the :data:`LOOKBACK` days before D by person and
substance (the first :data:`SUBSTANCE_CHARS` characters of the BNF code) once; the medications
builder, the medicine history and the eFI's polypharmacy deficit are counts and sums over its
rows. The prescribing windows are declared here, once. (A module of its own, registering no
builder, so that importing it does not change the order in which builders register.)
"""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import amount, count_if, days_before, in_last, sum_if
from riskstrat.features.registry import shared

__all__ = [
    "CURRENT_DAYS",
    "HALF_YEAR_DAYS",
    "LOOKBACK",
    "NEW_LOOKBACK",
    "SUBSTANCE_CHARS",
    "YEAR_DAYS",
    "by_substance",
]

SUBSTANCE_CHARS = 9  # chapter + section + paragraph + sub-paragraph + chemical substance
HALF_YEAR_DAYS = 182  # "in the last 6 months"
YEAR_DAYS = 365
CURRENT_DAYS = 90  # "current" medication: issued in the 90 days before D (PINCER's previous 3 months)
NEW_LOOKBACK = 365  # a medicine is new when not issued in the 365 days before the current window
LOOKBACK = CURRENT_DAYS + NEW_LOOKBACK  # 455 days: the longest window over prescriptions


@shared("prescriptions_by_substance")
def by_substance(src: Sources, as_of) -> ibis.Table:
    """One row per person and BNF chemical substance (``substance``, 9 characters) issued in the
    :data:`LOOKBACK` days before D: ``last`` and ``first`` (days before D of the latest and
    earliest issue), ``items_half_year`` (issued in the last :data:`HALF_YEAR_DAYS` days),
    ``items_half_year_before`` (days 183-364), ``items_year`` and ``cost_year`` (last
    :data:`YEAR_DAYS` days; cost in pounds, missing as 0). Windows are compared as dates, and days
    are counted only on the grouped rows."""
    d = ibis.date(as_of)
    m = src.gp_medications
    m = m.filter(in_last(m.issue_date, as_of, LOOKBACK))
    half_year, year = in_last(m.issue_date, as_of, HALF_YEAR_DAYS), in_last(m.issue_date, as_of, YEAR_DAYS)
    year_before_half = ~half_year & in_last(m.issue_date, as_of, 2 * HALF_YEAR_DAYS)
    per = m.group_by(["pseudonym", m.bnf_code.substr(0, SUBSTANCE_CHARS).name("substance")]).aggregate(
        _latest=m.issue_date.max(),
        _earliest=m.issue_date.min(),
        items_half_year=count_if(half_year),
        items_half_year_before=count_if(year_before_half),
        items_year=count_if(year),
        cost_year=sum_if(year, amount(m.actual_cost)),
    )
    return per.select(
        "pseudonym",
        "substance",
        last=days_before(d, per._latest),
        first=days_before(d, per._earliest),
        items_half_year=per.items_half_year,
        items_half_year_before=per.items_half_year_before,
        items_year=per.items_year,
        cost_year=per.cost_year,
    )
