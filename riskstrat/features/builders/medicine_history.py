"""Medicines over time: breadth, new medicines, prescribing trend, prescribing-safety indicators.

From the prescriptions of the :data:`LOOKBACK` days before D grouped by (person, BNF chemical
substance — the first 9 characters of the BNF code), shared with the other prescribing builders
(:func:`~riskstrat.features.builders.medications.by_substance`), grouped again by person; the
small per-person result is joined to age and the two register flags the indicators need.

*Current* medication means a substance issued in the :data:`CURRENT_DAYS` (90) days before D,
the "previous 3 months" window of the PINCER indicators. A *new* medicine is a substance
issued in those 90 days and not in the 365 days before them (days 91-455 before D). A BNF
*section* is the first 4 characters of the code: chapter (2) and section (2), e.g. ``0205``
(2.5, hypertension and heart failure). Drug classes are BNF prefixes from
``riskstrat/codelists/data/bnf/drug_classes.csv`` (provenance and the PINCER and STOPP
indicator definitions in ``data/bnf/README.md``). Age is the demographics definition
(:func:`~riskstrat.features.builders.demographics.age_years`) and the CKD and heart failure
flags are the QOF-style registers of :mod:`~riskstrat.features.builders.gp_events`.
"""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import count_if, max_if, population_at, starts_with_any, sum_if
from riskstrat.features.builders._prescriptions import (
    CURRENT_DAYS,
    HALF_YEAR_DAYS,
    LOOKBACK,
    NEW_LOOKBACK,
    YEAR_DAYS,
    by_substance,
)
from riskstrat.features.builders.demographics import age_years
from riskstrat.features.builders.gp_events import REGISTERS, register_flags
from riskstrat.features.builders.medications import drug_class
from riskstrat.features.registry import Feature, ReasonKind, in_the_last, register, trend_reason

__all__ = ["SAFETY_INDICATORS", "medicine_history"]

BREADTH_DAYS = YEAR_DAYS
TREND_DAYS = HALF_YEAR_DAYS  # the trend compares the last half year with the one before
OLDER_AGE = 65
SECTION_CHARS = 4  # chapter + section

_CLASSES = (
    "nsaids",
    "anticoagulants",
    "antiplatelets",
    "ppis",
    "h2_antagonists",
    "ace_inhibitors",
    "arbs",
    "diuretics",
    "opioids",
    "hypnotics_anxiolytics",
    "antipsychotics",
)
_CONTEXT_REGISTERS = ("ckd", "heart_failure")

#: indicator -> definition (each 0/1; counted in ``prescribing_safety_indicators``)
SAFETY_INDICATORS = {
    "nsaid_with_ckd": "current NSAID (BNF 10.1.1) on the CKD stage 3-5 register (PINCER K)",
    "nsaid_with_heart_failure": "current NSAID (BNF 10.1.1) on the heart failure register (PINCER I)",
    "antithrombotic_without_gastroprotection": "current oral anticoagulant (2.8.2) or antiplatelet (2.9) without a "
    "current PPI (1.3.5) or H2-receptor antagonist (1.3.1)",
    "nsaid_65plus_without_gastroprotection": f"aged {OLDER_AGE}+ on D with a current NSAID (10.1.1) without a "
    "current PPI or H2-receptor antagonist (PINCER A)",
    "triple_whammy": "current ACE inhibitor (2.5.5.1) or ARB (2.5.5.2) with a current diuretic (2.2) and a "
    "current NSAID (10.1.1)",
    "anticoagulant_with_antiplatelet": "current oral anticoagulant (2.8.2) with a current antiplatelet (2.9)",
    "falls_risk_medicines_65plus": f"aged {OLDER_AGE}+ on D with a current hypnotic or anxiolytic (4.1), "
    "antipsychotic (4.2.1, 4.2.2) or opioid analgesic (4.7.2) (STOPP falls-risk drugs)",
}
#: indicator -> its reason when it applies, in plain words
_SAFETY_WORDS = {
    "nsaid_with_ckd": "NSAID prescribed with chronic kidney disease",
    "nsaid_with_heart_failure": "NSAID prescribed with heart failure",
    "antithrombotic_without_gastroprotection": "anticoagulant or antiplatelet without stomach protection",
    "nsaid_65plus_without_gastroprotection": f"NSAID at {OLDER_AGE}+ without stomach protection",
    "triple_whammy": "NSAID with an ACE inhibitor or ARB and a diuretic (triple whammy)",
    "anticoagulant_with_antiplatelet": "anticoagulant with an antiplatelet",
    "falls_risk_medicines_65plus": f"falls-risk medicines at {OLDER_AGE}+",
}
_WINDOW = f"{CURRENT_DAYS} days before D (current)"

