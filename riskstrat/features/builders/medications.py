"""GP prescribing: polypharmacy, high-risk drug classes, cost.

Drug classes are BNF prefixes declared once, with provenance, in
``riskstrat/codelists/data/bnf/drug_classes.csv`` (read with :func:`drug_class`).
"""

from __future__ import annotations

import ibis

from riskstrat import codelists
from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import amount, count_if, days_before, in_last, starts_with_any
from riskstrat.features.registry import Dtype, Feature, ReasonKind, count_reason, register

DRUG_CLASSES_FILE = "bnf/drug_classes.csv"


def drug_class(name: str) -> tuple[str, ...]:
    """BNF prefixes of a drug class of ``bnf/drug_classes.csv`` (e.g. ``"nsaids"`` -> ``("100101",)``)."""
    prefixes = tuple(codelists.codes(DRUG_CLASSES_FILE, drug_class=name))
    if not prefixes:
        raise KeyError(f"no drug class {name} in {DRUG_CLASSES_FILE}")
    return prefixes


#: class -> BNF prefixes: 2.8.2 oral anticoagulants, 4.7.2 opioid analgesics, 10.1.1 NSAIDs,
#: 6.3.2 corticosteroids (sub-paragraph 0603020), 4.2.1-4.2.2 antipsychotics, 2.2.2 loop diuretics,
#: 6.1.1 insulins
HIGH_RISK = {
    k: drug_class(k)
    for k in (
        "anticoagulants",
        "opioids",
        "nsaids",
        "oral_corticosteroids",
        "antipsychotics",
        "loop_diuretics",
        "insulin",
    )
}
POLYPHARMACY = 10


def _distinct_medicines_reason(v: float) -> str:
    n = round(v)
    return f"{POLYPHARMACY}+ regular medicines" if n >= POLYPHARMACY else f"{n} different medicines in 6 months"


@register(
    "medications",
    ("gp_medications",),
    [
        Feature(
            "distinct_medicines_182d",
            "distinct BNF chemical substances (first 9 characters) issued",
            "182 days before D",
            0,
            reason=_distinct_medicines_reason,
            kind=ReasonKind.ACTIONABLE,
        ),
        Feature(
            "polypharmacy_10plus",
            f"1 when {POLYPHARMACY} or more distinct substances",
            "182 days before D",
            0,
            reason=f"{POLYPHARMACY}+ regular medicines",
            kind=ReasonKind.ACTIONABLE,
        ),
        Feature(
            "items_365d",
            "prescription items issued",
            "365 days before D",
            0,
            reason=count_reason("prescription item{s}", 365),
        ),
    ]
    + [
        Feature(
            f"items_{k}_182d",
            f"items issued of {k.replace('_', ' ')} (BNF {', '.join(v)})",
            "182 days before D",
            0,
            reason=f"{k.replace('_', ' ')} prescribed ({{n}} items in 6 months)",
        )
        for k, v in HIGH_RISK.items()
    ]
    + [
        Feature(
            "prescribing_cost_365d",
            "actual cost of items issued, pounds (2 decimals)",
            "365 days before D",
            0.0,
            Dtype.FLOAT,
            reason="£{v:,.0f} prescribing cost in the last year",
        )
    ],
)
def medications(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    m = src.gp_medications
    m = m.filter(in_last(m.issue_date, as_of, 365))
    recent = days_before(d, m.issue_date) <= 182
    substance = recent.ifelse(m.bnf_code.substr(0, 9), ibis.null("string"))
    n_sub = substance.nunique()
    aggs = {
        "distinct_medicines_182d": n_sub.cast("int64"),
        "polypharmacy_10plus": (n_sub >= POLYPHARMACY).cast("int64"),
        "items_365d": count_if(m.issue_date.notnull()),
    }
    for k, prefixes in HIGH_RISK.items():
        aggs[f"items_{k}_182d"] = count_if(recent & starts_with_any(m.bnf_code, prefixes))
    aggs["prescribing_cost_365d"] = amount(m.actual_cost).sum().round(2).cast("float64")
    return m.group_by("pseudonym").aggregate(**aggs)
