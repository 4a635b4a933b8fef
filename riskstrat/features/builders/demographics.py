"""Demographics at D: age, sex, deprivation, ethnicity, practice, PCN, time registered."""

from __future__ import annotations

import ibis

from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import days_before, population_at
from riskstrat.features.registry import Dtype, Feature, register

ETHNICITY_GROUPS = {
    "White": ("A", "B", "C"),
    "Mixed": ("D", "E", "F", "G"),
    "Asian": ("H", "J", "K", "L"),
    "Black": ("M", "N", "P"),
    "Other": ("R", "S"),
}


#: IMD deciles read out as "a deprived area" in reasons (1 is the most deprived)
DEPRIVED_DECILES = 3


def _imd_reason(v: float) -> str:
    n = round(v)
    return f"lives in a deprived area (IMD decile {n})" if n and n <= DEPRIVED_DECILES else f"IMD decile {n}"


def age_years(d, month_of_birth) -> ibis.Value:
    """Age in whole years on ``d`` from the month of birth (the one definition of age)."""
    return (days_before(d, month_of_birth) / 365.25).floor().cast("int64")


@register(
    "demographics",
    ("gp_registrations", "ref_practices", "ref_lsoa", "deaths"),
    [
        Feature("age_years", "age in whole years on D (from the month of birth)", "on D", 0, reason="age {n}"),
        Feature(
            "sex",
            "Person Stated Gender Code: 1 male, 2 female, 9 indeterminate, 0 not known",
            "on D",
            "0",
            Dtype.STRING,
        ),
        Feature(
            "imd_decile",
            "IMD decile of the LSOA of residence (1 most deprived; 0 unknown)",
            "on D",
            0,
            reason=_imd_reason,
        ),
        Feature(
            "ethnicity_group",
            "ethnic category grouped: White, Mixed, Asian, Black, Other, Unknown",
            "on D",
            "Unknown",
            Dtype.STRING,
        ),
        Feature("practice_code", "ODS code of the registered practice", "on D", "", Dtype.STRING),
        Feature("pcn_code", "ODS code of the practice's primary care network", "on D", "", Dtype.STRING),
        Feature(
            "years_registered", "years since the current registration started (2 decimals)", "on D", 0.0, Dtype.FLOAT
        ),
    ],
)
def demographics(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    pop = population_at(src, as_of)
    lsoa = src.ref_lsoa.select("lsoa_code", "imd_decile")
    prac = src.ref_practices.select("practice_code", "pcn_code")
    t = pop.left_join(lsoa, "lsoa_code").left_join(prac, "practice_code")
    group = ibis.cases(
        *[(t.ethnic_category.isin(codes), name) for name, codes in ETHNICITY_GROUPS.items()], else_="Unknown"
    )
    return t.select(
        "pseudonym",
        age_years=age_years(d, t.month_of_birth),
        sex=t.sex,
        imd_decile=t.imd_decile.fill_null(0).cast("int64"),
        ethnicity_group=group,
        practice_code=t.practice_code,
        pcn_code=t.pcn_code,
        years_registered=(days_before(d, t.registration_start) / 365.25).round(2).cast("float64"),
    )