_features = [
    Feature(
        f"bnf_sections_{BREADTH_DAYS}d",
        "distinct BNF sections (first 4 characters of the BNF code: chapter and section) issued",
        f"{BREADTH_DAYS} days before D",
        0,
        reason=f"medicines from {{n}} BNF section{{s}} in {in_the_last(BREADTH_DAYS)}",
    ),
    Feature(
        f"new_medicines_{CURRENT_DAYS}d",
        f"distinct chemical substances (first 9 characters) issued in the {CURRENT_DAYS} days before D and "
        f"not in the {NEW_LOOKBACK} days before those (days {CURRENT_DAYS + 1}-{LOOKBACK})",
        f"{LOOKBACK} days before D",
        0,
        reason=f"new to {{n}} medicine{{s}} in {in_the_last(CURRENT_DAYS)}",
    ),
    Feature(
        f"prescribing_trend_{TREND_DAYS}d",
        f"prescription items issued in days 1-{TREND_DAYS} before D minus those in days "
        f"{TREND_DAYS + 1}-{2 * TREND_DAYS} (negative: falling)",
        f"{2 * TREND_DAYS} days before D",
        0,
        reason=trend_reason("prescription items"),
    ),
    Feature(
        f"items_opioids_{YEAR_DAYS}d",
        f"items issued of opioid analgesics (BNF {', '.join(drug_class('opioids'))})",
        f"{YEAR_DAYS} days before D",
        0,
        reason="opioids prescribed ({n} item{s} in the last year)",
    ),
    Feature(
        "opioid_current",
        f"1 when an opioid analgesic (BNF {', '.join(drug_class('opioids'))}) was issued in the window",
        _WINDOW,
        0,
        reason=f"opioid prescribed in {in_the_last(CURRENT_DAYS)}",
    ),
]
_features += [
    Feature(name, definition, _WINDOW, 0, reason=_SAFETY_WORDS[name], kind=ReasonKind.ACTIONABLE)
    for name, definition in SAFETY_INDICATORS.items()
]
_features.append(
    Feature(
        "prescribing_safety_indicators",
        f"number of the {len(SAFETY_INDICATORS)} prescribing-safety indicators above that apply",
        _WINDOW,
        0,
        reason="{n} prescribing safety alert{s}",
        kind=ReasonKind.ACTIONABLE,
    )
)


@register(
    "medicine_history",
    ("gp_medications", "gp_events", "gp_registrations", "ref_practices", "deaths"),
    _features,
)
def medicine_history(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    per = by_substance(src, as_of)
    current = per.last <= CURRENT_DAYS
    is_opioid = starts_with_any(per.substance, drug_class("opioids"))
    aggs = {
        f"bnf_sections_{BREADTH_DAYS}d": (per.last <= BREADTH_DAYS)
        .ifelse(per.substance.substr(0, SECTION_CHARS), ibis.null("string"))
        .nunique()
        .cast("int64"),
        f"new_medicines_{CURRENT_DAYS}d": count_if(per.first <= CURRENT_DAYS),
        f"prescribing_trend_{TREND_DAYS}d": (per.items_half_year - per.items_half_year_before).sum().cast("int64"),
        f"items_opioids_{YEAR_DAYS}d": sum_if(is_opioid, per.items_year).cast("int64"),
    }
    aggs |= {f"_on_{c}": max_if(current & starts_with_any(per.substance, drug_class(c))) for c in _CLASSES}
    meds = per.group_by("pseudonym").aggregate(**aggs)

    pop = population_at(src, as_of)
    age = pop.select("pseudonym", _age=age_years(d, pop.month_of_birth))
    flags = register_flags(src.gp_events, {r: REGISTERS[r] for r in _CONTEXT_REGISTERS})
    t = meds.left_join(age, "pseudonym").left_join(flags, "pseudonym")
    on = {c: t[f"_on_{c}"] == 1 for c in _CLASSES}
    has = {r: t[r].fill_null(0) == 1 for r in _CONTEXT_REGISTERS}
    older = t._age.fill_null(0) >= OLDER_AGE
    protected = on["ppis"] | on["h2_antagonists"]
    antithrombotic = on["anticoagulants"] | on["antiplatelets"]
    indicators = {
        "nsaid_with_ckd": on["nsaids"] & has["ckd"],
        "nsaid_with_heart_failure": on["nsaids"] & has["heart_failure"],
        "antithrombotic_without_gastroprotection": antithrombotic & ~protected,
        "nsaid_65plus_without_gastroprotection": older & on["nsaids"] & ~protected,
        "triple_whammy": (on["ace_inhibitors"] | on["arbs"]) & on["diuretics"] & on["nsaids"],
        "anticoagulant_with_antiplatelet": on["anticoagulants"] & on["antiplatelets"],
        "falls_risk_medicines_65plus": older & (on["hypnotics_anxiolytics"] | on["antipsychotics"] | on["opioids"]),
    }
    flags01 = {k: v.cast("int64") for k, v in indicators.items()}
    total = sum(flags01.values(), ibis.literal(0, "int64"))
    return t.select(
        "pseudonym",
        *[n for n in aggs if not n.startswith("_")],
        opioid_current=on["opioids"].cast("int64"),
        **flags01,
        prescribing_safety_indicators=total.cast("int64"),
    )
