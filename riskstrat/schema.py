"""The input data contract, version 1, as code.

One :class:`Table` declaration per table of ``shared/spec/data-contract.md``. Each
declaration (typed columns, whether a value is required, the rule a value must meet, a
description) drives reading and validation (:mod:`riskstrat.ingest`), the generated
contract documentation (:func:`contract_markdown`) and the synthetic generator
(:mod:`riskstrat.synth`), so the contract is stated once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.codes import CodeType

__all__ = [
    "CONTRACT_VERSION",
    "EARLIEST_DATE",
    "PERSON_KEY",
    "TABLES",
    "Column",
    "ColumnType",
    "RowCheck",
    "Table",
    "arrow_schema",
    "contract_markdown",
    "pseudonymised_schema",
    "table",
]

CONTRACT_VERSION = "1"
PSEUDONYM = "pseudonym"
#: A dense integer for each pseudonym of one pseudonymisation: the pseudonym's rank among that
#: run's pseudonyms sorted as text. Written beside ``pseudonym`` in the linked tables so that the
#: features stage can group and join people by a 32-bit integer instead of a 64-character string;
#: valid only within one set of linked tables (it changes when people arrive), never an output.
PERSON_KEY = "person_key"
#: No date in an extract may be earlier than this (dates of birth included).
EARLIEST_DATE = dt.date(1900, 1, 1)


class ColumnType(StrEnum):
    """Logical column types of the contract."""

    STRING = "string"
    DATE = "date"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"


ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.STRING: pa.string(),
    ColumnType.DATE: pa.date32(),
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    Parameters
    ----------
    name : contract (snake_case) name.
    type : logical type; CSV text is parsed to it, Parquet types are checked against it.
    description : what the column holds, in NHS Data Dictionary words.
    required : a value must be present in every row (an optional column may be absent
        from the file, or empty in any row).
    code : the code type the value must be (shape checked; unknown codes reported).
    allowed : the enumerated values allowed (for string columns).
    nhs_number : the value must be a valid NHS number (Modulus 11).
    pseudonym : the value must be a region pseudonym (64 lower-case hex characters).
    value_range : inclusive bounds for numeric columns.
    """

    name: str
    type: ColumnType
    description: str
    required: bool = True
    code: CodeType | None = None
    allowed: tuple[str, ...] | None = None
    nhs_number: bool = False
    pseudonym: bool = False
    value_range: tuple[float, float] | None = None

    @property
    def rules(self) -> list[str]:
        """Names of the rules this column's values are checked against, in order."""
        out = ["required"] if self.required else []
        out.append(f"type_{self.type}")
        if self.type is ColumnType.DATE:
            out.append("date_plausible")
        if self.nhs_number:
            out.append("nhs_number_mod11")
        if self.pseudonym:
            out.append("pseudonym_shape")
        if self.code is not None:
            out.append(f"code_shape_{self.code}")
        if self.allowed is not None:
            out.append("allowed_values")
        if self.value_range is not None:
            out.append("value_range")
        return out


@dataclass(frozen=True)
class RowCheck:
    """A rule across columns of one row, e.g. a discharge not before its admission.

    ``passes`` takes the typed batch and returns a boolean mask; rows where any input is
    missing pass (missing values are the business of the column rules).
    """

    name: str
    column: str  # the column the failure is reported against
    message: str
    passes: Callable[[pa.Table], np.ndarray]


def _not_before(later: str, earlier: str) -> Callable[[pa.Table], np.ndarray]:
    def passes(batch: pa.Table) -> np.ndarray:
        ok = pc.greater_equal(batch[later], batch[earlier])
        return pc.fill_null(ok, True).to_numpy(zero_copy_only=False)

    return passes


@dataclass(frozen=True)
class Table:
    """One table of the contract."""

    name: str
    description: str
    columns: tuple[Column, ...]
    required: bool = True
    checks: tuple[RowCheck, ...] = field(default=())
    identifiable: bool = True  # carries nhs_number

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def pseudonymised(self) -> Table:
        """This table as an extract pseudonymised at source: ``pseudonym`` for ``nhs_number``."""
        if not self.identifiable:
            return self
        cols = tuple(
            Column(PSEUDONYM, ColumnType.STRING, "region pseudonym of the patient (HMAC-SHA256)", pseudonym=True)
            if c.name == "nhs_number"
            else c
            for c in self.columns
        )
        return replace(self, columns=cols, identifiable=False)


