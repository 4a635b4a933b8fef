"""Longer history (SPARRA-style): 3- and 5-year hospital use, rates, recency, trend; condition durations.

Hospital use: emergency admissions (spells, :func:`~riskstrat.features.builders.apc.spells`),
A&E attendances, outpatient appointments attended and missed (did not attend) in the 1095 and
1826 days before D, days since the last of each, emergency admissions and A&E attendances per
year observed, and the recent trend. All four sources are stacked into one narrow table
``(pseudonym, kind, days_ago)`` and grouped once, so each source is read once.

*Years observed* (the denominator of the rates) is the time from the person's earliest
registration start in the extract (any practice, on or before D) to D, in years of 365.25
days, capped at the 5-year window and floored at :data:`MIN_YEARS_OBSERVED` so that a new
registrant's single attendance does not become a huge rate. Hospital records from before a
person's first registration in the extract are counted in the numerator (they are in the
extract), but the denominator does not stretch to cover them.

Conditions: years since the first diagnosis code of each QOF-style register of
:data:`~riskstrat.features.builders.gp_events.REGISTERS` (the earliest diagnosis code, whatever
was coded later: a register resolved since still has its first diagnosis), and the number of
registers whose first diagnosis code falls in the last 365 days.
"""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import DAYS_SINCE_NONE, count_if, days_before
from riskstrat.features.builders.apc import spells
from riskstrat.features.builders.gp_events import CONDITION_WORDS, REGISTERS, code_rows
from riskstrat.features.registry import Dtype, Feature, count_reason, plural, register, trend_reason
from riskstrat.schema import ATTENDED_STATUS, DID_NOT_ATTEND_STATUS

__all__ = [
    "HISTORY_WINDOWS",
    "MIN_YEARS_OBSERVED",
    "NEVER_DIAGNOSED",
    "TREND_DAYS",
    "condition_history",
    "hospital_history",
]

HISTORY_WINDOWS = (1095, 1826)  # 3 and 5 years
RATE_YEARS = 5  # the window of the rates, in years (1826 days)
MIN_YEARS_OBSERVED = 1.0  # floor of the rates' denominator
TREND_DAYS = 182  # the trend compares days 1-182 before D with days 183-364
NEW_DIAGNOSIS_DAYS = 365
NEVER_DIAGNOSED = -1.0  # years since first diagnosis, for people with no diagnosis code

#: kind -> (feature stem, words); the order is the ``kind`` code in the stacked table
_EVENTS = {
    "emergency_admissions": "emergency spells admitted (admission methods 21-25, 2A-2D, 28)",
    "ae_attendances": "A&E attendances (all department types)",
    "op_attendances": "outpatient appointments attended (status 5 or 6)",
    "op_dna": "outpatient appointments missed: did not attend (status 3)",
}
#: stem -> what is counted, in words, with ``{s}`` where the plural goes
_COUNTED = {
    "emergency_admissions": "emergency admission{s}",
    "ae_attendances": "A&E attendance{s}",
    "op_attendances": "outpatient appointment{s}",
    "op_dna": "missed outpatient appointment{s}",
}
_KIND = {stem: i for i, stem in enumerate(_EVENTS)}
_REGISTRATION = len(_EVENTS)
_SINCE = {
    "ae_attendances": ("days_since_ae_attendance", "days since the last A&E attendance", "A&E attendance"),
    "op_attendances": (
        "days_since_op_attendance",
        "days since the last outpatient appointment attended",
        "outpatient appointment",
    ),
    "op_dna": (
        "days_since_op_dna",
        "days since the last missed outpatient appointment (did not attend)",
        "missed outpatient appointment",
    ),
}
_RATES = ("emergency_admissions", "ae_attendances")
_TREND = ("emergency_admissions", "ae_attendances", "op_attendances")

_hospital_features = [
    Feature(f"{stem}_{w}d", words, f"{w} days before D", 0, reason=count_reason(_COUNTED[stem], w))
    for stem, words in _EVENTS.items()
    for w in HISTORY_WINDOWS
]
_hospital_features += [
    Feature(
        name,
        f"{words} ({DAYS_SINCE_NONE}: none)",
        "all history before D",
        DAYS_SINCE_NONE,
        reason=f"last {last} {{n}} days ago",
    )
    for name, words, last in _SINCE.values()
]
_hospital_features += [
    Feature(
        f"{stem}_per_year_{RATE_YEARS}y",
        f"{_EVENTS[stem].split(' (')[0]} in the {HISTORY_WINDOWS[-1]} days before D per year observed: years from "
        f"the earliest registration start to D, capped at {RATE_YEARS} and at least {MIN_YEARS_OBSERVED:g} "
        "(2 decimals)",
        f"{HISTORY_WINDOWS[-1]} days before D",
        0.0,
        Dtype.FLOAT,
        reason=f"{{v:.1f}} {_COUNTED[stem].format(s='s')} a year in the last {RATE_YEARS} years",
    )
    for stem in _RATES
]
_hospital_features.append(
    Feature(
        f"hospital_activity_trend_{TREND_DAYS}d",
        f"emergency admissions + A&E attendances + outpatient appointments attended in days 1-{TREND_DAYS} "
        f"before D minus those in days {TREND_DAYS + 1}-{2 * TREND_DAYS} (negative: falling)",
        f"{2 * TREND_DAYS} days before D",
        0,
        reason=trend_reason("hospital contacts"),
    )
)


