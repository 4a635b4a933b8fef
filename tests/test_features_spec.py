"""Spec tests: each builder on tiny inline tables, expected value per person, on both engines."""

from __future__ import annotations

import datetime as dt

import pytest

from riskstrat.features import BUILDERS, DAYS_SINCE_NONE, feature_table
from riskstrat.features.builders import (
    ae,
    apc,
    costs,
    demographics,
    gp_events,
    history,
    medications,
    medicine_history,
    op,
)
from riskstrat.labels import Outcome, labels

from .featurekit import ENGINES, as_dicts, backend, person, sources

D = dt.date(2025, 1, 1)


def days(n: int) -> dt.date:
    """The day n days before D (n = 1: the day before D)."""
    return D - dt.timedelta(days=n)


def run(engine, tables, builder=None):
    src = sources(engine, tables)
    return as_dicts(backend(engine).to_pyarrow(feature_table(src, D, [builder] if builder else None)))


def episode(p, spell, adm, dis, method="21", ep=1, start=None, end=None, dx="J441", sec=None, cost=1000.0):
    return {
        "pseudonym": p,
        "spell_id": spell,
        "episode_number": ep,
        "provider_code": "R9A",
        "admission_date": adm,
        "discharge_date": dis,
        "episode_start": start or adm,
        "episode_end": end if end is not None else dis,
        "admission_method": method,
        "patient_classification": "1",
        "treatment_function_code": "300",
        "primary_diagnosis": dx,
        "secondary_diagnoses": sec,
        "cost": cost,
    }


SPECS = {}


def spec(builder):
    def wrap(fn):
        SPECS[builder.name] = fn
        return pytest.mark.parametrize("engine", ENGINES)(fn)

    return wrap


@spec(demographics.demographics)
def test_demographics(engine):
    tables = {
        "gp_registrations": [
            person("a", birth=dt.date(1950, 6, 1), start=dt.date(2015, 1, 1), lsoa="E01900001", ethnic="H"),
            person("b", birth=dt.date(2020, 1, 1), start=dt.date(2020, 2, 1), ethnic=None, sex="1"),
            # c left before D; d is registered at a practice outside the region; e died before D
            person("c", end=days(10)),
            person("d", practice="Y99999"),
            person("e"),
            # f moved practice: the later registration gives the practice
            person("f", start=dt.date(2000, 1, 1), end=dt.date(2019, 12, 31)),
            person("f", start=dt.date(2020, 1, 1), practice="Y90002"),
            # g registers on D itself (in the population), h after D (not)
            person("g", start=D),
            person("h", start=D + dt.timedelta(days=1)),
        ],
        "ref_lsoa": [{"lsoa_code": "E01900001", "imd_decile": 3}],
        "deaths": [{"pseudonym": "e", "date_of_death": days(5)}],
        "ref_practices": [
            {"practice_code": p, "practice_name": p, "pcn_code": f"U9000{i}", "pcn_name": "N", "sub_icb_code": "99X"}
            for i, p in enumerate(("Y90001", "Y90002"))
        ],
    }
    got = run(engine, tables, demographics.demographics)
    assert set(got) == {"a", "b", "f", "g"}
    a = got["a"]
    assert (a["age_years"], a["sex"], a["imd_decile"], a["ethnicity_group"]) == (74, "2", 3, "Asian")
    assert (a["practice_code"], a["pcn_code"], a["years_registered"]) == ("Y90001", "U90000", 10.0)
    b = got["b"]
    assert (b["age_years"], b["imd_decile"], b["ethnicity_group"], b["sex"]) == (5, 0, "Unknown", "1")
    assert (got["f"]["practice_code"], got["f"]["pcn_code"]) == ("Y90002", "U90001")
    assert got["g"]["years_registered"] == 0.0


