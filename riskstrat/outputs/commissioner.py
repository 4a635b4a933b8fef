"""Commissioner outputs: a pseudonymised cohort table and protected aggregates.

No NHS numbers: the cohort table is keyed by pseudonym ("record level output ...
pseudonymised at patient level"), and aggregates leave only under disclosure control
(:mod:`riskstrat.privacy.disclosure`), with a record of the rule applied to every cell. The
stratification cohorts are those the data sharing agreements name. Risk bands, their names
and their order, are the scoring model's own (:class:`Band`, from the score manifest), never
typed here: a model with other bands gets correct figures under its own names.
"""

from __future__ import annotations

import pandas as pd

from riskstrat.groups import COMMISSIONER_AGE_BANDS, imd_quintile, is_frail, sex_letter
from riskstrat.modelling.spec import RiskBand
from riskstrat.privacy.disclosure import (
    DEFAULT_RULES,
    SUPPRESSED,
    DisclosureRules,
    percentages,
    protect_counts,
    protect_table,
    rate_midpoint6,
)

__all__ = ["AT_RISK_SHARE", "COHORTS", "COHORT_INPUTS", "aggregates", "at_risk_bands", "cohort_table"]

#: "at risk": the bands that together hold the top 5% of the population (very high and high
#: in the default specification)
AT_RISK_SHARE = 0.05


def at_risk_bands(bands: list[RiskBand]) -> list[str]:
    """Names of the bands that make up the at-risk group (the first band at least)."""
    names = [b.name for b in bands if b.top_share <= AT_RISK_SHARE + 1e-9]
    return names or [bands[0].name]


def measure_name(band: str) -> str:
    """The aggregates' measure for the people of a band (``people_very_high``)."""
    return "people_" + "_".join(band.split())


#: cohort -> definition (documented in docs/outputs.md)
COHORTS = {
    "highest_risk_of_admission": f"in the at-risk bands: the top {AT_RISK_SHARE:.0%} of the population",
    "high_cost": "top 15% of SUS+ plus prescribing cost in the last year",
    "frail_and_elderly": "aged 75+ with moderate or severe frailty (eFI above 0.24: Clegg et al. 2016)",
    "currently_in_hospital": "in a hospital spell that is open on D",
    "most_referrals_to_secondary_care": "top 5% by first outpatient attendances in the last year (at least 1)",
    "most_emergency_activity": "top 5% by emergency admissions plus A&E attendances in the last year (at least 1)",
    "most_expensive_prescriptions": "top 5% by prescribing cost in the last year",
    "recently_discharged": "discharged from hospital in the 30 days before D",
}


#: the feature columns :func:`cohort_table` reads
COHORT_INPUTS = (
    "practice_code",
    "pcn_code",
    "age_years",
    "sex",
    "imd_decile",
    "ltc_count",
    "sus_cost_365d",
    "prescribing_cost_365d",
    "efi_score",
    "in_hospital_on_d",
    "op_first_attendances_365d",
    "emergency_admissions_365d",
    "ae_attendances_365d",
    "discharged_30d",
)


def _top(values: pd.Series, share: float) -> pd.Series:
    cut = values.quantile(1 - share)
    return (values >= cut) & (values > 0)


def cohort_table(scored: pd.DataFrame, bands: list[RiskBand]) -> pd.DataFrame:
    """One row per pseudonym: place, age band, sex, IMD quintile, risk, conditions, cohorts."""
    s = scored
    cost = s["sus_cost_365d"] + s["prescribing_cost_365d"]
    out = pd.DataFrame(
        {
            "pseudonym": s["pseudonym"],
            "practice_code": s["practice_code"],
            "pcn_code": s["pcn_code"],
            "age_band": COMMISSIONER_AGE_BANDS.of(s["age_years"]),
            "sex": sex_letter(s["sex"]),
            "imd_quintile": imd_quintile(s["imd_decile"]),
            "risk_score": s["risk_score"],
            "risk_band": s["risk_band"],
            "long_term_conditions": s["ltc_count"],
            "highest_risk_of_admission": s["risk_band"].isin(at_risk_bands(bands)),
            "high_cost": _top(cost, 0.15),
            "frail_and_elderly": (s["age_years"] >= 75) & is_frail(s["efi_score"]),
            "currently_in_hospital": s["in_hospital_on_d"] == 1,
            "most_referrals_to_secondary_care": _top(s["op_first_attendances_365d"], 0.05),
            "most_emergency_activity": _top(s["emergency_admissions_365d"] + s["ae_attendances_365d"], 0.05),
            "most_expensive_prescriptions": _top(s["prescribing_cost_365d"], 0.05),
            "recently_discharged": s["discharged_30d"] == 1,
        }
    )
    return out.sort_values("pseudonym").reset_index(drop=True)


