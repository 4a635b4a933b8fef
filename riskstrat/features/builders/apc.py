"""SUS+ admitted patient care: admissions, bed days, recency, readmissions, diagnoses.

Spells are built from episodes (one row per ``spell_id``): the admission date, the
discharge date (blank when the spell is open on D), the admission method and the summed
cost of the episodes that started before D.
"""

from __future__ import annotations

import ibis

from riskstrat import codelists
from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import (
    DAYS_SINCE_NONE,
    amount,
    codes_table,
    count_if,
    days_before,
    in_last,
    max_if,
    sum_if,
)
from riskstrat.features.registry import Dtype, Feature, ReasonKind, count_reason, register, shared
from riskstrat.schema import ELECTIVE_ADMISSION_METHODS, EMERGENCY_ADMISSION_METHODS

WINDOWS = (30, 90, 180, 365, 730)
COMORBIDITY_LOOKBACK = 730

CHAPTERS = {
    "infections": ("A", "B"),
    "neoplasms": ("C",),
    "endocrine": ("E",),
    "mental": ("F",),
    "nervous": ("G",),
    "circulatory": ("I",),
    "respiratory": ("J",),
    "digestive": ("K",),
    "musculoskeletal": ("M",),
    "genitourinary": ("N",),
    "symptoms": ("R",),
    "injury": ("S", "T"),
}


@shared("spells")
def spells(src: Sources, as_of) -> ibis.Table:
    """One row per spell (the module's docstring), with ``days_ago`` (of the admission),
    ``emergency``, ``elective`` and ``los`` (days, open spells to D); shared by the admitted-care
    builder and the hospital history."""
    d = ibis.date(as_of)
    apc = src.sus_apc
    s = apc.group_by(["pseudonym", "spell_id"]).aggregate(
        admission_date=apc.admission_date.min(),
        discharge_date=apc.discharge_date.max(),
        admission_method=apc.admission_method.min(),
        cost=amount(apc.cost).sum(),
    )
    return s.mutate(
        days_ago=days_before(d, s.admission_date),
        emergency=s.admission_method.isin(EMERGENCY_ADMISSION_METHODS),
        elective=s.admission_method.isin(ELECTIVE_ADMISSION_METHODS),
        los=days_before(s.discharge_date.fill_null(d), s.admission_date),
    )


_features = []
for _w in WINDOWS:
    _features += [
        Feature(
            f"emergency_admissions_{_w}d",
            "emergency spells admitted in the window",
            f"{_w} days before D",
            0,
            reason=count_reason("emergency admission{s}", _w),
        ),
        Feature(
            f"elective_admissions_{_w}d",
            "elective spells (methods 11-13) admitted in the window",
            f"{_w} days before D",
            0,
            reason=count_reason("planned admission{s}", _w),
        ),
        Feature(
            f"bed_days_{_w}d",
            "days in hospital of spells admitted in the window (open spells to D)",
            f"{_w} days before D",
            0,
            reason=count_reason("day{s} in hospital", _w),
        ),
    ]
_features += [
    Feature(
        "days_since_emergency_admission",
        f"days since the last emergency admission ({DAYS_SINCE_NONE}: none)",
        "all history before D",
        DAYS_SINCE_NONE,
        reason="last emergency admission {n} days ago",
    ),
    Feature(
        "emergency_readmissions_365d",
        "emergency spells admitted within 30 days of the discharge of an earlier spell",
        "365 days before D",
        0,
        reason=count_reason("emergency readmission{s} within 30 days of discharge", 365),
    ),
    Feature(
        "in_hospital_on_d",
        "1 when a spell admitted before D is still open on D",
        "on D",
        0,
        reason="in hospital now",
    ),
    Feature(
        "discharged_30d",
        "1 when a spell ended in the 30 days before D",
        "30 days before D",
        0,
        reason="discharged from hospital in the last 30 days",
        kind=ReasonKind.ACTIONABLE,
    ),
]


