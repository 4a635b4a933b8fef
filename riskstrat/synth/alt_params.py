"""Parameters of the alternative synthetic structure (``riskstrat synth --structure alt``).

Chosen from clinical plausibility, independently of the default structure's hazard
(``riskstrat/synth/params.py`` keeps only the plumbing both share: age pyramid, migration,
code pools, prevalence targets). Effects are on the log hazard of an emergency admission
unless said otherwise; they describe no real person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- targets
EMERGENCY_SHARE = 0.08  # share of the population at D with >= 1 emergency admission in [D, D + 365)
AE_PER_PERSON = 0.44  # A&E attendances per person-year (including those ending in admission)
SPELLS_PER_PERSON = 0.118  # emergency spells per person-year expected (only to split A&E attendances)
DEATHS_BEFORE_ADMISSION = 0.005  # yearly deaths not preceded by an emergency admission that year
MOVE_RATE = 0.05  # moves out of the region per person-year (age-shaped below)

# ----------------------------------------------------------------------------- latent traits
# Urgent-care propensity U ~ N(0, 1): never written anywhere; drives A&E use, emergency
# admissions, early readmission and missed outpatient appointments.
PROPENSITY_ADMISSION = 0.42
PROPENSITY_AE = 0.7
PROPENSITY_DNA = 0.55
# Frailty: F(t) = kappa * S * exp((age(t) - 70) / S) + sum of jumps after emergency
# admissions; kappa is person-specific (log-normal, higher with deprivation), so frailty
# drifts up with age at a person's own rate.
FRAILTY_SCALE_YEARS = 11.0
FRAILTY_AT_70 = 0.45  # median frailty at 70 (a unitless index; ~1.2 at 81, ~2.3 at 88)
FRAILTY_LOG_SD = 0.6
FRAILTY_DEPRIVATION = 0.45  # log kappa, most vs least deprived
JUMP_SHAPE, JUMP_SCALE = 2.0, 0.14  # jump after each emergency admission (gamma), x (1 + 0.3 F)
JUMP_PERSISTENT = 0.5  # share of a jump that stays; the rest decays with JUMP_DECAY_DAYS
JUMP_DECAY_DAYS = 365.0

# ----------------------------------------------------------------------------- admission hazard
# Age: piecewise-linear log hazard between knots (infancy, a childhood trough, a young-adult
# shoulder, a late rise); most of the old-age gradient comes through frailty.
AGE_KNOTS = np.array([0, 1, 4, 10, 16, 22, 35, 50, 65, 80, 100], dtype=float)
AGE_LOG_HAZARD = np.array([1.4, 0.6, 0.0, -0.4, -0.1, 0.15, 0.0, 0.15, 0.45, 0.75, 0.9])
MALE_OLDER = 0.2  # men, ramping in from 50 to 70
FEMALE_CHILDBEARING = 0.18  # women 16-44
DEPRIVATION = 0.55  # x dep^1.5 (dep = 0 least, 1 most deprived): concentrated in deprived deciles
FRAILTY = 1.15  # x log(1 + F)
LTC_CEILING = 1.7  # conditions combine sub-additively: C * (1 - exp(-sum(beta) / C))
RECENT_DISCHARGE = 1.0  # x exp(-days since last emergency discharge / RECENT_DECAY_DAYS)
RECENT_DECAY_DAYS = 50.0
SMOKER_CURRENT, SMOKER_EX = 0.22, 0.08
COPD_SMOKER = 0.2
DIABETES_INSULIN = 0.3  # hypoglycaemia
ASTHMA_CHILD = 0.2
UNDERWEIGHT = 0.35  # per 4 BMI units below 20 (up to 2)
OBESE = 0.02  # per BMI unit above 32 (up to 15)
# Medicines and their interactions with conditions
NSAID_OLDER = 0.1
NSAID_CKD = 0.55
NSAID_HF = 0.6
TRIPLE_WHAMMY = 0.5  # ACE inhibitor or ARB + diuretic + NSAID
ANTICOAGULANT_85 = 0.4
NO_GASTROPROTECTION = 0.3  # antiplatelet or anticoagulant without a PPI, aged 65+ (x 0.4 younger)
OPIOID_DOSE = 0.3  # x log(1 + MME / 30)
OPIOID_DURATION = 0.3  # x (1 - exp(-months / 6))
FALLS_RISK_MEDICINE = 0.22  # per falls-risk medicine (up to 3), x ramp from 60 to 90

# Death (log hazard, intercept calibrated each year): Gompertz in age plus frailty and conditions.
DEATH_AGE = 0.085
DEATH_INFANT = 3.2
DEATH_FRAILTY = 0.9
DEATH_PROPENSITY = 0.1
DEATH_LTC = {"cancer": 1.2, "hf": 0.8, "dementia": 0.8, "copd": 0.5, "ckd": 0.3}
DEATH_AFTER_ADMISSION = 1.0  # hazard ratio for the rest of the year after an emergency admission


@dataclass(frozen=True)
class AltCondition:
    """Lifetime model of one long-term condition (same order as ``params.CONDITIONS``).

    The lifetime probability is scaled from the prevalence target and shifted by frailty,
    deprivation, sex, smoking and BMI; the onset age is log-normal around ``median_age``.
    """

    name: str
    median_age: float
    sigma: float  # of log onset age
    admission: float  # effect on the log admission hazard while active
    frailty: float  # log relative lifetime risk per SD of log kappa
    deprivation: float  # log relative risk, most vs least deprived
    male: float  # log relative risk, men vs women
    smoking: float = 0.0  # log relative risk, ever smoked
    bmi: float = 0.0  # log relative risk per 5 BMI units above 27
    min_age: float = 0.5


CONDITIONS: tuple[AltCondition, ...] = (
    AltCondition("hypertension", 66, 0.22, 0.03, 0.2, 0.25, 0.1, 0.05, 0.35, 18),
    AltCondition("diabetes", 63, 0.25, 0.22, 0.25, 0.5, 0.25, 0.1, 0.6, 5),
    AltCondition("asthma", 9, 0.9, 0.25, 0.1, 0.25, -0.1, 0.2, 0.1, 1),
    AltCondition("depression", 36, 0.35, 0.15, 0.15, 0.45, -0.55, 0.2, 0.1, 18),
    AltCondition("ckd", 76, 0.13, 0.3, 0.45, 0.3, -0.1, 0.1, 0.15, 18),
    AltCondition("chd", 72, 0.16, 0.28, 0.35, 0.45, 0.55, 0.5, 0.2, 30),
    AltCondition("cancer", 69, 0.2, 0.5, 0.2, 0.2, 0.05, 0.45, 0.05, 1),
    AltCondition("af", 77, 0.12, 0.2, 0.35, 0.05, 0.3, 0.05, 0.2, 30),
    AltCondition("copd", 70, 0.15, 0.55, 0.4, 0.7, 0.1, 1.6, 0.0, 35),
    AltCondition("stroke", 75, 0.15, 0.3, 0.4, 0.35, 0.2, 0.4, 0.1, 30),
    AltCondition("hf", 80, 0.11, 0.65, 0.55, 0.35, 0.3, 0.3, 0.25, 30),
    AltCondition("dementia", 84, 0.07, 0.4, 0.6, 0.15, -0.15, 0.1, -0.1, 55),
    AltCondition("smi", 29, 0.3, 0.45, 0.2, 0.6, 0.05, 0.4, 0.0, 16),
)
CONDITION_INDEX = {c.name: i for i, c in enumerate(CONDITIONS)}
# Share of the living above the prevalence target that the lifetime probability aims for
# (deaths remove the sick; measured).
SURVIVAL_LIFT = {
    "hypertension": 1.15,
    "depression": 1.2,
    "ckd": 1.05,
    "copd": 1.0,
    "hf": 1.3,
    "dementia": 1.6,
    "cancer": 1.0,
    "af": 1.05,
    "stroke": 1.15,
    "smi": 0.95,
}
CODING_LAG_DAYS = 40.0  # mean delay from onset to the diagnosis code
RESOLVED_SHARE = {"asthma": 0.12, "depression": 0.25}

# eFI deficits (same order as params.EFI_DEFICITS): frailty level at which the deficit
# appears (log-normal noise per person), and the share of acquired deficits ever coded.
DEFICIT_THRESHOLD = {
    "falls": 1.1,
    "mobility-problems": 1.2,
    "hearing-loss": 0.7,
    "vision-problems": 0.8,
    "urinary-incontinence": 1.2,
    "dizziness": 1.0,
    "care-requirement": 1.8,
    "housebound": 2.4,
    "social-vulnerability": 1.5,
    "activity-limitation": 1.5,
    "sleep-disturbance": 0.8,
    "weight-loss": 1.8,
    "skin-ulcer": 2.2,
    "arthritis": 0.55,
    "osteoporosis": 1.0,
    "fragility-fracture": 1.9,
    "thyroid-disorders": 1.6,
    "anaemia": 1.2,
    "peptic-ulcer": 2.0,
    "urinary-system-disease": 1.3,
    "foot-problems": 1.0,
    "hypotension": 1.7,
    "dyspnoea": 1.1,
}
DEFICIT_THRESHOLD_SD = 0.75
DEFICIT_LAG_DAYS = 150.0  # mean delay from acquiring a deficit to its code
CAREHOME_THRESHOLD = 2.8
FALLS_PER_FRAILTY = 0.22  # falls a year per unit of frailty, 60+, x (1 + 0.4 per falls-risk medicine)
FALLS_CODED = 0.55

# Outpatients: appointments per person-year by age (before condition and trait multipliers).
OP_AGE = ((0, 18, 40, 65, 80, 100), (0.5, 0.45, 0.8, 1.5, 2.1, 1.8))
OP_TARGET = 1.6
OP_DNA = 0.07
