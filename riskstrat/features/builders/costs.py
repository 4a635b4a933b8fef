"""Total SUS+ cost in the last year: admitted care, outpatients and A&E."""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import amount, in_last
from riskstrat.features.registry import Dtype, Feature, register


@register(
    "sus_cost",
    ("sus_apc", "sus_op", "sus_ecds"),
    [
        Feature(
            "sus_cost_365d",
            "SUS+ cost, pounds: episodes of spells admitted, appointments and A&E "
            "attendances in the window (2 decimals)",
            "365 days before D",
            0.0,
            Dtype.FLOAT,
            reason="£{v:,.0f} hospital cost in the last year",
        ),
    ],
)
def sus_cost(src: Sources, as_of) -> ibis.Table:
    apc, op, ae = src.sus_apc, src.sus_op, src.sus_ecds
    parts = [
        apc.filter(in_last(apc.admission_date, as_of, 365)).select("pseudonym", c=amount(apc.cost)),
        op.filter(in_last(op.appointment_date, as_of, 365)).select("pseudonym", c=amount(op.cost)),
        ae.filter(in_last(ae.arrival_date, as_of, 365)).select("pseudonym", c=amount(ae.cost)),
    ]
    allc = parts[0].union(parts[1], distinct=False).union(parts[2], distinct=False)
    return allc.group_by("pseudonym").aggregate(sus_cost_365d=allc.c.sum().round(2).cast("float64"))
