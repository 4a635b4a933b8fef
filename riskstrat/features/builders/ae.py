"""A&E (Emergency Care Data Set): attendances, ambulance arrivals, admissions, frequent use."""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import count_if, days_before, in_last
from riskstrat.features.registry import Feature, ReasonKind, count_reason, register

FREQUENT = 4


@register(
    "ae",
    ("sus_ecds",),
    [
        Feature(
            "ae_attendances_90d",
            "A&E attendances (all department types)",
            "90 days before D",
            0,
            reason=count_reason("A&E attendance{s}", 90),
        ),
        Feature(
            "ae_attendances_365d",
            "A&E attendances (all department types)",
            "365 days before D",
            0,
            reason=count_reason("A&E attendance{s}", 365),
        ),
        Feature(
            "ae_ambulance_365d",
            "A&E attendances arriving by ambulance",
            "365 days before D",
            0,
            reason=count_reason("ambulance arrival{s} at A&E", 365),
        ),
        Feature(
            "ae_admitted_365d",
            "A&E attendances that ended in admission",
            "365 days before D",
            0,
            reason=count_reason("A&E attendance{s} ending in admission", 365),
        ),
        Feature(
            "ae_frequent_attender",
            f"1 when {FREQUENT} or more A&E attendances",
            "365 days before D",
            0,
            reason=f"frequent A&E attender ({FREQUENT}+ a year)",
            kind=ReasonKind.ACTIONABLE,
        ),
    ],
)
def ae(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    e = src.sus_ecds
    e = e.filter(in_last(e.arrival_date, as_of, 365))
    n = count_if(e.arrival_date.notnull())
    return e.group_by("pseudonym").aggregate(
        ae_attendances_90d=count_if(days_before(d, e.arrival_date) <= 90),
        ae_attendances_365d=n,
        ae_ambulance_365d=count_if(e.ambulance_arrival),
        ae_admitted_365d=count_if(e.admitted),
        ae_frequent_attender=(n >= FREQUENT).cast("int64"),
    )
