"""Risk bands and reasons in plain words, from scores and SHAP contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.features import BUILDERS
from riskstrat.features.builders.gp_events import BMI_BANDS

__all__ = ["assign_bands", "bands_of_ranks", "describe", "top_reasons"]

#: a reason must raise the log-odds by at least this much (smaller pushes are not reasons)
MIN_CONTRIBUTION = 0.05
_DEFINITIONS = {f.name: f.definition for b in BUILDERS for f in b.features}
_DEFAULTS = {f.name: f.default for b in BUILDERS for f in b.features}
_CONDITIONS = {
    "heart_failure": "heart failure",
    "copd": "COPD",
    "ckd": "chronic kidney disease (stage 3-5)",
    "dementia": "dementia",
    "diabetes": "diabetes",
    "chd": "coronary heart disease",
    "af": "atrial fibrillation",
    "stroke": "stroke or TIA",
    "cancer": "cancer",
    "smi": "severe mental illness",
    "asthma": "asthma",
    "depression": "depression",
    "hypertension": "hypertension",
    "epilepsy": "epilepsy",
    "learning_disability": "learning disability",
    "osteoporosis": "osteoporosis",
    "pad": "peripheral arterial disease",
    "rheumatoid_arthritis": "rheumatoid arthritis",
    "palliative_care": "on the palliative care register",
    "housebound": "housebound",
    "care_home": "lives in a care home",
    "in_hospital_on_d": "in hospital now",
    "discharged_30d": "discharged from hospital in the last 30 days",
    "polypharmacy_10plus": "10+ regular medicines",
    "ae_frequent_attender": "frequent A&E attender (4+ a year)",
}


def assign_bands(scores: pd.Series, bands: list[tuple[str, float]], model_score: pd.Series | None = None) -> pd.Series:
    """Risk band of each score: the highest ``top_share`` of people first.

    ``bands`` are ``(name, cumulative top share)`` in order, the last reaching 1.0. Ties in
    the calibrated score (isotonic calibration is a step function, so there are many) are
    broken by ``model_score``, the model's own log-odds before calibration, when given, and
    then by the index (the pseudonym), so bands are reproducible.
    """
    order = pd.DataFrame(
        {
            "s": scores.to_numpy(),
            "m": np.zeros(len(scores)) if model_score is None else model_score.to_numpy(),
            "k": scores.index.to_numpy(),
        }
    ).sort_values(["s", "m", "k"], ascending=[False, False, True])
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order.index.to_numpy()] = np.arange(1, len(scores) + 1)
    return pd.Series(bands_of_ranks(rank, len(scores), bands), index=scores.index)


def bands_of_ranks(rank: np.ndarray, people: int, bands: list[tuple[str, float]]) -> np.ndarray:
    """Risk band of people at 1-based ``rank`` (1 = highest risk) among ``people``: the rule
    of :func:`assign_bands` for ranks taken over a whole population elsewhere (on Spark)."""
    share = np.asarray(rank) / max(people, 1)
    names = np.array([b[0] for b in bands], dtype=object)
    limits = np.array([b[1] for b in bands])
    return names[np.searchsorted(limits, share - 1e-12, side="left")]


def _s(n: int) -> str:
    return "" if n == 1 else "s"


#: window suffix of a feature name -> the same window in words
_WINDOWS = {
    "30d": "the last month",
    "90d": "the last 3 months",
    "180d": "the last 6 months",
    "182d": "the last 6 months",
    "365d": "the last year",
    "730d": "the last 2 years",
    "1095d": "the last 3 years",
    "1826d": "the last 5 years",
}
#: stem of a windowed count (``<stem>_<window>``) -> what is counted, singular and plural
_COUNTS = {
    "emergency_admissions": ("emergency admission", "emergency admissions"),
    "emergency_readmissions": (
        "emergency readmission within 30 days of discharge",
        "emergency readmissions within 30 days of discharge",
    ),
    "elective_admissions": ("planned admission", "planned admissions"),
    "bed_days": ("day in hospital", "days in hospital"),
    "ae_attendances": ("A&E attendance", "A&E attendances"),
    "ae_ambulance": ("ambulance arrival at A&E", "ambulance arrivals at A&E"),
    "ae_admitted": ("A&E attendance ending in admission", "A&E attendances ending in admission"),
    "op_attendances": ("outpatient appointment", "outpatient appointments"),
    "op_first_attendances": ("new outpatient referral", "new outpatient referrals"),
    "op_dna": ("missed outpatient appointment", "missed outpatient appointments"),
    "items": ("prescription item", "prescription items"),
    "falls": ("fall recorded", "falls recorded"),
    "conditions_diagnosed": ("new long-term condition diagnosed", "new long-term conditions diagnosed"),
}
#: features whose value is their whole reason, in words ({n}: the value rounded, {v}: as is, {s}: plural s)
_TEMPLATES: dict[str, str] = {
    "age_years": "age {n}",
    "days_since_emergency_admission": "last emergency admission {n} days ago",
    "days_since_ae_attendance": "last A&E attendance {n} days ago",
    "days_since_op_attendance": "last outpatient appointment {n} days ago",
    "days_since_op_dna": "last missed outpatient appointment {n} days ago",
    "emergency_admissions_per_year_5y": "{v:.1f} emergency admissions a year in the last 5 years",
    "ae_attendances_per_year_5y": "{v:.1f} A&E attendances a year in the last 5 years",
    "efi_score": "frailty (eFI {v:.2f})",
    "efi_deficits": "{n} frailty deficits recorded",
    "ltc_count": "{n} long-term conditions",
    "bmi_latest": "BMI {v:.1f}",
    "charlson_index": "Charlson comorbidity index {n}",
    "hfrs": "Hospital Frailty Risk Score {v:.1f}",
    "new_medicines_90d": "new to {n} medicine{s} in the last 3 months",
    "bnf_sections_365d": "medicines from {n} BNF section{s} in the last year",
    "items_opioids_365d": "opioids prescribed ({n} item{s} in the last year)",
    "prescribing_safety_indicators": "{n} prescribing safety alert{s}",
    "op_specialties_365d": "seen by {n} hospital specialt{ies} in the last year",
}
#: 0/1 features (registers, flags, prescribing-safety indicators): the reason when set
_FLAGS = {
    **_CONDITIONS,
    "nsaid_with_ckd": "NSAID prescribed with chronic kidney disease",
    "nsaid_with_heart_failure": "NSAID prescribed with heart failure",
    "antithrombotic_without_gastroprotection": "anticoagulant or antiplatelet without stomach protection",
    "nsaid_65plus_without_gastroprotection": "NSAID at 65+ without stomach protection",
    "triple_whammy": "NSAID with an ACE inhibitor or ARB and a diuretic (triple whammy)",
    "anticoagulant_with_antiplatelet": "anticoagulant with an antiplatelet",
    "opioid_current": "opioid prescribed in the last 3 months",
    "falls_risk_medicines_65plus": "falls-risk medicines at 65+",
}
_BMI_BANDS = {band: words for band, _, words in BMI_BANDS}
_TRENDS = {
    "hospital_activity_trend_182d": "hospital contacts",
    "prescribing_trend_182d": "prescription items",
}


def _count(feature: str, n: int) -> str | None:
    stem, _, window = feature.rpartition("_")
    if stem in _COUNTS and window in _WINDOWS:
        one, many = _COUNTS[stem]
        return f"{n} {one if n == 1 else many} in {_WINDOWS[window]}"
    return None


def _special(feature: str, v: float, n: int) -> str | None:
    """Reasons whose words depend on the value or on part of the name."""
    if feature == "distinct_medicines_182d":
        return "10+ regular medicines" if n >= 10 else f"{n} different medicines in 6 months"
    if feature == "smoking_status":
        return "current smoker" if n == 2 else "ex-smoker"
    if feature == "imd_decile":
        return f"lives in a deprived area (IMD decile {n})" if n and n <= 3 else f"IMD decile {n}"
    if feature == "bmi_band":
        return _BMI_BANDS.get(n, "BMI not recorded")
    if feature in _TRENDS:
        direction = "rising" if n > 0 else "falling" if n < 0 else "steady"
        return f"{_TRENDS[feature]} {direction} ({n:+d} in the last 6 months against the 6 before)"
    if feature.startswith("years_since_") and feature.endswith("_diagnosis"):
        condition = feature.removeprefix("years_since_").removesuffix("_diagnosis")
        name = _CONDITIONS.get(condition, condition.replace("_", " "))
        whole = int(v)
        return f"{name} diagnosed {whole} year{_s(whole)} ago" if whole >= 1 else f"{name} diagnosed in the last year"
    if feature.startswith("items_") and feature.endswith("_182d"):
        drug = feature.removeprefix("items_").removesuffix("_182d").replace("_", " ")
        return f"{drug} prescribed ({n} items in 6 months)"
    if feature.endswith("_cost_365d"):
        return f"£{v:,.0f} {'prescribing' if 'prescribing' in feature else 'hospital'} cost in the last year"
    return None


def describe(feature: str, value) -> str:
    """A feature's value in plain words, for a clinician reading a practice list.

    Looked up in order: flags (the reason is the name of what is set), fixed templates,
    windowed counts (``<stem>_<window>``, e.g. ``emergency_admissions_1095d``), the few reasons
    whose words depend on the value, and finally the feature's definition with its value.
    """
    v = float(value)
    n = round(v)
    if feature in _FLAGS:
        return _FLAGS[feature]
    if feature in _TEMPLATES:
        return _TEMPLATES[feature].format(n=n, v=v, s=_s(n), ies="y" if n == 1 else "ies")
    words = _count(feature, n) or _special(feature, v, n)
    if words is not None:
        return words
    definition = _DEFINITIONS.get(feature, feature.replace("_", " "))
    return f"{definition}: {n if v == n else round(v, 2)}"


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> list[list[str]]:
    """The ``k`` features that raise each person's risk most (positive SHAP), in plain words.

    Only features the person has count as reasons (a zero count or an absent condition is
    never a reason, whatever its contribution).
    """
    contrib = contributions.drop(columns=["bias"], errors="ignore")
    names = list(contrib.columns)
    values = contrib.to_numpy()
    feats = features[names]
    numeric = np.zeros(values.shape, dtype=float)
    usable = np.zeros(values.shape, dtype=bool)
    for j, name in enumerate(names):
        col = feats[name]
        if col.dtype == object or str(col.dtype).startswith(("str", "string", "category")):
            continue
        v = col.to_numpy(dtype=float)
        numeric[:, j] = v
        if name in ("age_years", "imd_decile", "years_registered"):
            usable[:, j] = True
        elif name.startswith("days_since_") and name in _DEFAULTS:
            usable[:, j] = v < _DEFAULTS[name]  # the declared "none" value is never a reason
        else:
            usable[:, j] = v > 0
    score = np.where(usable & (values >= MIN_CONTRIBUTION), values, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    out = []
    cache: dict[tuple[int, float], str] = {}
    for i in range(values.shape[0]):
        reasons = []
        for j in order[i]:
            if score[i, j] == -np.inf:
                break
            key = (int(j), numeric[i, j])
            if key not in cache:
                cache[key] = describe(names[j], numeric[i, j])
            reasons.append(cache[key])
        out.append(reasons)
    return out
