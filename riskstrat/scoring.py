"""Risk bands and reasons in plain words, from scores and SHAP contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.features import BUILDERS

__all__ = ["assign_bands", "describe", "top_reasons"]

#: a reason must raise the log-odds by at least this much (smaller pushes are not reasons)
MIN_CONTRIBUTION = 0.05
_DEFINITIONS = {f.name: f.definition for b in BUILDERS for f in b.features}
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
    share = rank / max(len(scores), 1)
    names = np.array([b[0] for b in bands], dtype=object)
    limits = np.array([b[1] for b in bands])
    return pd.Series(names[np.searchsorted(limits, share - 1e-12, side="left")], index=scores.index)


def describe(feature: str, value) -> str:
    """A feature's value in plain words, for a clinician reading a practice list."""
    v = float(value)
    n = round(v)
    if feature in _CONDITIONS:
        return _CONDITIONS[feature]
    if feature.startswith("emergency_admissions_"):
        window = {
            "30d": "the last month",
            "90d": "the last 3 months",
            "180d": "the last 6 months",
            "365d": "the last year",
            "730d": "the last 2 years",
        }[feature.rsplit("_", 1)[1]]
        return f"{n} emergency admission{'s' if n != 1 else ''} in {window}"
    if feature == "days_since_emergency_admission":
        return f"last emergency admission {n} days ago"
    if feature == "items_365d":
        return f"{n} prescription items in the last year"
    if feature.startswith("bed_days_"):
        return f"{n} days in hospital in the last {feature.rsplit('_', 1)[1].removesuffix('d')} days"
    if feature == "emergency_readmissions_365d":
        return f"{n} emergency readmission{'s' if n != 1 else ''} within 30 days of discharge"
    if feature == "age_years":
        return f"age {n}"
    if feature == "distinct_medicines_182d":
        return "10+ regular medicines" if n >= 10 else f"{n} different medicines in 6 months"
    if feature in ("efi_score",):
        return f"frailty (eFI {v:.2f})"
    if feature == "efi_deficits":
        return f"{n} frailty deficits recorded"
    if feature == "ltc_count":
        return f"{n} long-term conditions"
    if feature.startswith("ae_attendances_"):
        return (
            f"{n} A&E attendance{'s' if n != 1 else ''} in the last {feature.rsplit('_', 1)[1].removesuffix('d')} days"
        )
    if feature.startswith("items_") and feature.endswith("_182d"):
        drug = feature.removeprefix("items_").removesuffix("_182d").replace("_", " ")
        return f"{drug} prescribed ({n} items in 6 months)"
    if feature == "bmi_latest":
        return f"BMI {v:.1f}"
    if feature == "op_attendances_365d":
        return f"{n} outpatient appointment{'s' if n != 1 else ''} in the last year"
    if feature == "op_first_attendances_365d":
        return f"{n} new outpatient referral{'s' if n != 1 else ''} in the last year"
    if feature == "op_specialties_365d":
        return f"seen by {n} hospital specialt{'ies' if n != 1 else 'y'} in the last year"
    if feature == "smoking_status":
        return "current smoker" if n == 2 else "ex-smoker"
    if feature == "falls_365d":
        return f"{n} fall{'s' if n != 1 else ''} recorded in the last year"
    if feature == "charlson_index":
        return f"Charlson comorbidity index {n}"
    if feature == "hfrs":
        return f"Hospital Frailty Risk Score {v:.1f}"
    if feature == "imd_decile":
        return f"lives in a deprived area (IMD decile {n})" if n and n <= 3 else f"IMD decile {n}"
    if feature.endswith("_cost_365d"):
        return f"£{v:,.0f} {'prescribing' if 'prescribing' in feature else 'hospital'} cost in the last year"
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
        elif name == "days_since_emergency_admission":
            usable[:, j] = v < 9999
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
