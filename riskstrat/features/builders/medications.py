"""GP prescribing: polypharmacy, high-risk drug classes, cost.

Drug classes are BNF prefixes declared once, with provenance, in
``riskstrat/codelists/data/bnf/drug_classes.csv`` (read with :func:`drug_class`). Every prefix is
at most :data:`~riskstrat.features.builders._prescriptions.SUBSTANCE_CHARS` long, so a class is a
property of the substance, and the features are sums over the prescriptions grouped by person and
substance (:func:`~riskstrat.features.builders._prescriptions.by_substance`).
"""

from __future__ import annotations

import ibis

from riskstrat import codelists
from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import count_if, starts_with_any, sum_if
from riskstrat.features.builders._prescriptions import HALF_YEAR_DAYS, SUBSTANCE_CHARS, YEAR_DAYS, by_substance
from riskstrat.features.registry import Dtype, Feature, ReasonKind, count_reason, register

DRUG_CLASSES_FILE = "bnf/drug_classes.csv"


def drug_class(name: str) -> tuple[str, ...]:
    """BNF prefixes of a drug class of ``bnf/drug_classes.csv`` (e.g. ``"nsaids"`` -> ``("100101",)``)."""
    prefixes = tuple(codelists.codes(DRUG_CLASSES_FILE, drug_class=name))
    if not prefixes:
        raise KeyError(f"no drug class {name} in {DRUG_CLASSES_FILE}")
    if any(len(p) > SUBSTANCE_CHARS for p in prefixes):  # the builders test classes on substances
        raise ValueError(f"{DRUG_CLASSES_FILE}: {name} has a prefix longer than a substance ({SUBSTANCE_CHARS})")
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
            f"distinct_medicines_{HALF_YEAR_DAYS}d",
            f"distinct BNF chemical substances (first {SUBSTANCE_CHARS} characters) issued",
            f"{HALF_YEAR_DAYS} days before D",
            0,
            reason=_distinct_medicines_reason,
            kind=ReasonKind.ACTIONABLE,
        ),
        Feature(
            "polypharmacy_10plus",
            f"1 when {POLYPHARMACY} or more distinct substances",
            f"{HALF_YEAR_DAYS} days before D",
            0,
            reason=f"{POLYPHARMACY}+ regular medicines",
            kind=ReasonKind.ACTIONABLE,
        ),
        Feature(
            f"items_{YEAR_DAYS}d",
            "prescription items issued",
            f"{YEAR_DAYS} days before D",
            0,
            reason=count_reason("prescription item{s}", YEAR_DAYS),
        ),
    ]
    + [
        Feature(
            f"items_{k}_{HALF_YEAR_DAYS}d",
            f"items issued of {k.replace('_', ' ')} (BNF {', '.join(v)})",
            f"{HALF_YEAR_DAYS} days before D",
            0,
            reason=f"{k.replace('_', ' ')} prescribed ({{n}} items in 6 months)",
        )
        for k, v in HIGH_RISK.items()
    ]
    + [
        Feature(
            f"prescribing_cost_{YEAR_DAYS}d",
            "actual cost of items issued, pounds (2 decimals)",
            f"{YEAR_DAYS} days before D",
            0.0,
            Dtype.FLOAT,
            reason="£{v:,.0f} prescribing cost in the last year",
        )
    ],
)
def medications(src: Sources, as_of) -> ibis.Table:
    per = by_substance(src, as_of)
    n_sub = count_if(per.last <= HALF_YEAR_DAYS)
    aggs = {
        f"distinct_medicines_{HALF_YEAR_DAYS}d": n_sub,
        "polypharmacy_10plus": (n_sub >= POLYPHARMACY).cast("int64"),
        f"items_{YEAR_DAYS}d": per.items_year.sum().cast("int64"),
    }
    for k, prefixes in HIGH_RISK.items():
        in_class = starts_with_any(per.substance, prefixes)
        aggs[f"items_{k}_{HALF_YEAR_DAYS}d"] = sum_if(in_class, per.items_half_year).cast("int64")
    aggs[f"prescribing_cost_{YEAR_DAYS}d"] = per.cost_year.sum().round(2).cast("float64")
    return per.group_by("pseudonym").aggregate(**aggs)
