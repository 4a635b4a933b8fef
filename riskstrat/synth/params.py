"""Parameters of the synthetic NHS population, each with where its value comes from.

Figures are England-like targets (ONS mid-year estimates, QOF prevalence, HES/SUS activity
per head) rounded; the generator is calibrated to them and ``tests/test_synth_realism.py``
asserts them within stated tolerances. They describe no real person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

# ONS mid-2022 England population by 5-year age band, percent (0-4 … 95-99), rounded.
AGE_BAND_PERCENT = np.array(
    [5.4, 5.9, 6.1, 5.8, 6.0, 6.5, 6.8, 6.6, 6.3, 6.1, 6.7, 6.7, 5.9, 5.0, 4.9, 3.9, 2.6, 1.5, 0.7, 0.2]
)
# Residents are drawn by their age on the extract date; deaths over the period thin the
# oldest bands, so they are drawn more often to leave an England-like pyramid at D (measured).
RESIDENT_AGE_ADJUST = np.array(
    [1.0, 1.0, 1.03, 1.0, 0.9, 0.88, 0.88, 0.88, 0.97, 0.97, 0.97, 1.0, 1.0, 1.0, 1.08, 1.27, 1.5, 2.05, 2.9, 5.0]
)
# Movers into the region are mostly young adults.
MOVER_AGE_ADJUST = np.array(
    [0.8, 0.6, 0.6, 1.0, 1.8, 2.0, 1.7, 1.4, 1.0, 0.8, 0.6, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
)
# Share female by age band (more women at older ages).
FEMALE_SHARE = np.array([0.487] * 4 + [0.505] * 9 + [0.52, 0.52, 0.55, 0.55, 0.60, 0.68, 0.72])

PEOPLE_PER_PRACTICE = 8_000  # registered list size, England average ~ 9,900 in 2024; ~8,000 asked
PRACTICES_PER_PCN = 6
PEOPLE_PER_LSOA = 1_600
N_PROVIDERS = 4

# Population dynamics, per person per year.
BIRTH_RATE = 0.011
IN_MIGRATION_RATE = 0.05
OUT_MIGRATION_RATE = 0.05
TRANSFER_RATE = 0.02  # change of practice within the region
DEATH_RATE = 0.009  # ~0.9% a year, age-graded (Gompertz)
OPT_OUT_TYPE1 = 0.03
OPT_OUT_NDOO = 0.05
OPT_OUT_BOTH = 0.012  # overlap: people holding both objections

# The practices' care registers (contract v1.1; riskstrat/synth/generator/tables.py): of the people
# registered on the extract date whose true risk at the last as-of date is in the top
# CARE_REGISTER_TOP_SHARE of their chunk, CARE_REGISTER_ENTERED are on their practice's register,
# with these shares of statuses, recorded in the CARE_REGISTER_DAYS days before the extract date
# (the 2014 enhanced service case-managed the top 2% of adults). People who changed practice
# keep an entry at their old practice with CARE_REGISTER_STALE_SHARE: it must never mark the new one.
CARE_REGISTER_TOP_SHARE = 0.04
CARE_REGISTER_ENTERED = 0.6
CARE_REGISTER_STATUSES = {"case_managed": 0.7, "declined": 0.2, "not_appropriate": 0.1}
CARE_REGISTER_DAYS = 730
CARE_REGISTER_STALE_SHARE = 0.5

# Emergency admissions: share of people with >= 1 in a year, and spells per person-year.
EMERGENCY_PERSON_SHARE = 0.075
EMERGENCY_SPELLS_PER_PERSON = 0.109
VIA_AE_SHARE = 0.72  # emergency admissions arriving through A&E (admission method 21)
AE_PER_PERSON = 0.46  # A&E attendances per person-year (all types)
OP_PER_PERSON = 1.6  # outpatient appointments per person-year
OP_DNA_SHARE = 0.07
ELECTIVE_PER_PERSON = 0.13
ITEMS_PER_PERSON = 21.0  # prescription items per person-year


@dataclass(frozen=True)
class Condition:
    """A long-term condition: prevalence target, age curve, codes, effect on admission risk."""

    name: str
    cluster: str  # code list path under riskstrat/codelists/data
    target: float  # QOF-like prevalence
    adults_only: bool
    a50: float  # age at which half the lifetime cap is reached
    scale: float  # years
    male_rr: float
    icd10_secondary: tuple[str, ...]
    icd10_emergency: tuple[str, ...]
    log_hazard: float  # effect on the log hazard of emergency admission
    drugs: tuple[tuple[str, float], ...]  # (drug group, probability) of regular treatment
    resolved_cluster: str | None = None
    resolved_share: float = 0.0
    op_tfc: tuple[str, ...] = ()
    survival_adjust: float = 1.0  # lifts the age curve so prevalence among the living meets target


_PCD = "snomed/nhsd-primary-care-domain-refsets-{}_cod.csv"

CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "hypertension",
        _PCD.format("hyp"),
        0.14,
        False,
        64,
        10,
        1.05,
        ("I10X",),
        ("I10X",),
        0.05,
        (("antihypertensive", 0.85), ("antihypertensive", 0.45), ("statin", 0.35)),
        op_tfc=("320",),
        survival_adjust=1.1,
    ),
    Condition(
        "diabetes",
        _PCD.format("dm"),
        0.075,
        False,
        61,
        12,
        1.25,
        ("E119",),
        ("E162", "E101", "L031"),
        0.25,
        (("diabetes_oral", 0.9), ("diabetes_oral", 0.4), ("insulin", 0.15), ("statin", 0.6)),
        op_tfc=("307", "130"),
        survival_adjust=1.14,
    ),
    Condition(
        "asthma",
        _PCD.format("ast"),
        0.065,
        False,
        7,
        3,
        0.9,
        ("J459",),
        ("J459", "J46X"),
        0.2,
        (("inhaled_reliever", 0.9), ("inhaled_preventer", 0.6)),
        _PCD.format("astres"),
        0.15,
        ("340",),
        survival_adjust=1.32,
    ),
    Condition(
        "depression",
        _PCD.format("depr"),
        0.12,
        True,
        34,
        9,
        0.6,
        ("F329",),
        ("F329", "T391"),
        0.15,
        (("antidepressant", 0.6),),
        _PCD.format("depres"),
        0.2,
        ("710",),
        survival_adjust=1.33,
    ),
    Condition(
        "ckd",
        _PCD.format("ckd"),
        0.04,
        True,
        75,
        8,
        0.9,
        ("N183",),
        ("N179", "E875"),
        0.35,
        (("antihypertensive", 0.5),),
        op_tfc=("361",),
        survival_adjust=1.55,
    ),
    Condition(
        "chd",
        _PCD.format("chd"),
        0.03,
        False,
        71,
        9,
        1.7,
        ("I259",),
        ("I200", "I214", "I209"),
        0.25,
        (("statin", 0.85), ("antiplatelet", 0.8), ("beta_blocker", 0.5), ("antianginal", 0.3)),
        op_tfc=("320",),
        survival_adjust=1.22,
    ),
    Condition(
        "cancer",
        "snomed/nhsd-primary-care-domain-refsets-solid-cancer-diagnosis-codes.csv",
        0.035,
        False,
        68,
        10,
        1.0,
        ("C509", "C189", "C349", "C61X", "C679"),
        ("C349", "C189", "D709"),
        0.4,
        (("cancer_hormone", 0.25), ("opioid", 0.15)),
        op_tfc=("370", "800"),
        survival_adjust=1.25,
    ),
    Condition(
        "af",
        _PCD.format("afib"),
        0.02,
        False,
        77,
        7,
        1.3,
        ("I489",),
        ("I489", "I639"),
        0.25,
        (("anticoagulant", 0.75), ("beta_blocker", 0.5)),
        op_tfc=("320",),
        survival_adjust=1.25,
    ),
    Condition(
        "copd",
        _PCD.format("copd"),
        0.02,
        True,
        68,
        8,
        1.1,
        ("J449",),
        ("J441", "J440", "J189"),
        0.6,
        (("inhaled_reliever", 0.95), ("inhaled_preventer", 0.8)),
        op_tfc=("340",),
        survival_adjust=1.73,
    ),
    Condition(
        "stroke",
        _PCD.format("strk"),
        0.018,
        False,
        75,
        9,
        1.2,
        ("I693",),
        ("I639", "I64X", "G459"),
        0.3,
        (("statin", 0.8), ("antiplatelet", 0.7)),
        op_tfc=("400", "430"),
        survival_adjust=1.3,
    ),
    Condition(
        "hf",
        _PCD.format("hf"),
        0.01,
        False,
        79,
        7,
        1.3,
        ("I509",),
        ("I500", "I509", "J81X"),
        0.7,
        (("loop_diuretic", 0.85), ("beta_blocker", 0.7), ("heart_failure_other", 0.5)),
        op_tfc=("320",),
        survival_adjust=1.6,
    ),
    Condition(
        "dementia",
        _PCD.format("dem"),
        0.008,
        False,
        85,
        5,
        0.8,
        ("F03X",),
        ("R296", "S720", "N390", "F051"),
        0.45,
        (("dementia", 0.6),),
        op_tfc=("430",),
        survival_adjust=1.65,
    ),
    Condition(
        "smi",
        _PCD.format("mh"),
        0.01,
        True,
        30,
        8,
        1.0,
        ("F209", "F319"),
        ("F209", "F312", "F29X"),
        0.35,
        (("antipsychotic", 0.8), ("mood_stabiliser", 0.15)),
        op_tfc=("710",),
        survival_adjust=1.6,
    ),
)
CONDITION_INDEX = {c.name: i for i, c in enumerate(CONDITIONS)}
LATENT_LOADING = 0.45  # correlation of conditions through a shared latent health factor
DEPRIVATION_SHIFT = 0.25  # most deprived decile: onset probability shifted by this many SDs

# eFI deficits generated as codes (the non-disease deficits); (deficit_id, a50, cap).
EFI_DEFICITS: tuple[tuple[str, float, float], ...] = (
    ("falls", 82, 0.45),
    ("mobility-problems", 82, 0.45),
    ("hearing-loss", 72, 0.5),
    ("vision-problems", 74, 0.45),
    ("urinary-incontinence", 80, 0.4),
    ("dizziness", 75, 0.3),
    ("care-requirement", 86, 0.45),
    ("housebound", 88, 0.4),
    ("social-vulnerability", 82, 0.3),
    ("activity-limitation", 84, 0.35),
    ("sleep-disturbance", 65, 0.3),
    ("weight-loss", 84, 0.25),
    ("skin-ulcer", 85, 0.25),
    ("arthritis", 66, 0.5),
    ("osteoporosis", 76, 0.35),
    ("fragility-fracture", 84, 0.25),
    ("thyroid-disorders", 60, 0.15),
    ("anaemia", 78, 0.3),
    ("peptic-ulcer", 70, 0.12),
    ("urinary-system-disease", 76, 0.25),
    ("foot-problems", 75, 0.3),
    ("hypotension", 82, 0.2),
    ("dyspnoea", 76, 0.3),
)
EFI_SCALE = 8.0

# Emergency-admission primary diagnoses not tied to a condition, by age group (ICD-10).
EMERGENCY_DIAGNOSES_CHILD = ("J069", "R509", "A099", "J219", "S099", "R568")
EMERGENCY_DIAGNOSES_ADULT = (
    "R074",
    "R104",
    "K358",
    "K802",
    "L039",
    "N390",
    "J22X",
    "J189",
    "R55X",
    "F101",
    "S062",
    "T391",
)
EMERGENCY_DIAGNOSES_OLDER = ("J189", "N390", "R296", "S720", "E86X", "A419", "R55X", "R410", "R074", "L039")
FRAILTY_SECONDARY = ("R268", "Z740", "R296", "W190")

# Elective spells: (primary diagnosis, OPCS-4 procedure, treatment function, weight, min age).
ELECTIVE_PROCEDURES: tuple[tuple[str, str, str, float, int], ...] = (
    ("H251", "C751", "130", 0.25, 50),  # cataract
    ("M169", "W371", "110", 0.08, 50),  # hip osteoarthritis, hip replacement
    ("M179", "W401", "110", 0.09, 50),  # knee osteoarthritis, knee replacement
    ("K409", "T201", "100", 0.12, 18),  # inguinal hernia repair
    ("K573", "H221", "301", 0.26, 30),  # diverticular disease, colonoscopy
    ("R31X", "M459", "101", 0.12, 30),  # haematuria, cystoscopy
    ("N832", "Q074", "502", 0.08, 18),  # ovarian cyst, abdominal hysterectomy (women)
)

# A&E chief complaints (SNOMED CT): chest pain, dyspnoea, abdominal pain, syncope.
AE_COMPLAINTS = ("29857009", "267036007", "21522001", "271594007")

# Treatment function codes for outpatient clinics not tied to a condition.
OP_GENERAL_TFC = ("100", "101", "110", "120", "130", "301", "330", "410", "502")
PAEDIATRIC_TFC = "420"

# Synthetic average cost per prescription item by drug group, pounds (not Drug Tariff prices).
ITEM_COST = {
    "antihypertensive": 1.6,
    "statin": 1.4,
    "antiplatelet": 1.2,
    "anticoagulant": 28.0,
    "beta_blocker": 1.3,
    "loop_diuretic": 1.2,
    "heart_failure_other": 2.5,
    "antianginal": 4.0,
    "diabetes_oral": 9.0,
    "insulin": 38.0,
    "inhaled_reliever": 2.8,
    "inhaled_preventer": 24.0,
    "antidepressant": 2.0,
    "antipsychotic": 3.5,
    "mood_stabiliser": 4.0,
    "dementia": 2.5,
    "opioid": 6.0,
    "nsaid": 2.0,
    "analgesic_simple": 1.5,
    "oral_corticosteroid": 1.8,
    "ppi": 1.3,
    "antibiotic": 2.2,
    "thyroid": 1.9,
    "cancer_hormone": 3.0,
    "other": 3.0,
    "antiepileptic": 6.0,
}


# ---------------------------------------------------------------------------------------------
# The yearly simulation step of the default structure (riskstrat/synth/generator/activity.py):
# every coefficient of the hazards it draws from. Chosen by hand so that the targets above
# are met and risk is graded the way HES/SUS activity is (age, deprivation, multimorbidity,
# frailty, prior use); the intercepts are calibrated each year to EMERGENCY_PERSON_SHARE and
# DEATH_RATE, so these set who is at risk, not how many.


@dataclass(frozen=True)
class AdmissionHazard:
    """Log hazard of a first emergency admission in ``[B_k, B_k + 365)`` from what the record
    shows before ``B_k`` (the true risk is this function; interactions as commented)."""

    infant: float = 1.3  # under 1
    child: float = -0.5  # aged 1 to 15
    child_to: int = 16
    age_slope: float = 0.030  # per year of age over age_knee
    age_knee: int = 40
    old_age_slope: float = 0.005  # and per year over old_age_knee
    old_age_knee: int = 75
    older_male: float = 0.15  # men over older_male_age
    older_male_age: int = 60
    deprivation: float = 0.5  # at the most deprived decile (0 at the least)
    multimorbidity: float = 0.15  # per condition beyond multimorbidity_free (counting up to multimorbidity_cap),
    multimorbidity_free: int = 2
    multimorbidity_cap: int = 4
    multimorbidity_base: float = 0.6  # times (base + multimorbidity_deprivation x deprivation)
    multimorbidity_deprivation: float = 0.8
    frailty: float = 0.04  # per eFI deficit (up to frailty_cap) ...
    frailty_old: float = 0.10  # ... and this much more per deficit at frailty_old_age and over
    frailty_old_age: int = 75
    frailty_cap: int = 12
    care_home: float = 0.35
    prior_admissions: float = 0.45  # x log(1 + admissions in the last year, up to prior_cap) ...
    prior_admissions_young: float = 0.3  # ... and this much more under young_age
    young_age: int = 65
    prior_cap: int = 6
    earlier_admissions: float = 0.15  # x log(1 + admissions in the year before, up to prior_cap)
    ae: float = 0.15  # x log(1 + A&E attendances in the last year, up to ae_cap)
    ae_cap: int = 8
    frequent_ae: float = 0.5  # frequent_ae_from or more A&E attendances
    frequent_ae_from: int = 4
    medicines: float = 0.02  # per distinct medicine in 182 days, up to medicines_cap
    medicines_cap: int = 15
    polypharmacy: float = 0.5  # polypharmacy_from or more distinct medicines
    polypharmacy_from: int = 10
    recent_admission: float = 0.7  # an admission in the last 90 days
    smoker: float = 0.15
    cardio_renal: float = 0.5  # heart failure with CKD
    ceiling_knee: float = 4.0  # the log hazard flattens above the knee ...
    ceiling_slope: float = 0.35  # ... to this slope, so the riskiest stay below certainty


@dataclass(frozen=True)
class Readmissions:
    """Further emergency spells of people admitted in a year: a Poisson count whose mean grows
    with ``1 + chronic x (HF or COPD) + per_deficit x deficits + prior x log(1 + prior)``."""

    chronic: float = 1.0
    per_deficit: float = 0.15
    prior: float = 0.5
    spread: float = 1.4  # mean scaled to meet EMERGENCY_SPELLS_PER_PERSON (x this, measured)
    soon_share: float = 0.4  # share readmitted soon: exponential gap of soon_days mean, else later_days
    soon_days: float = 20
    later_days: float = 120


@dataclass(frozen=True)
class LengthOfStay:
    """Days in hospital of an emergency spell: zero-day with a share falling with age, else
    log-normal around ``median`` rising with age over ``age_knee`` and with frailty."""

    zero_share: float = 0.45
    zero_share_per_year: float = 0.004
    zero_share_min: float = 0.12
    median: float = 2.5
    age_slope: float = 0.012
    age_knee: int = 50
    per_deficit: float = 0.05
    sd: float = 0.85
    max_days: int = 120


@dataclass(frozen=True)
class AeAttendances:
    """A&E attendances that do not end in admission: a rate by age (interpolated), times
    deprivation, conditions and earlier A&E use, scaled to AE_PER_PERSON."""

    ages: tuple[int, ...] = (0, 5, 18, 30, 60, 80, 100)
    rates: tuple[float, ...] = (0.6, 0.35, 0.45, 0.35, 0.3, 0.55, 0.7)
    deprivation_base: float = 0.8
    deprivation: float = 0.45
    per_condition: float = 0.12
    earlier_ae: float = 0.3


@dataclass(frozen=True)
class DeathHazard:
    """Log hazard of death in a year (intercept calibrated to DEATH_RATE): steeply age-graded;
    admitted people die more often, some of them in hospital."""

    age_slope: float = 0.09
    infant: float = 4.6
    per_condition: float = 0.2
    per_deficit: float = 0.1
    heart_failure: float = 0.6
    cancer: float = 0.6
    dementia: float = 0.6
    copd: float = 0.4
    admitted: float = 1.2
    in_hospital_share: float = 0.55  # of deaths after an admission, the share at its discharge
    registration_lag_days: int = 31  # deregistration follows death within this many days


@dataclass(frozen=True)
class Moves:
    """Moving out of the region: OUT_MIGRATION_RATE times an age factor (interpolated)."""

    ages: tuple[int, ...] = (0, 18, 22, 35, 50, 65, 100)
    factors: tuple[float, ...] = (0.8, 0.9, 2.2, 1.6, 0.8, 0.5, 0.4)


ADMISSION = AdmissionHazard()
READMISSIONS = Readmissions()
LENGTH_OF_STAY = LengthOfStay()
AE_ATTENDANCES = AeAttendances()
DEATH = DeathHazard()
MOVES = Moves()


# ---------------------------------------------------------------------------------------------
# People, frailty, care homes and smoking (riskstrat/synth/generator/population.py, conditions.py).


@dataclass(frozen=True)
class PeopleDetail:
    """Who the people are, beyond age: sex not known, ethnicity, registration history."""

    sex_not_known_share: float = 0.0005
    # NHS ethnic category codes and England-like shares, percent (Z not stated, 99 not known)
    ethnic_codes: tuple[str, ...] = (
        "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z", "99",
    )  # fmt: skip
    ethnic_percent: tuple[float, ...] = (
        73.5, 0.9, 6.3, 0.8, 0.5, 0.9, 0.8, 3.1, 2.7, 1.1, 1.6, 1.0, 2.5, 0.5, 0.8, 1.6, 1.0, 0.4,
    )  # fmt: skip
    ethnic_missing_share: float = 0.03  # no ethnic category recorded at all
    registered_years_before_mean: float = 12  # mean years registered before the period (exponential)
    birth_registration_days: int = 43  # babies registered within this many days of birth


@dataclass(frozen=True)
class FrailtyOnset:
    """eFI deficits and care home moves: onset from age curves, correlated with latent health."""

    loading: float = 0.5  # correlation of each deficit with the latent health factor
    deficit_min_age: int = 40
    care_home_dementia: float = 0.3  # people with dementia: the uniform draw scaled by this (more likely)
    care_home_cap: float = 0.3  # lifetime share reaching a care home (age curve below)
    care_home_a50: float = 91
    care_home_scale: float = 4.5
    care_home_min_age: int = 60


@dataclass(frozen=True)
class Smoking:
    """Smoking status of adults, fixed for the period (2 current, 1 ex)."""

    adult_age: int = 16
    current: float = 0.13  # x (current_base + current_deprivation x deprivation)
    current_base: float = 0.55
    current_deprivation: float = 0.9
    ex: float = 0.25  # x clip(ex_base + age / ex_age_scale, 0, ex_cap)
    ex_base: float = 0.4
    ex_age_scale: float = 80
    ex_cap: float = 1.4


PEOPLE = PeopleDetail()
FRAILTY_ONSET = FrailtyOnset()
SMOKING = Smoking()


# ---------------------------------------------------------------------------------------------
# Medicines (riskstrat/synth/generator/medicines.py): courses not started by a coded condition
# (those are Condition.drugs), how repeats are issued, and acute items.


@dataclass(frozen=True)
class AgeCourse:
    """A long-term course some people take from a given age: the share taking it by their
    age at the extract date (the share of the highest ``from_ages`` reached; 0 below all of
    them), started at ``start_age`` or up to ``start_spread_days`` after it."""

    group: str  # drug group of bnf/bnf_presentations.csv
    from_ages: tuple[int, ...]  # highest first
    shares: tuple[float, ...]
    start_age: int
    start_spread_days: int = 0
    without_cvd: bool = False  # only people without CHD, stroke, diabetes or hypertension (primary prevention)


@dataclass(frozen=True)
class DeficitCourse:
    """A course started ``start_days`` after an eFI deficit is coded, for a share of those with it."""

    deficit: str
    group: str
    share: float
    start_days: int = 30


@dataclass(frozen=True)
class Prescribing:
    """How courses become items, and the acute items everyone gets."""

    first_issue_days: int = 28  # people registered before the period: first item within this many days of its start
    condition_start_days: int = 90  # a condition's medicines start within this many days of its onset
    long_interval_share: float = 0.1  # repeats every long_interval days, else every interval days
    long_interval: int = 56
    interval: int = 28
    antiepileptic_share: float = 0.008  # uncoded epilepsy and other reasons
    acute_per_year: float = 5.5  # acute items a year, plus per_condition per condition and older at older_age
    acute_per_condition: float = 1.0
    acute_older: float = 2.0
    acute_older_age: int = 65
    acute_groups: tuple[str, ...] = ("antibiotic", "analgesic_simple", "nsaid", "opioid", "oral_corticosteroid", "ppi")
    acute_shares: tuple[float, ...] = (0.45, 0.15, 0.15, 0.1, 0.1, 0.05)
    respiratory_steroid_share: float = 0.3  # of acute items of people with COPD or asthma: oral corticosteroid courses
    acute_quantities: tuple[float, ...] = (7.0, 14.0, 21.0, 28.0)


AGE_COURSES: tuple[AgeCourse, ...] = (
    AgeCourse("ppi", (60, 40, 18), (0.45, 0.18, 0.05), 35, 9000),
    AgeCourse("other", (70,), (0.35,), 65),
    AgeCourse("analgesic_simple", (65,), (0.2,), 65),
    AgeCourse("other", (40,), (0.08,), 40, 9000),
    AgeCourse("antidepressant", (40,), (0.06,), 40, 9000),
    AgeCourse("statin", (60, 45), (0.4, 0.12), 60, 3000, without_cvd=True),
)
DEFICIT_COURSES: tuple[DeficitCourse, ...] = (
    DeficitCourse("thyroid-disorders", "thyroid", 0.9),
    DeficitCourse("arthritis", "opioid", 0.2),
    DeficitCourse("arthritis", "analgesic_simple", 0.35),
    DeficitCourse("osteoporosis", "other", 0.5),
    DeficitCourse("anaemia", "other", 0.2),
)
PRESCRIBING = Prescribing()


# ---------------------------------------------------------------------------------------------
# Writing the records (riskstrat/synth/generator/tables.py, which both structures share): how
# the simulated people and events become GP, hospital, A&E and outpatient rows. Synthetic
# choices unless a source is named: shaped like HES/SUS and GP records, and calibrated only
# through the activity targets above (EMERGENCY_*, VIA_AE_SHARE, AE_PER_PERSON,
# OP_PER_PERSON, OP_DNA_SHARE, ELECTIVE_PER_PERSON). Codes are NHS Data Model codes.

# Opt-outs: the national data opt-out started on 25 May 2018 (NHS Digital); type 1 objections
# are dated from TYPE1_EARLIEST (synthetic) or registration, whichever is later.
NDOO_LAUNCH = dt.date(2018, 5, 25)
TYPE1_EARLIEST = dt.date(2000, 1, 1)

# Underlying cause of death (ICD-10) by condition held at death, later entries winning;
# DEATH_CAUSE_OTHER (pneumonia) otherwise. Synthetic.
DEATH_CAUSES: tuple[tuple[str, str], ...] = (
    ("stroke", "I64X"),
    ("chd", "I219"),
    ("copd", "J449"),
    ("dementia", "F03X"),
    ("hf", "I500"),
    ("cancer", "C349"),
)
DEATH_CAUSE_OTHER = "J189"


@dataclass(frozen=True)
class GpRecording:
    """GP records beyond the simulated events: LSOA gaps, BMI values, medication costs."""

    missing_lsoa_share: float = 0.01  # registrations with no LSOA recorded (synthetic)
    bmi_adult_age: int = 18  # BMI values recorded from this age
    bmi_per_year: float = 0.35  # BMI values per adult-year (about every three years; synthetic)
    bmi_mean: float = 27.0  # adult mean (Health Survey for England ~27-28, rounded) ...
    bmi_deprivation: float = 2.0  # ... + this x (deprivation - 0.5) ...
    bmi_latent: float = 0.8  # ... + this per SD of the latent health factor (synthetic)
    bmi_sd: float = 4.5  # spread of values around a person's mean
    bmi_range: tuple[float, float] = (14, 60)  # values clipped to this range
    item_quantity: int = 28  # ITEM_COST is per item of an acute course, and per this quantity of a repeat
    item_cost_range: tuple[float, float] = (0.85, 1.15)  # item cost x uniform in this range (synthetic)


@dataclass(frozen=True)
class HospitalRecording:
    """What every hospital table shares (synthetic)."""

    main_provider_share: float = 0.85  # activity at the provider serving the person's practice, else any provider
    child_to: int = 16  # under this age: children's emergency diagnoses, paediatrics (TFC 420)
    older_from: int = 75  # from this age: older people's emergency diagnoses, geriatric medicine (TFC 430)


@dataclass(frozen=True)
class EmergencySpells:
    """The ``sus_apc`` rows of emergency spells: diagnoses, admission method, cost (synthetic)."""

    # A condition the person has gives the primary diagnosis (from its icd10_emergency codes)
    # with probability condition_primary x its log_hazard + condition_primary_base.
    condition_primary: float = 0.5
    condition_primary_base: float = 0.1
    frailty_secondary_from: int = 3  # eFI deficits from which a frailty code is a secondary diagnosis
    # Admission methods of spells not through A&E (21): GP, bed bureau, consultant clinic,
    # other means, A&E of another provider, transfer, other emergency.
    other_methods: tuple[str, ...] = ("22", "23", "24", "28", "2A", "2B", "2D")
    other_method_shares: tuple[float, ...] = (0.55, 0.05, 0.1, 0.15, 0.05, 0.05, 0.05)
    cost_base: float = 1400  # pounds: cost_base + cost_per_day x length of stay x uniform(cost_range)
    cost_per_day: float = 420
    cost_range: tuple[float, float] = (0.7, 1.3)


@dataclass(frozen=True)
class ElectiveSpells:
    """Elective spells: ELECTIVE_PER_PERSON x a factor by age at the extract date
    (interpolated), a procedure from ELECTIVE_PROCEDURES, mostly day cases (synthetic)."""

    ages: tuple[int, ...] = (0, 18, 40, 60, 75, 90)
    factors: tuple[float, ...] = (0.3, 0.4, 0.8, 1.4, 2.0, 1.4)
    fallback: int = 4  # ELECTIVE_PROCEDURES entry (colonoscopy) for people too young, or men drawn for ...
    women_only_tfc: str = "502"  # ... a procedure of this treatment function (gynaecology)
    day_case_share: float = 0.75
    inpatient_days: tuple[int, int] = (1, 6)  # length of stay of the others: uniform, [low, high)
    methods: tuple[str, ...] = ("11", "12", "13")  # waiting list, booked, planned
    method_shares: tuple[float, ...] = (0.6, 0.3, 0.1)
    cost_day_case: float = 950  # pounds, x uniform(cost_range)
    cost_inpatient: float = 4200
    cost_range: tuple[float, float] = (0.7, 1.3)


@dataclass(frozen=True)
class MaternitySpells:
    """Maternity spells (admission method 31, O800, TFC 501) of women by age at the extract date (synthetic)."""

    ages: tuple[int, int] = (18, 46)  # older than the first, younger than the second
    per_year: float = 0.05  # spells per woman-year
    days: tuple[int, int] = (0, 4)  # length of stay: uniform, [low, high)
    cost: float = 2600  # pounds, x uniform(cost_range)
    cost_range: tuple[float, float] = (0.8, 1.2)


@dataclass(frozen=True)
class ConsultantEpisodes:
    """Emergency spells split into consultant episodes: a second from second_from days in
    hospital with probability second_share, a third from third_from days (synthetic)."""

    second_from: int = 3
    second_share: float = 0.28
    third_from: int = 7
    third_share: float = 0.08
    later_tfcs: tuple[str, ...] = ("320", "340", "430", "300", "100")  # treatment function of later episodes (uniform)


@dataclass(frozen=True)
class AeRecording:
    """The ``sus_ecds`` rows: arrival, department type, chief complaint, cost (synthetic)."""

    ambulance_admitted: float = 0.55  # ambulance arrivals among attendances ending in admission
    ambulance_ages: tuple[int, ...] = (0, 40, 75, 100)  # among the others: by age (interpolated)
    ambulance_shares: tuple[float, ...] = (0.05, 0.1, 0.35, 0.5)
    # Department type of attendances not ending in admission (those are all type 01).
    departments: tuple[str, ...] = ("01", "03", "02", "04")
    department_shares: tuple[float, ...] = (0.6, 0.33, 0.04, 0.03)
    complaint_share: float = 0.7  # attendances with a chief complaint from AE_COMPLAINTS
    falls_from: int = 65  # from this age, falls_share of attendances have a falls complaint instead
    falls_share: float = 0.25
    cost_type3: float = 90  # pounds, type 03 (urgent treatment centre) attendances ...
    cost_admitted: float = 420  # ... attendances ending in admission ...
    cost_other: float = 260  # ... and the rest; x uniform(cost_range)
    cost_range: tuple[float, float] = (0.8, 1.2)


@dataclass(frozen=True)
class OutpatientRecording:
    """Outpatient appointments of the default structure, and the ``sus_op`` columns both
    structures draw the same way (cost range, referral source). Synthetic."""

    ages: tuple[int, ...] = (0, 18, 40, 65, 80, 100)  # relative rate by age at the extract date (interpolated) ...
    rates: tuple[float, ...] = (0.6, 0.6, 1.0, 1.8, 2.4, 2.0)
    per_condition: float = 0.25  # ... x (1 + this x conditions), scaled to OP_PER_PERSON ...
    total_factor: float = 1.08  # ... x this (some fall after people leave; measured)
    follow_up_days: tuple[int, int] = (14, 90)  # a follow-up after every spell: uniform, [low, high) days after
    condition_clinic_share: float = 0.5  # for each condition held, the clinic is one of its op_tfc this often
    first_attendance: tuple[str, ...] = ("1", "2", "3", "4")  # first, follow-up, first / follow-up by phone
    first_attendance_shares: tuple[float, ...] = (0.33, 0.52, 0.05, 0.10)
    # Not attended (status 3): dna_factor x OP_DNA_SHARE x (dna_base + dna_deprivation x
    # deprivation) x dna_young_factor for ages strictly within dna_young_ages, else dna_other_factor.
    dna_factor: float = 1.25
    dna_base: float = 0.6
    dna_deprivation: float = 0.8
    dna_young_ages: tuple[int, int] = (16, 35)
    dna_young_factor: float = 1.4
    dna_other_factor: float = 0.85
    # Then cancelled by the patient (2), by the provider (4), late and not seen (7): each up to
    # this much above the DNA probability (cumulative); the rest attended (5) or late but seen (6).
    not_seen: tuple[tuple[str, float], ...] = (("2", 0.04), ("4", 0.09), ("7", 0.095))
    attended: tuple[str, ...] = ("5", "6")
    attended_shares: tuple[float, ...] = (0.9, 0.1)
    tariff: tuple[float, float] = (165, 110)  # pounds, first and follow-up attendances (the alt structure has its own)
    cost_range: tuple[float, float] = (0.8, 1.2)  # tariff x uniform in this range (both structures)
    referral_sources: tuple[str, ...] = ("03", "05", "11")  # of first attendances: GP, consultant, other (both)
    referral_source_shares: tuple[float, ...] = (0.7, 0.2, 0.1)


GP_RECORDING = GpRecording()
HOSPITAL = HospitalRecording()
EMERGENCY_SPELLS = EmergencySpells()
ELECTIVE_SPELLS = ElectiveSpells()
MATERNITY = MaternitySpells()
EPISODES = ConsultantEpisodes()
AE_RECORDING = AeRecording()
OUTPATIENTS = OutpatientRecording()