S, D, I, F, B = (
    ColumnType.STRING,
    ColumnType.DATE,
    ColumnType.INTEGER,
    ColumnType.FLOAT,
    ColumnType.BOOLEAN,
)


def _nhs(description: str = "NHS number of the patient") -> Column:
    return Column("nhs_number", S, description, nhs_number=True)


SEX_CODES = ("1", "2", "9", "0")
#: Person Stated Gender Code in words, for outputs that group people by sex
SEX_LABELS = {"1": "male", "2": "female", "9": "indeterminate", "0": "not known"}
ETHNIC_CATEGORIES = (*tuple("ABCDEFGHJKLMNPRSZ"), "99")
EMERGENCY_ADMISSION_METHODS = ("21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28")
ELECTIVE_ADMISSION_METHODS = ("11", "12", "13")
MATERNITY_ADMISSION_METHODS = ("31", "32")
OTHER_ADMISSION_METHODS = ("81", "82", "83")
ADMISSION_METHODS = (
    ELECTIVE_ADMISSION_METHODS + EMERGENCY_ADMISSION_METHODS + MATERNITY_ADMISSION_METHODS + OTHER_ADMISSION_METHODS
)
PATIENT_CLASSIFICATIONS = ("1", "2", "3", "4", "5")
FIRST_ATTENDANCE = ("1", "2", "3", "4")
ATTENDANCE_STATUS = ("5", "6", "7", "2", "3", "4")
ATTENDED_STATUS = ("5", "6")
DID_NOT_ATTEND_STATUS = ("3",)
DEPARTMENT_TYPES = ("01", "02", "03", "04")
OPT_OUT_TYPES = ("type1", "ndoo")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "gp_registrations",
            "One row per registration period at a GP practice, from GP systems.",
            (
                _nhs(),
                Column("practice_code", S, "ODS code of the practice", code=CodeType.ODS_PRACTICE),
                Column("registration_start", D, "first day of the registration"),
                Column(
                    "registration_end",
                    D,
                    "last day of the registration; empty = still registered",
                    required=False,
                ),
                Column("date_of_birth", D, "date of birth"),
                Column(
                    "sex",
                    S,
                    "Person Stated Gender Code: 1 male, 2 female, 9 indeterminate, 0 not known",
                    allowed=SEX_CODES,
                ),
                Column(
                    "ethnic_category",
                    S,
                    "NHS ethnic category code",
                    required=False,
                    allowed=ETHNIC_CATEGORIES,
                ),
                Column("lsoa_code", S, "LSOA 2021 of residence", required=False, code=CodeType.LSOA),
            ),
            checks=(
                RowCheck(
                    "registration_end_before_start",
                    "registration_end",
                    "registration_end is before registration_start",
                    _not_before("registration_end", "registration_start"),
                ),
                RowCheck(
                    "registration_before_birth",
                    "registration_start",
                    "registration_start is before date_of_birth",
                    _not_before("registration_start", "date_of_birth"),
                ),
            ),
        ),
        Table(
            "gp_events",
            "Coded primary care record (SNOMED CT), one row per coded entry.",
            (
                _nhs(),
                Column("event_date", D, "date the code was recorded for"),
                Column("snomed_code", S, "SNOMED CT concept id", code=CodeType.SNOMED),
                Column(
                    "value",
                    F,
                    "numeric value where the code carries one (BMI, HbA1c, eGFR, …)",
                    required=False,
                ),
            ),
        ),
        Table(
            "gp_medications",
            "Prescriptions issued in primary care, one row per item.",
            (
                _nhs(),
                Column("issue_date", D, "date the prescription was issued"),
                Column(
                    "bnf_code",
                    S,
                    "15-character BNF presentation code; chapter = first 2, section = first 4 characters",
                    code=CodeType.BNF,
                ),
                Column("dmd_code", S, "dm+d concept id", required=False, code=CodeType.DMD),
                Column("quantity", F, "quantity issued", required=False, value_range=(0, 1e6)),
                Column("actual_cost", F, "actual cost in pounds", required=False, value_range=(0, 1e6)),
            ),
        ),
        Table(
            "sus_apc",
            "SUS+ admitted patient care, one row per consultant episode.",
            (
                _nhs(),
                Column("spell_id", S, "hospital provider spell number; episodes of one spell share it"),
                Column("episode_number", I, "1, 2, … within the spell", value_range=(1, 99)),
                Column("provider_code", S, "ODS code of the trust", code=CodeType.ODS_PROVIDER),
                Column("admission_date", D, "start of the spell"),
                Column("discharge_date", D, "end of the spell; empty = still in hospital", required=False),
                Column("episode_start", D, "start of the consultant episode"),
                Column("episode_end", D, "end of the consultant episode", required=False),
                Column(
                    "admission_method",
                    S,
                    "11-13 elective; 21-25, 2A-2D, 28 emergency; 31-32 maternity; 81-83 other",
                    allowed=ADMISSION_METHODS,
                ),
                Column(
                    "patient_classification",
                    S,
                    "1 ordinary, 2 day case, 3 regular day, 4 regular night, 5 mother and baby",
                    allowed=PATIENT_CLASSIFICATIONS,
                ),
                Column(
                    "treatment_function_code",
                    S,
                    "treatment function of the consultant",
                    code=CodeType.TREATMENT_FUNCTION,
                ),
                Column("primary_diagnosis", S, "ICD-10 primary diagnosis, no dot", code=CodeType.ICD10),
                Column(
                    "secondary_diagnoses",
                    S,
                    "ICD-10 codes separated by ';'",
                    required=False,
                    code=CodeType.ICD10_LIST,
                ),
                Column(
                    "primary_procedure",
                    S,
                    "OPCS-4 primary procedure, no dot",
                    required=False,
                    code=CodeType.OPCS4,
                ),
                Column(
                    "discharge_destination",
                    S,
                    "discharge destination code",
                    required=False,
                    code=CodeType.DISCHARGE_DESTINATION,
                ),
                Column(
                    "cost",
                    F,
                    "pounds, tariff attributed to the episode",
                    required=False,
                    value_range=(0, 1e7),
                ),
                Column(
                    "gp_practice_code",
                    S,
                    "registered practice as recorded by the provider",
                    required=False,
                    code=CodeType.ODS_PRACTICE,
                ),
            ),
            checks=(
                RowCheck(
                    "discharge_before_admission",
                    "discharge_date",
                    "discharge_date is before admission_date",
                    _not_before("discharge_date", "admission_date"),
                ),
                RowCheck(
                    "episode_end_before_start",
                    "episode_end",
                    "episode_end is before episode_start",
                    _not_before("episode_end", "episode_start"),
                ),
                RowCheck(
                    "episode_before_admission",
                    "episode_start",
                    "episode_start is before admission_date",
                    _not_before("episode_start", "admission_date"),
                ),
            ),
        ),
        Table(
            "sus_op",
            "SUS+ outpatient appointments.",
            (
                _nhs(),
                Column("appointment_date", D, "date of the appointment"),
                Column("provider_code", S, "ODS code of the provider", code=CodeType.ODS_PROVIDER),
                Column(
                    "treatment_function_code",
                    S,
                    "treatment function of the clinic",
                    code=CodeType.TREATMENT_FUNCTION,
                ),
                Column(
                    "first_attendance",
                    S,
                    "1 first, 2 follow-up, 3 first by telephone/video, 4 follow-up by telephone/video",
                    allowed=FIRST_ATTENDANCE,
                ),
                Column(
                    "attendance_status",
                    S,
                    "5/6 attended; 7 arrived late, not seen; 2 patient cancelled; 3 did not attend; "
                    "4 provider cancelled",
                    allowed=ATTENDANCE_STATUS,
                ),
                Column("referral_source", S, "source of referral", required=False),
                Column("cost", F, "pounds", required=False, value_range=(0, 1e7)),
            ),
        ),
        Table(
            "sus_ecds",
            "Emergency Care Data Set attendances (A&E).",
            (
                _nhs(),
                Column("arrival_date", D, "date of arrival"),
                Column("provider_code", S, "ODS code of the provider", code=CodeType.ODS_PROVIDER),
                Column(
                    "department_type",
                    S,
                    "01 major A&E, 02 single specialty, 03 UTC/minor injuries, 04 walk-in",
                    allowed=DEPARTMENT_TYPES,
                ),
                Column("ambulance_arrival", B, "arrived by ambulance"),
                Column("chief_complaint", S, "SNOMED CT chief complaint", required=False, code=CodeType.SNOMED),
                Column("diagnosis", S, "SNOMED CT diagnosis", required=False, code=CodeType.SNOMED),
                Column("admitted", B, "the attendance ended in admission"),
                Column("cost", F, "pounds", required=False, value_range=(0, 1e7)),
            ),
        ),
        Table(
            "deaths",
            "Civil registration of deaths.",
            (
                _nhs(),
                Column("date_of_death", D, "date of death"),
                Column("underlying_cause", S, "ICD-10 underlying cause", required=False, code=CodeType.ICD10),
            ),
            required=False,
        ),
        Table(
            "opt_outs",
            "Patient objections to the use of their data.",
            (
                _nhs(),
                Column(
                    "opt_out_type",
                    S,
                    "type1 (objection recorded at the GP practice) or ndoo (national data opt-out)",
                    allowed=OPT_OUT_TYPES,
                ),
                Column("recorded_date", D, "date the objection was recorded", required=False),
            ),
            required=False,
        ),
        Table(
            "ref_practices",
            "The practices of the commissioning region.",
            (
                Column("practice_code", S, "ODS code of the practice", code=CodeType.ODS_PRACTICE),
                Column("practice_name", S, "name of the practice"),
                Column("pcn_code", S, "ODS code of the primary care network", code=CodeType.PCN),
                Column("pcn_name", S, "name of the primary care network"),
                Column("sub_icb_code", S, "sub-ICB location code", code=CodeType.SUB_ICB),
            ),
            identifiable=False,
        ),
        Table(
            "ref_lsoa",
            "Deprivation by LSOA (Index of Multiple Deprivation deciles).",
            (
                Column("lsoa_code", S, "LSOA 2021 code", code=CodeType.LSOA),
                Column("imd_decile", I, "1 = most deprived … 10 = least deprived", value_range=(1, 10)),
            ),
            required=False,
            identifiable=False,
        ),
    )
}