@spec(apc.apc_activity)
def test_apc_activity(engine):
    tables = {
        "gp_registrations": [person(p) for p in "abcde"],
        "sus_apc": [
            episode("a", "S1", days(20), days(15)),  # emergency, 5 bed days, in every window
            episode("a", "S2", days(10), days(8), method="11"),  # elective; a readmission? no: elective
            episode("a", "S3", days(100), days(95)),  # emergency
            episode("a", "S4", days(80), days(78), method="22"),  # emergency within 30 days of S3's discharge
            episode("b", "S5", days(400), days(390), method="2A"),
            episode("c", "S6", days(3), None),  # open: in hospital on D
            # d: discharged on D (blanked by the cut, so still in hospital on D); a second episode
            # starting on D is not seen
            episode("d", "S7", days(5), D, ep=1, end=days(2)),
            episode("d", "S7", days(5), D, ep=2, start=D, end=D),
            episode("e", "S8", D, D + dt.timedelta(days=3)),  # admitted on D: not a feature
        ],
    }
    got = run(engine, tables, apc.apc_activity)
    a = got["a"]
    assert (a["emergency_admissions_30d"], a["emergency_admissions_90d"], a["emergency_admissions_180d"]) == (1, 2, 3)
    assert (a["elective_admissions_30d"], a["bed_days_30d"], a["bed_days_180d"]) == (1, 7, 14)
    assert (a["days_since_emergency_admission"], a["emergency_readmissions_365d"]) == (20, 1)
    assert (a["in_hospital_on_d"], a["discharged_30d"]) == (0, 1)
    b = got["b"]
    assert (b["emergency_admissions_365d"], b["emergency_admissions_730d"], b["bed_days_730d"]) == (0, 1, 10)
    assert b["days_since_emergency_admission"] == 400
    assert (got["c"]["in_hospital_on_d"], got["c"]["bed_days_30d"]) == (1, 3)
    assert (got["d"]["in_hospital_on_d"], got["d"]["discharged_30d"], got["d"]["bed_days_30d"]) == (1, 0, 5)
    assert got["e"]["emergency_admissions_730d"] == 0
    assert got["e"]["days_since_emergency_admission"] == DAYS_SINCE_NONE


@spec(apc.apc_diagnosis_groups)
def test_apc_diagnosis_groups(engine):
    tables = {
        "gp_registrations": [person("a")],
        "sus_apc": [
            episode("a", "S1", days(20), days(15), dx="I500"),
            episode("a", "S1", days(20), days(15), ep=2, start=days(17), dx="J440"),
            episode("a", "S2", days(200), days(195), dx="I214"),
            episode("a", "S3", days(800), days(795), dx="I214"),  # outside 730 days
        ],
    }
    a = run(engine, tables, apc.apc_diagnosis_groups)["a"]
    assert (a["spells_circulatory_730d"], a["spells_respiratory_730d"], a["spells_injury_730d"]) == (2, 1, 0)


@spec(apc.apc_comorbidity)
def test_apc_comorbidity(engine):
    tables = {
        "gp_registrations": [person("a"), person("b")],
        "sus_apc": [
            # a: heart failure (chf 1), diabetes with complications and without (diabwc 2 only),
            # metastatic cancer over cancer (metacanc 6 only); hip fracture and falls for HFRS
            episode("a", "S1", days(20), days(15), dx="I500", sec="E112;E119;C780;C509"),
            episode("a", "S2", days(100), days(95), dx="S720", sec="W190;R296"),
            episode("b", "S3", days(900), days(895), dx="I500"),  # outside the look-back
        ],
    }
    got = run(engine, tables, apc.apc_comorbidity)
    a = got["a"]
    assert a["charlson_index"] == 1 + 2 + 6
    # van Walraven: chf 7, diabc 0 (diabunc dropped), metacanc 12 (solidtum dropped)
    assert a["elixhauser_vw"] == 7 + 0 + 12
    # HFRS points: I50 (0.8? see list), E11 0.9, C78 ?; computed from the shipped table
    points = {r["code"]: float(r["weight"]) for r in apc.HFRS}
    expected = round(sum(points.get(c, 0.0) for c in {"I50", "E11", "C78", "C50", "S72", "W19", "R29"}), 1)
    assert a["hfrs"] == pytest.approx(expected) and expected > 5
    assert (got["b"]["charlson_index"], got["b"]["hfrs"]) == (0, 0.0)