@register("hospital_history", ("sus_apc", "sus_ecds", "sus_op", "gp_registrations"), _hospital_features)
def hospital_history(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    s = spells(src, as_of)
    e, op, reg = src.sus_ecds, src.sus_op, src.gp_registrations
    op = op.filter(op.attendance_status.isin(ATTENDED_STATUS) | op.attendance_status.isin(DID_NOT_ATTEND_STATUS))

    def rows(t, kind, days_ago):
        return t.select("pseudonym", kind=kind.cast("int8"), days_ago=days_ago.cast("int64"))

    def code(kind):
        return ibis.literal(kind, "int8")

    emergency = s.filter(s.emergency)
    t = (
        rows(emergency, code(_KIND["emergency_admissions"]), emergency.days_ago)
        .union(rows(e, code(_KIND["ae_attendances"]), days_before(d, e.arrival_date)), distinct=False)
        .union(
            rows(
                op,
                op.attendance_status.isin(ATTENDED_STATUS).ifelse(_KIND["op_attendances"], _KIND["op_dna"]),
                days_before(d, op.appointment_date),
            ),
            distinct=False,
        )
        .union(rows(reg, code(_REGISTRATION), days_before(d, reg.registration_start)), distinct=False)
    )
    aggs = {}
    for stem in _EVENTS:
        is_kind = t.kind == _KIND[stem]
        for w in HISTORY_WINDOWS:
            aggs[f"{stem}_{w}d"] = count_if(is_kind & (t.days_ago <= w))
    for stem, (name, _, _) in _SINCE.items():
        aggs[name] = (t.kind == _KIND[stem]).ifelse(t.days_ago, DAYS_SINCE_NONE).min().cast("int64")
    recent = (t.days_ago <= TREND_DAYS) & t.kind.isin([_KIND[k] for k in _TREND])
    before = (t.days_ago > TREND_DAYS) & (t.days_ago <= 2 * TREND_DAYS) & t.kind.isin([_KIND[k] for k in _TREND])
    aggs[f"hospital_activity_trend_{TREND_DAYS}d"] = count_if(recent) - count_if(before)
    aggs["_registered_days"] = (t.kind == _REGISTRATION).ifelse(t.days_ago, ibis.null("int64")).max()
    wide = t.group_by("pseudonym").aggregate(**aggs)
    years = (wide._registered_days.fill_null(0) / 365.25).clip(lower=MIN_YEARS_OBSERVED, upper=RATE_YEARS)
    rates = {
        f"{stem}_per_year_{RATE_YEARS}y": (wide[f"{stem}_{HISTORY_WINDOWS[-1]}d"] / years).round(2).cast("float64")
        for stem in _RATES
    }
    return wide.mutate(**rates).drop("_registered_days")


def _diagnosed_reason(condition: str):
    """The reason of years since the first diagnosis of ``condition`` (words)."""

    def words(v: float) -> str:
        whole = int(v)
        if whole >= 1:
            return f"{condition} diagnosed {whole} year{plural(whole)} ago"
        return f"{condition} diagnosed in the last year"

    return words


@register(
    "condition_history",
    ("gp_events",),
    [
        Feature(
            f"years_since_{n}_diagnosis",
            f"years from the first {n.replace('_', ' ')} diagnosis code (register cluster) to D, 2 decimals; "
            f"{NEVER_DIAGNOSED:g}: never coded (a later resolved code does not change the first diagnosis)",
            "all history before D",
            NEVER_DIAGNOSED,
            Dtype.FLOAT,
            reason=_diagnosed_reason(CONDITION_WORDS[n]),
        )
        for n in REGISTERS
    ]
    + [
        Feature(
            f"conditions_diagnosed_{NEW_DIAGNOSIS_DAYS}d",
            "long-term condition registers above whose first diagnosis code falls in the window",
            f"{NEW_DIAGNOSIS_DAYS} days before D",
            0,
            reason=count_reason("new long-term condition{s} diagnosed", NEW_DIAGNOSIS_DAYS),
        )
    ],
)
def condition_history(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    ev = src.gp_events
    table = code_rows(REGISTERS)
    table = table.filter(table.kind == "dx")
    j = ev.join(table, ev.snomed_code == table.code)
    first = j.group_by(["pseudonym", "flag"]).aggregate(first=j.event_date.min())
    first = first.mutate(days_ago=days_before(d, first.first))
    years = (first.days_ago / 365.25).round(2).cast("float64")
    aggs = {
        f"years_since_{n}_diagnosis": (first.flag == n).ifelse(years, ibis.null("float64")).max() for n in REGISTERS
    }
    aggs[f"conditions_diagnosed_{NEW_DIAGNOSIS_DAYS}d"] = count_if(first.days_ago <= NEW_DIAGNOSIS_DAYS)
    return first.group_by("pseudonym").aggregate(**aggs)