def table(name: str) -> Table:
    """The declaration of table ``name``."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no table {name!r} in data contract v{CONTRACT_VERSION}") from None


def arrow_schema(tbl: Table) -> pa.Schema:
    """The typed Arrow schema of a validated table (contract columns, contract order)."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in tbl.columns])


def pseudonymised_schema(name: str) -> pa.Schema:
    """Schema of a table in the pseudonymised zone: ``pseudonym`` for the NHS number, month of
    birth for the date of birth, the other contract columns as declared (every one nullable)."""
    fields = []
    for f in arrow_schema(TABLES[name]):
        if f.name == "nhs_number":
            fields.append(pa.field(PSEUDONYM, pa.string()))
        elif f.name == "date_of_birth":
            fields.append(pa.field("month_of_birth", pa.date32()))
        else:
            fields.append(pa.field(f.name, f.type))
    return pa.schema(fields)


def contract_markdown() -> str:
    """The contract rendered as Markdown, from the declarations (docs/data-contract.md)."""
    lines = [f"# riskstrat input data contract v{CONTRACT_VERSION} (generated from `riskstrat/schema.py`)", ""]
    for tbl in TABLES.values():
        status = "required" if tbl.required else "optional"
        lines += [f"## {tbl.name} ({status})", "", tbl.description, ""]
        lines += ["| column | type | required | rules | description |", "|---|---|---|---|---|"]
        for c in tbl.columns:
            rules = ", ".join(c.rules)
            if c.allowed:
                rules += " (" + " ".join(f"`{v}`" for v in c.allowed) + ")"
            lines.append(f"| {c.name} | {c.type} | {'yes' if c.required else 'no'} | {rules} | {c.description} |")
        if tbl.checks:
            lines += ["", "Row checks: " + "; ".join(f"`{k.name}` ({k.message})" for k in tbl.checks)]
        lines.append("")
    return "\n".join(lines)