@spec(op.outpatients)
def test_outpatients(engine):
    def appt(p, n, first="2", status="5", tfc="320"):
        return {
            "pseudonym": p,
            "appointment_date": days(n),
            "provider_code": "R9A",
            "treatment_function_code": tfc,
            "first_attendance": first,
            "attendance_status": status,
            "cost": 100.0,
        }

    tables = {
        "gp_registrations": [person("a")],
        "sus_op": [
            appt("a", 10, first="1"),
            appt("a", 20, tfc="340"),
            appt("a", 30, status="3"),
            appt("a", 40, first="3", status="6", tfc="320"),
            appt("a", 400),
            appt("a", 5, status="2", tfc="100"),
        ],
    }
    a = run(engine, tables, op.outpatients)["a"]
    assert (a["op_attendances_365d"], a["op_first_attendances_365d"], a["op_dna_365d"], a["op_specialties_365d"]) == (
        3,
        2,
        1,
        2,
    )


@spec(ae.ae)
def test_ae(engine):
    def att(p, n, amb=False, adm=False):
        return {
            "pseudonym": p,
            "arrival_date": days(n),
            "provider_code": "R9A",
            "department_type": "01",
            "ambulance_arrival": amb,
            "admitted": adm,
            "cost": 250.0,
        }

    tables = {
        "gp_registrations": [person("a"), person("b")],
        "sus_ecds": [
            att("a", 10, amb=True, adm=True),
            att("a", 100),
            att("a", 200, amb=True),
            att("a", 300),
            att("a", 366),
            att("b", 1),
            att("b", 0 - 1),
        ],
    }
    got = run(engine, tables, ae.ae)
    a = got["a"]
    assert (a["ae_attendances_90d"], a["ae_attendances_365d"], a["ae_ambulance_365d"], a["ae_admitted_365d"]) == (
        1,
        4,
        2,
        1,
    )
    assert a["ae_frequent_attender"] == 1
    assert (got["b"]["ae_attendances_365d"], got["b"]["ae_frequent_attender"]) == (1, 0)


@spec(gp_events.gp_conditions)
def test_gp_conditions(engine):
    from riskstrat import codelists

    hf = codelists.snomed_cluster("hf")[0]
    ast, astres = codelists.snomed_cluster("ast")[0], codelists.snomed_cluster("astres")[0]
    dm, dmres = codelists.snomed_cluster("dm")[0], codelists.snomed_cluster("dmres")[0]

    def ev(p, code, n):
        return {"pseudonym": p, "event_date": days(n), "snomed_code": code, "value": None}

    tables = {
        "gp_registrations": [person("a"), person("b")],
        "gp_events": [
            ev("a", hf, 3000),
            ev("a", ast, 2000),
            ev("a", astres, 1000),  # asthma resolved
            ev("a", dm, 500),
            ev("a", dmres, 400),
            ev("a", dm, 300),  # diabetes back after resolution
            {"pseudonym": "b", "event_date": D, "snomed_code": hf, "value": None},  # on D: not seen
        ],
    }
    got = run(engine, tables, gp_events.gp_conditions)
    a = got["a"]
    assert (a["heart_failure"], a["asthma"], a["diabetes"], a["copd"], a["ltc_count"]) == (1, 0, 1, 0, 2)
    assert (got["b"]["heart_failure"], got["b"]["ltc_count"]) == (0, 0)


@spec(gp_events.gp_observations)
def test_gp_observations(engine):
    from riskstrat import codelists

    bmi = codelists.snomed_cluster("bmival")[0]
    cur, ex = codelists.snomed_cluster("lsmok")[0], codelists.snomed_cluster("exsmok")[0]
    care = codelists.snomed_cluster("carehome")[0]
    fall = codelists.snomed_cluster("falls")[0]

    def ev(p, code, n, value=None):
        return {"pseudonym": p, "event_date": days(n), "snomed_code": code, "value": value}

    tables = {
        "gp_registrations": [person(p) for p in "abcdef"],
        "gp_events": [
            ev("a", bmi, 100, 31.24),
            ev("a", bmi, 50, 29.5),
            ev("a", bmi, 10, None),
            ev("a", cur, 900),
            ev("a", ex, 20),
            ev("a", care, 3000),
            ev("a", fall, 30),
            ev("a", fall, 400),
            ev("b", cur, 5),
            # BMI bands at their edges: the band of the value rounded to 1 decimal, as shown
            ev("c", bmi, 10, 24.96),
            ev("d", bmi, 10, 40.0),
            ev("e", bmi, 10, 18.44),
            ev("e", bmi, 10, 18.4),  # same day: the higher value (the existing tie rule)
            ev("f", bmi, 10, 18.46),
        ],
    }
    got = run(engine, tables, gp_events.gp_observations)
    a = got["a"]
    assert (a["bmi_latest"], a["smoking_status"], a["care_home"], a["falls_365d"]) == (29.5, 1, 1, 1)
    assert a["bmi_band"] == 3
    assert (got["b"]["bmi_latest"], got["b"]["smoking_status"], got["b"]["care_home"]) == (0.0, 2, 0)
    assert got["b"]["bmi_band"] == 0  # not recorded
    assert {p: got[p]["bmi_band"] for p in "cdef"} == {"c": 3, "d": 5, "e": 1, "f": 2}