DIMENSIONS = ("practice_code", "pcn_code", "age_band", "sex", "imd_quintile")


def aggregates(cohort: pd.DataFrame, bands: list[RiskBand], rules: DisclosureRules = DEFAULT_RULES):
    """Protected counts: people by risk band across each dimension, the number and share at
    risk, and cohort sizes, in long format (dimension, value, measure, published); and the
    decision record: the rule applied to each cell (dimension, value, measure, rule).

    The number at risk is the sum of the published at-risk band cells (withheld when one is
    redacted, so it can never be differenced against a redacted band) and the percentage at
    risk is computed from it and the published total. With ``rules.rates == "midpoint6"``
    the percentage is ``percent_at_risk_midpoint6``, from midpoint-6 rounded true counts.
    """
    names = [b.name for b in bands]
    risky = at_risk_bands(bands)
    rows, decisions = [], []
    for dim in DIMENSIONS:
        counts = pd.crosstab(cohort[dim], cohort["risk_band"]).reindex(columns=names, fill_value=0)
        protected = protect_table(counts, rules)
        safe, why = protected.published, protected.rules
        parts = safe[risky]
        at_risk = parts.apply(lambda r: SUPPRESSED if (r == SUPPRESSED).any() else int(sum(int(x) for x in r)), axis=1)
        if rules.rates == "midpoint6":
            true_risk = counts[risky].sum(axis=1)
            true_risk.loc["Total"] = int(true_risk.sum())
            true_total = counts.sum(axis=1)
            true_total.loc["Total"] = int(true_total.sum())
            pct_name, pct = "percent_at_risk_midpoint6", rate_midpoint6(true_risk, true_total)
            pct_rule = pd.Series("midpoint 6 rounding of numerator and denominator", index=pct.index)
        else:
            pct_name, pct = "percent_at_risk", percentages(at_risk, safe["Total"])
            pct_rule = pd.Series(
                [
                    "withheld: numerator or denominator redacted" if p == SUPPRESSED else "from the rounded counts"
                    for p in pct
                ],
                index=pct.index,
            )
        for value in safe.index:
            for band in [*names, "Total"]:
                measure = measure_name(band)
                rows.append((dim, str(value), measure, safe.at[value, band]))
                decisions.append((dim, str(value), measure, why.at[value, band]))
            rows.append((dim, str(value), "people_at_risk", at_risk[value]))
            decisions.append(
                (
                    dim,
                    str(value),
                    "people_at_risk",
                    "withheld: an at-risk band is redacted"
                    if at_risk[value] == SUPPRESSED
                    else "sum of the rounded at-risk band cells",
                )
            )
            rows.append((dim, str(value), pct_name, pct[value]))
            decisions.append((dim, str(value), pct_name, pct_rule[value]))
    sizes = protect_counts(cohort[list(COHORTS)].sum().astype(int), rules)
    for name in sizes.published.index:
        rows.append(("cohort", str(name), "people", sizes.published.at[name, "n"]))
        decisions.append(("cohort", str(name), "people", sizes.rules.at[name, "n"]))
    columns = ["dimension", "value", "measure"]
    return (
        pd.DataFrame(rows, columns=[*columns, "published"]),
        pd.DataFrame(decisions, columns=[*columns, "rule"]),
    )