@register("apc_activity", ("sus_apc",), _features)
def apc_activity(src: Sources, as_of) -> ibis.Table:
    d = ibis.date(as_of)
    s = spells(src, as_of)
    w = ibis.window(group_by="pseudonym", order_by=[s.admission_date, s.spell_id])
    s = s.mutate(prev_discharge=s.discharge_date.lag().over(w))
    gap = days_before(s.admission_date, s.prev_discharge)
    readmit = s.emergency & gap.notnull() & (gap >= 0) & (gap <= 30) & (s.days_ago <= 365)
    aggs = {}
    for win in WINDOWS:
        inside = s.days_ago <= win
        aggs[f"emergency_admissions_{win}d"] = count_if(inside & s.emergency)
        aggs[f"elective_admissions_{win}d"] = count_if(inside & s.elective)
        aggs[f"bed_days_{win}d"] = sum_if(inside, s.los).cast("int64")
    aggs["days_since_emergency_admission"] = s.emergency.ifelse(s.days_ago, DAYS_SINCE_NONE).min().cast("int64")
    aggs["emergency_readmissions_365d"] = count_if(readmit)
    aggs["in_hospital_on_d"] = max_if(s.discharge_date.isnull())
    discharged = s.discharge_date.notnull() & (days_before(d, s.discharge_date.fill_null(d)) <= 30)
    aggs["discharged_30d"] = max_if(discharged)
    return s.group_by("pseudonym").aggregate(**aggs)


def diagnoses(src: Sources, as_of, lookback: int = COMORBIDITY_LOOKBACK) -> ibis.Table:
    """(pseudonym, spell_id, code): every primary and secondary diagnosis of episodes of spells
    admitted within ``lookback`` days before D."""
    apc = src.sus_apc
    apc = apc.filter(in_last(apc.admission_date, as_of, lookback))
    primary = apc.select("pseudonym", "spell_id", code=apc.primary_diagnosis)
    sec = apc.filter(apc.secondary_diagnoses.notnull())
    secondary = sec.select("pseudonym", "spell_id", code=sec.secondary_diagnoses.split(";").unnest())
    return primary.union(secondary, distinct=False)


@register(
    "apc_diagnosis_groups",
    ("sus_apc",),
    [
        Feature(
            f"spells_{name}_730d",
            f"spells with a primary diagnosis in ICD-10 {'/'.join(letters)} (chapter group)",
            "730 days before D",
            0,
        )
        for name, letters in CHAPTERS.items()
    ],
)
def apc_diagnosis_groups(src: Sources, as_of) -> ibis.Table:
    apc = src.sus_apc
    apc = apc.filter(in_last(apc.admission_date, as_of, COMORBIDITY_LOOKBACK))
    first = apc.primary_diagnosis.substr(0, 1)
    rows = apc.mutate(letter=first).select("pseudonym", "spell_id", "letter")
    # each spell once (1 when an episode's primary diagnosis is in the group), then spells counted:
    # the distinct spells of each group without a distinct aggregate per group
    per_spell = rows.group_by(["pseudonym", "spell_id"]).aggregate(
        **{name: max_if(rows.letter.isin(letters)) for name, letters in CHAPTERS.items()}
    )
    return per_spell.group_by("pseudonym").aggregate(
        **{f"spells_{name}_730d": per_spell[name].sum() for name in CHAPTERS}
    )


def _load(path: str) -> list[dict[str, str]]:
    return list(codelists.codelist(path))


CHARLSON = _load("icd10/charlson_icd10_quan2005.csv")
ELIXHAUSER = _load("icd10/elixhauser_icd10_quan2005.csv")
HFRS = _load("icd10/hfrs_icd10_gilbert2018.csv")
CHARLSON_HIERARCHY = {"mld": "msld", "diab": "diabwc", "canc": "metacanc"}  # dropped when the other is present
ELIXHAUSER_HIERARCHY = {"hypunc": "hypc", "diabunc": "diabc", "solidtum": "metacanc"}
#: Hospital Frailty Risk Score risk groups (Gilbert et al., Lancet 2018): below 5 low, 5 to 15
#: intermediate, above 15 high
HFRS_INTERMEDIATE, HFRS_HIGH_ABOVE = 5.0, 15.0