@spec(gp_events.efi)
def test_efi(engine):
    from riskstrat import codelists

    def code(deficit):
        return codelists.codes(gp_events.EFI_FILE, deficit_id=deficit, terminology="snomed")[0]

    def med(p, bnf, n):
        return {"pseudonym": p, "issue_date": days(n), "bnf_code": bnf, "quantity": 28.0, "actual_cost": 1.0}

    tables = {
        "gp_registrations": [person("a"), person("b")],
        "gp_events": [
            {"pseudonym": "a", "event_date": days(n), "snomed_code": code(d), "value": None}
            for n, d in ((100, "falls"), (200, "falls"), (300, "hearing-loss"), (400, "housebound"))
        ],
        "gp_medications": [med("a", f"0{i}01010A0AAAAAA", 30) for i in range(1, 6)] + [med("b", "0206020A0AAAAAA", 30)],
    }
    got = run(engine, tables, gp_events.efi)
    assert (got["a"]["efi_deficits"], got["a"]["efi_score"]) == (3, round(4 / 36, 3))
    assert (got["b"]["efi_deficits"], got["b"]["efi_score"]) == (0, 0.0)


@spec(medications.medications)
def test_medications(engine):
    def med(p, bnf, n, cost=2.5):
        return {"pseudonym": p, "issue_date": days(n), "bnf_code": bnf, "quantity": 28.0, "actual_cost": cost}

    tables = {
        "gp_registrations": [person("a")],
        "gp_medications": [
            med("a", "0208020Z0AAAAAA", 10),
            med("a", "0208020Z0AAABAB", 40),  # apixaban, two strengths
            med("a", "0407020Q0AAAAAA", 20),  # an opioid
            med("a", "0603020T0AAAAAA", 200),  # prednisolone, outside 182 days
            med("a", "0202010B0AAABAB", 100, cost=None),
            med("a", "0601011A0AAAAAA", 5),  # insulin
            med("a", "0212000B0AAABAB", 400),  # outside 365 days
        ],
    }
    a = run(engine, tables, medications.medications)["a"]
    assert (a["distinct_medicines_182d"], a["polypharmacy_10plus"], a["items_365d"]) == (4, 0, 6)
    assert (a["items_anticoagulants_182d"], a["items_opioids_182d"], a["items_oral_corticosteroids_182d"]) == (2, 1, 0)
    assert (a["items_insulin_182d"], a["prescribing_cost_365d"]) == (1, 12.5)


@spec(costs.sus_cost)
def test_sus_cost(engine):
    tables = {
        "gp_registrations": [person("a")],
        "sus_apc": [episode("a", "S1", days(20), days(15), cost=1000.5), episode("a", "S2", days(400), days(390))],
        "sus_op": [
            {
                "pseudonym": "a",
                "appointment_date": days(3),
                "provider_code": "R9A",
                "treatment_function_code": "320",
                "first_attendance": "1",
                "attendance_status": "5",
                "cost": 160.25,
            }
        ],
        "sus_ecds": [
            {
                "pseudonym": "a",
                "arrival_date": days(20),
                "provider_code": "R9A",
                "department_type": "01",
                "ambulance_arrival": True,
                "admitted": True,
                "cost": None,
            }
        ],
    }
    assert run(engine, tables, costs.sus_cost)["a"]["sus_cost_365d"] == 1160.75


