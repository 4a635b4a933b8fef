"""SUS+ outpatients: attendances, new referrals, missed appointments, specialties."""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import count_if, in_last
from riskstrat.features.registry import Feature, count_reason, register
from riskstrat.schema import ATTENDED_STATUS, DID_NOT_ATTEND_STATUS


@register(
    "outpatients",
    ("sus_op",),
    [
        Feature(
            "op_attendances_365d",
            "outpatient appointments attended (status 5 or 6)",
            "365 days before D",
            0,
            reason=count_reason("outpatient appointment{s}", 365),
        ),
        Feature(
            "op_first_attendances_365d",
            "first attendances attended (codes 1 and 3): new referrals",
            "365 days before D",
            0,
            reason=count_reason("new outpatient referral{s}", 365),
        ),
        Feature(
            "op_dna_365d",
            "appointments not attended (status 3)",
            "365 days before D",
            0,
            reason=count_reason("missed outpatient appointment{s}", 365),
        ),
        Feature(
            "op_specialties_365d",
            "distinct treatment functions of attended appointments",
            "365 days before D",
            0,
            reason="seen by {n} hospital specialt{ies} in the last year",
        ),
    ],
)
def outpatients(src: Sources, as_of) -> ibis.Table:
    op = src.sus_op
    op = op.filter(in_last(op.appointment_date, as_of, 365))
    attended = op.attendance_status.isin(ATTENDED_STATUS)
    return op.group_by("pseudonym").aggregate(
        op_attendances_365d=count_if(attended),
        op_first_attendances_365d=count_if(attended & op.first_attendance.isin(("1", "3"))),
        op_dna_365d=count_if(op.attendance_status.isin(DID_NOT_ATTEND_STATUS)),
        op_specialties_365d=attended.ifelse(op.treatment_function_code, ibis.null("string")).nunique(),
    )