def _hfrs_reason(v: float) -> str:
    group = "low" if v < HFRS_INTERMEDIATE else "intermediate" if v <= HFRS_HIGH_ABOVE else "high"
    return f"Hospital Frailty Risk Score {v:.1f} ({group} risk)"


def _category_weights(rows: list[dict[str, str]], weight: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["category"]] = int(float(r[weight]))
    return out


def _matched_categories(dx: ibis.Table, rows: list[dict[str, str]]) -> ibis.Table:
    """Distinct (pseudonym, category) where a diagnosis starts with a listed prefix."""
    parts = []
    for length in sorted({len(r["code"]) for r in rows}):
        sub = [r for r in rows if len(r["code"]) == length]
        table = codes_table([r["code"] for r in sub], category=[r["category"] for r in sub])
        keyed = dx.mutate(prefix=dx.code.substr(0, length))
        parts.append(keyed.join(table, keyed.prefix == table.code).select("pseudonym", "category"))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out.distinct()


def _index(cats: ibis.Table, weights: dict[str, int], hierarchy: dict[str, str], name: str) -> ibis.Table:
    wide = cats.group_by("pseudonym").aggregate(**{f"_has_{c}": max_if(cats.category == c) for c in weights})
    total = 0
    for c, w in weights.items():
        has = wide[f"_has_{c}"]
        if c in hierarchy:
            has = (wide[f"_has_{hierarchy[c]}"] == 1).ifelse(0, has)
        total = total + has * w
    return wide.select("pseudonym", **{name: total.cast("int64")})


@register(
    "apc_comorbidity",
    ("sus_apc",),
    [
        Feature(
            "charlson_index",
            "Charlson comorbidity index (Quan 2005 ICD-10 codes, Charlson 1987 weights, "
            "hierarchy applied) from all diagnoses",
            f"{COMORBIDITY_LOOKBACK} days before D",
            0,
            reason="Charlson comorbidity index {n}",
        ),
        Feature(
            "elixhauser_vw",
            "Elixhauser comorbidity score (Quan 2005 ICD-10, van Walraven weights, hierarchy applied)",
            f"{COMORBIDITY_LOOKBACK} days before D",
            0,
        ),
        Feature(
            "hfrs",
            "Hospital Frailty Risk Score (Gilbert 2018): sum of points of distinct 3-character codes",
            f"{COMORBIDITY_LOOKBACK} days before D",
            0.0,
            Dtype.FLOAT,
            reason=_hfrs_reason,
        ),
    ],
)
def apc_comorbidity(src: Sources, as_of) -> ibis.Table:
    dx = diagnoses(src, as_of)
    charlson = _index(
        _matched_categories(dx, CHARLSON),
        _category_weights(CHARLSON, "weight_charlson1987"),
        CHARLSON_HIERARCHY,
        "charlson_index",
    )
    elix = _index(
        _matched_categories(dx, ELIXHAUSER),
        _category_weights(ELIXHAUSER, "weight_van_walraven"),
        ELIXHAUSER_HIERARCHY,
        "elixhauser_vw",
    )
    points = codes_table([r["code"] for r in HFRS], points=[float(r["weight"]) for r in HFRS])
    three = dx.mutate(code3=dx.code.substr(0, 3)).select("pseudonym", "code3").distinct()
    hfrs = (
        three.join(points, three.code3 == points.code)
        .group_by("pseudonym")
        .aggregate(hfrs=points.points.sum().round(1).cast("float64"))
    )
    people = dx.select("pseudonym").distinct()
    return (
        people.left_join(charlson, "pseudonym")
        .left_join(elix, "pseudonym")
        .left_join(hfrs, "pseudonym")
        .select("pseudonym", "charlson_index", "elixhauser_vw", "hfrs")
    )