def appointment(p, n, status="5", first="2", tfc="320"):
    """An outpatient appointment n days before D (status 5/6 attended, 3 did not attend)."""
    return {
        "pseudonym": p,
        "appointment_date": days(n),
        "provider_code": "R9A",
        "treatment_function_code": tfc,
        "first_attendance": first,
        "attendance_status": status,
        "cost": 100.0,
    }


def attendance(p, n):
    """An A&E attendance n days before D."""
    return {
        "pseudonym": p,
        "arrival_date": days(n),
        "provider_code": "R9A",
        "department_type": "01",
        "ambulance_arrival": False,
        "admitted": False,
        "cost": 250.0,
    }


def prescription(p, bnf, n):
    return {"pseudonym": p, "issue_date": days(n), "bnf_code": bnf, "quantity": 28.0, "actual_cost": 1.0}


@spec(history.hospital_history)
def test_hospital_history(engine):
    tables = {
        "gp_registrations": [
            person("a"),
            person("b", start=days(200)),  # a new registrant: the rate's denominator is floored at 1 year
            # c: the earliest registration start gives the years observed (1461 days = 4 years)
            person("c", start=days(1461), end=days(800), practice="Y99999"),
            person("c", start=days(700)),
            person("d"),
        ],
        "sus_apc": [
            episode("a", "S1", days(1095), days(1090)),  # exactly 1095 days before D: in the 3 years
            episode("a", "S1", days(1095), days(1090), ep=2, start=days(1093)),  # one spell, two episodes
            episode("a", "S2", days(1096), days(1094), method="2A"),  # 1096: out of the 3 years, in the 5
            episode("a", "S3", days(1826), days(1820)),  # exactly 1826: in the 5 years
            episode("a", "S4", days(1827), days(1820)),  # out
            episode("a", "S5", days(10), days(8), method="11"),  # elective: not counted
            episode("a", "S6", D, None),  # admitted on D: not seen
            episode("d", "S7", days(364), days(360)),  # trend: in days 183-364
            episode("d", "S8", days(365), days(360)),  # in neither half of the trend
        ],
        "sus_ecds": [
            attendance("a", 1),
            attendance("a", 1095),
            attendance("a", 1096),
            {**attendance("a", 1), "arrival_date": D},  # on D: not seen
            attendance("b", 100),
            attendance("c", 30),
            attendance("c", 1500),  # before c's first registration: counted, the denominator does not stretch
            attendance("d", 182),  # trend: in days 1-182
        ],
        "sus_op": [
            appointment("a", 100),
            appointment("a", 1095, status="6"),
            appointment("a", 1096),
            appointment("a", 50, status="3"),  # did not attend
            appointment("a", 1827, status="3"),  # out of the 5 years
            appointment("a", 20, status="2"),  # cancelled by the patient: neither attended nor missed
            {**appointment("a", 1), "appointment_date": D},  # on D: not seen
            appointment("d", 183),  # trend: in days 183-364
            appointment("d", 100, status="3"),  # a missed appointment is not activity
        ],
    }
    got = run(engine, tables, history.hospital_history)
    a = got["a"]
    assert (a["emergency_admissions_1095d"], a["emergency_admissions_1826d"]) == (1, 3)
    assert (a["ae_attendances_1095d"], a["ae_attendances_1826d"], a["days_since_ae_attendance"]) == (2, 3, 1)
    assert (a["op_attendances_1095d"], a["op_attendances_1826d"], a["days_since_op_attendance"]) == (2, 3, 100)
    assert (a["op_dna_1095d"], a["op_dna_1826d"], a["days_since_op_dna"]) == (1, 1, 50)
    assert (a["emergency_admissions_per_year_5y"], a["ae_attendances_per_year_5y"]) == (0.6, 0.6)
    assert a["hospital_activity_trend_182d"] == 2  # A&E on day 1 and the appointment on day 100; none before
    b = got["b"]
    assert (b["ae_attendances_per_year_5y"], b["emergency_admissions_per_year_5y"]) == (1.0, 0.0)
    assert (b["days_since_op_attendance"], b["days_since_op_dna"]) == (DAYS_SINCE_NONE, DAYS_SINCE_NONE)
    assert got["c"]["ae_attendances_per_year_5y"] == 0.5  # 2 attendances / 4 years
    d = got["d"]
    assert d["hospital_activity_trend_182d"] == 1 - 2
    assert (d["op_dna_1095d"], d["days_since_op_dna"], d["emergency_admissions_1095d"]) == (1, 100, 2)


