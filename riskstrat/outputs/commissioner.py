"""Commissioner outputs: a pseudonymised cohort table and suppressed aggregates.

No NHS numbers: the cohort table is keyed by pseudonym ("record level output ...
pseudonymised at patient level"), and aggregates leave only with small-number suppression
(:mod:`riskstrat.privacy.disclosure`). The stratification cohorts are those the data
sharing agreements name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.privacy.disclosure import SUPPRESSED, percentages, protect_counts, protect_table

__all__ = ["AT_RISK_BANDS", "COHORTS", "COHORT_INPUTS", "aggregates", "cohort_table"]

AT_RISK_BANDS = ("very high", "high")
AGE_BANDS = [-1, 17, 39, 64, 74, 84, 200]
AGE_LABELS = ["0-17", "18-39", "40-64", "65-74", "75-84", "85+"]

#: cohort -> definition (documented in docs/outputs.md)
COHORTS = {
    "highest_risk_of_admission": "risk band very high or high (top 5%)",
    "high_cost": "top 15% of SUS+ plus prescribing cost in the last year",
    "frail_and_elderly": "aged 75+ with moderate or severe frailty (eFI 0.25 or more)",
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


def cohort_table(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per pseudonym: place, age band, sex, IMD quintile, risk, conditions, cohorts."""
    s = scored
    cost = s["sus_cost_365d"] + s["prescribing_cost_365d"]
    out = pd.DataFrame(
        {
            "pseudonym": s["pseudonym"],
            "practice_code": s["practice_code"],
            "pcn_code": s["pcn_code"],
            "age_band": pd.cut(s["age_years"], AGE_BANDS, labels=AGE_LABELS).astype(str),
            "sex": s["sex"].map({"1": "male", "2": "female", "9": "indeterminate"}).fillna("not known"),
            "imd_quintile": np.where(s["imd_decile"] == 0, "unknown", ((s["imd_decile"] + 1) // 2).astype(str)),
            "risk_score": s["risk_score"],
            "risk_band": s["risk_band"],
            "long_term_conditions": s["ltc_count"],
            "highest_risk_of_admission": s["risk_band"].isin(AT_RISK_BANDS),
            "high_cost": _top(cost, 0.15),
            "frail_and_elderly": (s["age_years"] >= 75) & (s["efi_score"] >= 0.25),
            "currently_in_hospital": s["in_hospital_on_d"] == 1,
            "most_referrals_to_secondary_care": _top(s["op_first_attendances_365d"], 0.05),
            "most_emergency_activity": _top(s["emergency_admissions_365d"] + s["ae_attendances_365d"], 0.05),
            "most_expensive_prescriptions": _top(s["prescribing_cost_365d"], 0.05),
            "recently_discharged": s["discharged_30d"] == 1,
        }
    )
    return out.sort_values("pseudonym").reset_index(drop=True)


def aggregates(cohort: pd.DataFrame) -> pd.DataFrame:
    """Suppressed counts: people by risk band across each dimension, the number and share at
    risk, and cohort sizes. Long format: dimension, value, measure, published value."""
    rows = []
    bands = ["very high", "high", "moderate", "low"]
    for dim in ("practice_code", "pcn_code", "age_band", "sex", "imd_quintile"):
        counts = pd.crosstab(cohort[dim], cohort["risk_band"]).reindex(columns=bands, fill_value=0)
        safe = protect_table(counts)
        # People at risk come from the published cells (never a fresh count that could be
        # differenced against a suppressed band): suppressed when either band is.
        parts = safe[list(AT_RISK_BANDS)]
        at_risk = parts.apply(lambda r: SUPPRESSED if (r == SUPPRESSED).any() else int(sum(int(x) for x in r)), axis=1)
        pct = percentages(at_risk, safe["Total"])
        for value in safe.index:
            for band in [*bands, "Total"]:
                rows.append((dim, str(value), f"people_{band.replace(' ', '_')}", safe.at[value, band]))
            rows.append((dim, str(value), "people_at_risk", at_risk[value]))
            rows.append((dim, str(value), "percent_at_risk", pct[value]))
    sizes = protect_counts(cohort[list(COHORTS)].sum().astype(int))
    for name, value in sizes.items():
        rows.append(("cohort", str(name), "people", value))
    return pd.DataFrame(rows, columns=["dimension", "value", "measure", "published"])