@spec(history.condition_history)
def test_condition_history(engine):
    from riskstrat import codelists

    hf, ckd = codelists.snomed_cluster("hf")[0], codelists.snomed_cluster("ckd")[0]
    ast, astres = codelists.snomed_cluster("ast")[0], codelists.snomed_cluster("astres")[0]
    dm = codelists.snomed_cluster("dm")[0]

    def ev(p, code, n):
        return {"pseudonym": p, "event_date": days(n), "snomed_code": code, "value": None}

    tables = {
        "gp_registrations": [person("a"), person("b")],
        "gp_events": [
            ev("a", hf, 100),
            ev("a", hf, 3000),  # the first diagnosis code, whichever row comes first
            ev("a", ast, 2000),
            ev("a", astres, 1000),  # resolved later: the first diagnosis still counts
            ev("a", dm, 365),  # first diagnosed exactly 365 days before D: new in the last year
            ev("a", dm, 10),
            ev("a", ckd, 366),  # 366 days: not new
            {"pseudonym": "b", "event_date": D, "snomed_code": hf, "value": None},  # on D: not seen
            ev("b", dm, 1),
        ],
    }
    got = run(engine, tables, history.condition_history)
    a = got["a"]
    assert (a["years_since_heart_failure_diagnosis"], a["years_since_asthma_diagnosis"]) == (8.21, 5.48)
    assert (a["years_since_diabetes_diagnosis"], a["years_since_ckd_diagnosis"]) == (1.0, 1.0)
    assert (a["years_since_copd_diagnosis"], a["conditions_diagnosed_365d"]) == (history.NEVER_DIAGNOSED, 1)
    b = got["b"]
    assert (b["years_since_heart_failure_diagnosis"], b["years_since_diabetes_diagnosis"]) == (-1.0, 0.0)
    assert b["conditions_diagnosed_365d"] == 1


@spec(medicine_history.medicine_history)
def test_medicine_history(engine):
    from riskstrat import codelists

    ckd, hf = codelists.snomed_cluster("ckd")[0], codelists.snomed_cluster("hf")[0]
    ibuprofen, lisinopril, bendroflumethiazide = "1001010J0AAADAD", "0205051L0AAACAC", "0202010B0AAABAB"
    codeine, warfarin, aspirin, omeprazole = "0407020C0AAADAD", "0208020V0AAAAAA", "0209000A0AAABAB", "0103050P0AAAAAA"
    atorvastatin, amlodipine, sertraline = "0212000B0AAABAB", "0206020A0AAAAAA", "0403030Q0AAAAAA"
    metformin, zopiclone, amoxicillin = "0601022B0AAABAB", "0401010Z0AAAAAA", "0501013B0AAABAB"
    tables = {
        "gp_registrations": [
            person("a"),
            person("b", birth=dt.date(1985, 1, 1)),
            person("c", birth=dt.date(1944, 6, 1)),
        ],
        "gp_events": [
            {"pseudonym": "a", "event_date": days(1000), "snomed_code": ckd, "value": None},
            {"pseudonym": "b", "event_date": days(1000), "snomed_code": hf, "value": None},
        ],
        "gp_medications": [
            # a, 75: an NSAID issued exactly 90 days ago is current; with CKD, no gastro-protection, an ACE
            # inhibitor and a diuretic; codeine 91 days ago is not current
            prescription("a", ibuprofen, 90),
            prescription("a", lisinopril, 30),
            prescription("a", bendroflumethiazide, 60),
            prescription("a", codeine, 91),
            prescription("a", codeine, 300),
            prescription("a", codeine, 366),  # outside the opioid items' 365 days
            # b, 40: warfarin with aspirin under a PPI; an NSAID with heart failure; codeine current
            prescription("b", warfarin, 10),
            prescription("b", aspirin, 20),
            prescription("b", omeprazole, 89),
            prescription("b", ibuprofen, 5),
            prescription("b", codeine, 10),
            # c, 80: new medicines, sections, the trend, a falls-risk medicine
            prescription("c", atorvastatin, 455),  # issued 455 days ago: not new
            prescription("c", atorvastatin, 10),
            prescription("c", amlodipine, 456),  # 456 days ago is before the look-back: new
            prescription("c", amlodipine, 10),
            prescription("c", sertraline, 90),  # new
            prescription("c", zopiclone, 30),  # new; a hypnotic at 65+
            prescription("c", metformin, 91),  # not current, so not new
            prescription("c", metformin, 182),
            prescription("c", metformin, 183),
            prescription("c", metformin, 364),
            prescription("c", metformin, 365),
            prescription("c", amoxicillin, 400),  # not in the 365 days of the sections
            {**prescription("c", ibuprofen, 1), "issue_date": D},  # on D: not seen
        ],
    }
    got = run(engine, tables, medicine_history.medicine_history)
    a, b, c = got["a"], got["b"], got["c"]
    assert (a["nsaid_with_ckd"], a["nsaid_65plus_without_gastroprotection"], a["triple_whammy"]) == (1, 1, 1)
    assert (a["nsaid_with_heart_failure"], a["antithrombotic_without_gastroprotection"]) == (0, 0)
    assert (a["opioid_current"], a["items_opioids_365d"], a["falls_risk_medicines_65plus"]) == (0, 2, 0)
    assert a["prescribing_safety_indicators"] == 3
    assert (b["anticoagulant_with_antiplatelet"], b["antithrombotic_without_gastroprotection"]) == (1, 0)
    assert (b["nsaid_with_heart_failure"], b["nsaid_with_ckd"], b["nsaid_65plus_without_gastroprotection"]) == (1, 0, 0)
    assert (b["opioid_current"], b["falls_risk_medicines_65plus"], b["prescribing_safety_indicators"]) == (1, 0, 2)
    assert (c["new_medicines_90d"], c["bnf_sections_365d"]) == (3, 5)
    assert c["prescribing_trend_182d"] == (6 - 2)  # days 1-182: 6 items; days 183-364: 2
    assert (c["falls_risk_medicines_65plus"], c["nsaid_65plus_without_gastroprotection"]) == (1, 0)
    assert c["prescribing_safety_indicators"] == 1


def test_every_registered_builder_has_a_spec_test():
    assert {b.name for b in BUILDERS} == set(SPECS), "each builder needs a spec test here"


@pytest.mark.parametrize("engine", ENGINES)
def test_people_with_no_records_get_the_declared_defaults(engine):
    got = run(engine, {"gp_registrations": [person("z")]})
    z = got["z"]
    for b in BUILDERS:
        for f in b.features:
            if b.name != "demographics":
                assert z[f.name] == f.default, f.name


@pytest.mark.parametrize("engine", ENGINES)
def test_labels(engine):
    tables = {
        "gp_registrations": [person(p) for p in "abcdef"],
        "sus_apc": [
            episode("a", "S1", D, D),  # admitted on D: in the window
            episode("b", "S2", days(1), D),  # the day before: not
            episode("c", "S3", D + dt.timedelta(days=364), None),  # last day of the window
            episode("d", "S4", D + dt.timedelta(days=365), None),  # first day after
            episode("e", "S5", D + dt.timedelta(days=10), None, method="11"),  # elective
        ],
        "deaths": [{"pseudonym": "f", "date_of_death": D + dt.timedelta(days=100)}],
    }
    src = sources(engine, tables)
    adm = as_dicts(backend(engine).to_pyarrow(labels(src, D)))
    assert {p: r["label"] for p, r in adm.items()} == {"a": 1, "b": 0, "c": 1, "d": 0, "e": 0, "f": 0}
    assert adm["f"]["died_in_window"] == 1
    both = as_dicts(backend(engine).to_pyarrow(labels(src, D, Outcome.EMERGENCY_ADMISSION_OR_DEATH)))
    assert {p: r["label"] for p, r in both.items()} == {"a": 1, "b": 0, "c": 1, "d": 0, "e": 0, "f": 1}
    short = as_dicts(backend(engine).to_pyarrow(labels(src, D, horizon_days=30)))
    assert short["c"]["label"] == 0 and short["a"]["label"] == 1
