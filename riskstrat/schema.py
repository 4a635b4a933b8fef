"""The input data contract, version 1.1, as code.

Version 1.1 only adds optional tables (each declares the version that brought it,
:attr:`Table.since`): an extract valid under version 1 stays valid.

One :class:`Table` declaration per table of ``shared/spec/data-contract.md``. Each
declaration (typed columns, whether a value is required, the rules a value must meet, a
description) drives reading and validation (:mod:`riskstrat.ingest`), the generated
contract documentation (:func:`contract_markdown`) and the synthetic generator
(:mod:`riskstrat.synth`), so the contract is stated once.

A validation rule is one :class:`Rule` object: its name, description, check, severity and
how to break a value for it (fault injection). Rules implied by a column's type, code
type and ``required`` come from :attr:`Column.all_rules`; others are declared on the
column (``Column(..., rules=(ValueRange(0, 1e6),))``). Validation, the report, the
generated document and :mod:`riskstrat.synth.faults` read them from there.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import ClassVar, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.codes import CODE_TYPES, CodeType, is_known, is_well_shaped
from riskstrat.privacy.nhs_number import is_valid as nhs_number_is_valid
from riskstrat.privacy.pseudonym import PSEUDONYM_PATTERN

__all__ = [
    "CARE_REGISTER",
    "CONTRACT_VERSION",
    "EARLIEST_DATE",
    "PERSON_KEY",
    "REGISTER_STATUSES",
    "TABLES",
    "WHOLE_ROW",
    "WHOLE_ROW_RULES",
    "AllowedValues",
    "CodeShape",
    "Column",
    "ColumnType",
    "ColumnValues",
    "DatePlausible",
    "KnownCode",
    "Missing",
    "NhsNumberMod11",
    "Parses",
    "PseudonymShape",
    "Required",
    "RowCheck",
    "Rule",
    "RuleKey",
    "Severity",
    "Table",
    "ValueRange",
    "arrow_schema",
    "contract_markdown",
    "counted_rules",
    "pseudonymised_schema",
    "table",
]

CONTRACT_VERSION = "1.1"
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


class Severity(StrEnum):
    """What validation does with a row that breaks a rule."""

    #: the row is quarantined, against the first error rule it breaks
    ERROR = "error"
    #: the row is kept; the report counts the rows per column and shows them
    WARNING = "warning"
    #: the row is kept; the report counts the rows per column, every column the rule
    #: applies to (0 included), in its JSON form only
    NOTE = "note"


class RuleKey(str):
    """A key of the quarantine counts: ``column:rule``, with both parts kept.

    Equal to (and hashed as) its text, so reports and their JSON read as before; readers
    take :attr:`column` and :attr:`rule` instead of splitting the text.
    """

    column: str
    rule: str

    def __new__(cls, column: str, rule: str) -> RuleKey:
        key = super().__new__(cls, f"{column}:{rule}")
        key.column, key.rule = column, rule
        return key

    def __getnewargs__(self) -> tuple[str, str]:
        return self.column, self.rule


#: The column that whole-row rules are reported against.
WHOLE_ROW = "*"
#: Whole-row rules, applied by the reader and by de-duplication (not by a column).
WHOLE_ROW_RULES: dict[str, str] = {
    "csv_field_count": "a CSV line splits into the header's number of fields",
    "duplicate_row": "the row is not an exact repeat of an earlier row (the first copy is kept)",
}


@dataclass(frozen=True)
class ColumnValues:
    """One batch of one column, as a :class:`Rule` sees it.

    Attributes
    ----------
    typed : values parsed to the column's type; null where absent or not parsed.
    present : numpy bool array, shape (n,): a value is there (not null, not blank text).
    parsed : numpy bool array, shape (n,): present and parsed to the column's type.
    today : the latest plausible date (the day the check runs, unless told).
    """

    typed: pa.Array | pa.ChunkedArray
    present: np.ndarray
    parsed: np.ndarray
    today: dt.date


class Rule(ABC):
    """A rule a column's values must meet: its name, description, check, severity and the
    way to break a value for it (fault injection), in one object.

    Validation (:mod:`riskstrat.ingest.validate`), the generated contract document
    (:func:`contract_markdown`), the validation report and fault injection
    (:mod:`riskstrat.synth.faults`) all read rules from the columns (:attr:`Column.all_rules`),
    so a new rule is a subclass here and its place on a column.

    Attributes
    ----------
    name : as written in the quarantine's ``rule`` column and in the report (``column:rule``).
    description : what a value must be to pass, for the generated documentation.
    severity : what happens to a row that breaks it (:class:`Severity`).
    parsed_only : only values that parsed are checked (missing values and values of the wrong
        type are the business of ``required`` and ``type_*``); False: every row.
    breaks_type : :meth:`broken` gives text that is not of the column's type, so a faulted
        file carries the column as text.
    counted_as : warnings and notes: the report's key for the kept rows (``unknown_codes``);
        shown with ``_`` as spaces.
    reason : warnings: why the rows were kept, for the report's line.
    """

    name: str
    description: str
    severity: Severity = Severity.ERROR
    parsed_only: bool = True
    breaks_type: bool = False
    counted_as: str = ""
    reason: str = ""

    @abstractmethod
    def passes(self, values: ColumnValues) -> np.ndarray:
        """Boolean mask, shape (n,): True where the value meets the rule."""

    def detail(self, column: str, values: ColumnValues) -> str | np.ndarray:
        """Error rules: the quarantine's ``detail``, one text or one per row of ``values``."""
        return f"{column} breaks {self.name}"

    @abstractmethod
    def broken(self, values: np.ndarray) -> np.ndarray:
        """Fault injection: values that break the rule, one for each of ``values`` (an
        object array of the column's values; dates as ``YYYY-MM-DD`` text)."""

    def breakable(self, values: np.ndarray) -> np.ndarray:
        """Fault injection: True where :meth:`broken` changes the outcome of the row."""
        return np.ones(len(values), dtype=bool)

    @property
    def label(self) -> str:
        """How the generated contract table names the rule on a column."""
        return self.name


def _mask(arr: pa.Array | pa.ChunkedArray, null: bool) -> np.ndarray:
    """Arrow booleans as a numpy mask, ``null`` where null."""
    return np.asarray(pc.fill_null(arr, null).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class Required(Rule):
    """A value is present in every row (the column is required)."""

    name = "required"
    description = "a required column has a value in the row"
    parsed_only = False

    def passes(self, values: ColumnValues) -> np.ndarray:
        return values.present

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is required"

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), None, dtype=object)


@dataclass(frozen=True)
class Missing(Rule):
    """An optional value is empty: kept, and counted per column."""

    name = "missing"
    description = "an optional value is empty: the row is kept and counted (`missing_optional`)"
    severity = Severity.NOTE
    parsed_only = False
    counted_as = "missing_optional"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return values.present

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), None, dtype=object)

    def breakable(self, values: np.ndarray) -> np.ndarray:
        return np.array([v is not None and v == v for v in values], dtype=bool)  # not None, not NaN


_TYPE_RULES = {
    ColumnType.DATE: "CSV text is a real date written exactly `YYYY-MM-DD` (no 30 February)",
    ColumnType.INTEGER: "CSV text is a whole number in plain notation",
    ColumnType.FLOAT: "CSV text is a decimal number in plain or exponent notation",
    ColumnType.BOOLEAN: "CSV text is one of `true/false/1/0/t/f/y/n/yes/no` (any case)",
}


@dataclass(frozen=True)
class Parses(Rule):
    """A present value parses to the column's type (every text is a string: no rule)."""

    type: ColumnType
    parsed_only = False
    breaks_type = True

    @property
    def name(self) -> str:
        return f"type_{self.type}"

    @property
    def description(self) -> str:
        return _TYPE_RULES[self.type]

    def passes(self, values: ColumnValues) -> np.ndarray:
        return ~values.present | values.parsed

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is not a valid {self.type}"

    def broken(self, values: np.ndarray) -> np.ndarray:
        if self.type is ColumnType.DATE:  # the same year, 30 February
            return np.char.add(np.array([str(v)[:4] for v in values]), "-02-30").astype(object)
        return np.full(len(values), "maybe" if self.type is ColumnType.BOOLEAN else "n/a", dtype=object)


@dataclass(frozen=True)
class DatePlausible(Rule):
    """A date on or after :data:`EARLIEST_DATE` and not after the day the check runs."""

    name = "date_plausible"
    description = f"a date on or after {EARLIEST_DATE} and not after the day the check runs"

    def passes(self, values: ColumnValues) -> np.ndarray:
        earliest, latest = pa.scalar(EARLIEST_DATE, pa.date32()), pa.scalar(values.today, pa.date32())
        return ~_mask(pc.or_(pc.less(values.typed, earliest), pc.greater(values.typed, latest)), False)

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is before {EARLIEST_DATE} or after {values.today}"

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), f"{EARLIEST_DATE.year - 50}-01-01", dtype=object)


@dataclass(frozen=True)
class NhsNumberMod11(Rule):
    """An NHS number: ten digits with a valid Modulus 11 check digit."""

    name = "nhs_number_mod11"
    description = "ten digits with a valid Modulus 11 check digit"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return nhs_number_is_valid(values.typed)

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is not 10 digits with a valid check digit"

    def broken(self, values: np.ndarray) -> np.ndarray:
        numbers = values.astype("U10")
        last = numbers.view("U1").reshape(-1, 10)[:, 9].astype(int)
        new_last = (last + 1 + np.arange(numbers.size) % 9) % 10  # any other digit breaks Modulus 11
        return np.array([n[:9] + str(d) for n, d in zip(numbers, new_last, strict=True)], dtype=object)


@dataclass(frozen=True)
class PseudonymShape(Rule):
    """A region pseudonym: 64 lower-case hexadecimal characters."""

    name = "pseudonym_shape"
    description = "64 lower-case hexadecimal characters (an HMAC-SHA256 region pseudonym)"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return _mask(pc.match_substring_regex(values.typed, PSEUDONYM_PATTERN), True)

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is not 64 lower-case hex characters"

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), "not-a-pseudonym", dtype=object)


#: A malformed value per code type, as seen in real extracts; ``?`` for the others.
_MALFORMED = {CodeType.SNOMED: "12AB34", CodeType.BNF: "BNF123", CodeType.ICD10: "J4"}


@dataclass(frozen=True)
class CodeShape(Rule):
    """The value has the shape of its code type (:mod:`riskstrat.codes`)."""

    code: CodeType

    @property
    def name(self) -> str:
        return f"code_shape_{self.code}"

    @property
    def description(self) -> str:
        return f"the code has the shape of its type: {CODE_TYPES[self.code].description}"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return is_well_shaped(values.typed, self.code)

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is not a {CODE_TYPES[self.code].description}"

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), _MALFORMED.get(self.code, "?"), dtype=object)


def _unknown_code(code: CodeType, value: str) -> str:
    """A well-shaped ``code`` that cannot be real, made from the real ``value``."""
    if code is CodeType.SNOMED:  # one changed digit always breaks the Verhoeff check
        return value[:-1] + str((int(value[-1]) + 3) % 10)
    if code is CodeType.BNF:
        return "17" + value[2:]  # BNF chapter 17 does not exist
    if code in (CodeType.ICD10, CodeType.ICD10_LIST):
        return "E95X"  # beyond chapter IV (E00-E90)
    if code is CodeType.OPCS4:
        return "O" + value[1:]  # no OPCS-4 chapter O
    raise KeyError(f"no unknown {code} code to make")


@dataclass(frozen=True)
class KnownCode(Rule):
    """A well-shaped code that cannot be real is kept and counted (code types with a 'known'
    check only: ICD-10, OPCS-4, SNOMED CT, BNF)."""

    code: CodeType
    name = "unknown_code"
    severity = Severity.WARNING
    counted_as = "unknown_codes"
    reason = "well-shaped, but not a real code"

    @property
    def description(self) -> str:
        return (
            "a well-shaped code that cannot be real (ICD-10 category outside every chapter; BNF chapter 16, "
            "17 or above 23; SNOMED CT id failing its Verhoeff check digit or not a concept; OPCS-4 chapter "
            "I or O): the row is kept and counted (`unknown_codes`)"
        )

    def passes(self, values: ColumnValues) -> np.ndarray:
        if not values.parsed.any():
            return np.ones(len(values.parsed), dtype=bool)
        return is_known(values.typed, self.code) | ~values.parsed

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.array([_unknown_code(self.code, str(v)) for v in values], dtype=object)


@dataclass(frozen=True)
class AllowedValues(Rule):
    """An enumerated value: one of the contract's values."""

    values: tuple[str, ...]
    name = "allowed_values"
    description = "an enumerated field holds one of the contract's values"

    @property
    def label(self) -> str:
        return f"{self.name} (" + " ".join(f"`{v}`" for v in self.values) + ")"

    def passes(self, values: ColumnValues) -> np.ndarray:
        return _mask(pc.is_in(values.typed, pa.array(self.values)), True)

    def detail(self, column: str, values: ColumnValues) -> str:
        return f"{column} is not one of {', '.join(self.values)}"

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), "?", dtype=object)


@dataclass(frozen=True)
class ValueRange(Rule):
    """A number within inclusive bounds; NaN and the infinities break it too (so CSV text
    ``nan``, ``inf``, ``Infinity`` is read as a number, for this rule to name)."""

    low: float
    high: float
    name = "value_range"

    @property
    def description(self) -> str:
        return "a number within the column's bounds; NaN and the infinities (`nan`, `inf`, `Infinity`) break it"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.low:g} to {self.high:g})"

    def passes(self, values: ColumnValues) -> np.ndarray:
        outside = pc.or_(pc.less(values.typed, self.low), pc.greater(values.typed, self.high))
        ok = ~_mask(outside, False)
        if pa.types.is_floating(values.typed.type):
            ok &= _mask(pc.is_finite(values.typed), True)
        return ok

    def detail(self, column: str, values: ColumnValues) -> str | np.ndarray:
        outside = f"{column} is outside {self.low:g} to {self.high:g}"
        if not pa.types.is_floating(values.typed.type):
            return outside
        non_finite = f"{column} is NaN or infinite, not a number from {self.low:g} to {self.high:g}"
        return np.where(_mask(pc.is_finite(values.typed), True), outside, non_finite).astype(object)

    def broken(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), self.high + 1, dtype=object)


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
    rules : the rules declared on the column (:class:`Rule`), beyond those its type,
        code type and ``required`` imply (see :attr:`all_rules`).
    """

    name: str
    type: ColumnType
    description: str
    required: bool = True
    code: CodeType | None = None
    rules: tuple[Rule, ...] = ()

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """Every rule of the column, in the order validation applies them: ``required``, the
        type, date plausibility, the code's shape and knownness, the declared rules, and
        ``missing`` for an optional column."""
        out: list[Rule] = [Required()] if self.required else []
        if self.type is not ColumnType.STRING:
            out.append(Parses(self.type))
        if self.type is ColumnType.DATE:
            out.append(DatePlausible())
        if self.code is not None:
            out.append(CodeShape(self.code))
            if CODE_TYPES[self.code].known is not None:
                out.append(KnownCode(self.code))
        out += self.rules
        if not self.required:
            out.append(Missing())
        return tuple(out)

    def rule(self, name: str) -> Rule:
        """The rule called ``name`` on this column."""
        for r in self.all_rules:
            if r.name == name:
                return r
        raise KeyError(f"column {self.name} has no rule {name}")

    def _declared(self, kind: type[R]) -> R | None:
        return next((r for r in self.rules if isinstance(r, kind)), None)

    @property
    def nhs_number(self) -> bool:
        """The value must be a valid NHS number."""
        return self._declared(NhsNumberMod11) is not None

    @property
    def allowed(self) -> tuple[str, ...] | None:
        """The enumerated values allowed, if any."""
        rule = self._declared(AllowedValues)
        return rule.values if rule else None

    @property
    def value_range(self) -> tuple[float, float] | None:
        """Inclusive bounds for a numeric column, if any."""
        rule = self._declared(ValueRange)
        return (rule.low, rule.high) if rule else None


R = TypeVar("R", bound=Rule)


@dataclass(frozen=True)
class RowCheck:
    """A rule across columns of one row, e.g. a discharge not before its admission: its name,
    the column a failure is reported against, what it means, its check and, for fault
    injection, how to break a row for it. Rows where any input is missing pass (missing values
    are the business of the column rules). Its severity is always :attr:`Severity.ERROR`.
    """

    name: str
    column: str  # the column the failure is reported against
    message: str
    severity: ClassVar[Severity] = Severity.ERROR

    def passes(self, batch: pa.Table) -> np.ndarray:
        """A boolean mask over the typed ``batch``: True where the row keeps the rule."""
        raise NotImplementedError

    def breakable(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Fault injection: True where :meth:`break_rows` can make the row fail (``columns``:
        the table's columns as object arrays, dates as ``YYYY-MM-DD`` text)."""
        raise NotImplementedError

    def break_rows(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> None:
        """Fault injection: change ``rows`` of ``columns`` in place so that they fail."""
        raise NotImplementedError


@dataclass(frozen=True)
class NotBefore(RowCheck):
    """``later`` is not before ``earlier`` (reported against ``later``)."""

    earlier: str = ""

    def __init__(self, name: str, later: str, earlier: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "column", later)
        object.__setattr__(self, "message", f"{later} is before {earlier}")
        object.__setattr__(self, "earlier", earlier)

    @property
    def later(self) -> str:
        return self.column

    def passes(self, batch: pa.Table) -> np.ndarray:
        ok = pc.greater_equal(batch[self.later], batch[self.earlier])
        return pc.fill_null(ok, True).to_numpy(zero_copy_only=False)

    def breakable(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Rows with both dates (a missing one is left missing: it counts for other rules)."""
        later, earlier = columns[self.later], columns[self.earlier]
        return np.array(
            [_iso_date(a) is not None and _iso_date(b) is not None for a, b in zip(later, earlier, strict=True)], bool
        )

    def break_rows(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> None:
        """``later`` becomes the day before ``earlier``."""
        day = dt.timedelta(days=1)
        columns[self.later][rows] = [(_iso_date(v) - day).isoformat() for v in columns[self.earlier][rows]]


def _iso_date(value: object) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)) if value is not None else None
    except ValueError:
        return None


def counted_rules(severity: Severity | None = None) -> dict[str, Rule]:
    """The rules whose rows are kept and counted, by report key (``counted_as``), over every
    table: warnings first, then notes, each in declaration order; one severity if given."""
    found: dict[str, Rule] = {}
    for sev in (Severity.WARNING, Severity.NOTE):
        if severity not in (None, sev):
            continue
        for tbl in TABLES.values():
            for col in tbl.columns:
                for rule in col.all_rules:
                    if rule.severity is sev:
                        found.setdefault(rule.counted_as, rule)
    return found


@dataclass(frozen=True)
class Table:
    """One table of the contract."""

    name: str
    description: str
    columns: tuple[Column, ...]
    required: bool = True
    checks: tuple[RowCheck, ...] = field(default=())
    identifiable: bool = True  # carries nhs_number
    #: the contract version that brought the table (later versions only add optional tables)
    since: str = "1"
    #: never written to the pseudonymised zone: read in the identifiable zone only (the care register)
    identifiable_zone_only: bool = False

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name}")

    def check(self, name: str) -> RowCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"{self.name} has no row check {name}")

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
            Column(
                PSEUDONYM,
                ColumnType.STRING,
                "region pseudonym of the patient (HMAC-SHA256)",
                rules=(PseudonymShape(),),
            )
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
    return Column("nhs_number", S, description, rules=(NhsNumberMod11(),))


SEX_CODES = ("1", "2", "9", "0")
#: Person Stated Gender Code as every output writes it (one letter, as GP systems show sex):
#: M male, F female, I indeterminate, U not known
SEX_LETTERS = {"1": "M", "2": "F", "9": "I", "0": "U"}
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
#: the statuses of the practice's care register (contract v1.1): each keeps a patient on the list, marked
REGISTER_STATUSES = ("case_managed", "declined", "not_appropriate")
#: the care register's table (contract v1.1), kept in the identifiable zone only
CARE_REGISTER = "care_register"

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
                    rules=(AllowedValues(SEX_CODES),),
                ),
                Column(
                    "ethnic_category",
                    S,
                    "NHS ethnic category code",
                    required=False,
                    rules=(AllowedValues(ETHNIC_CATEGORIES),),
                ),
                Column("lsoa_code", S, "LSOA 2021 of residence", required=False, code=CodeType.LSOA),
            ),
            checks=(
                NotBefore("registration_end_before_start", "registration_end", "registration_start"),
                NotBefore("registration_before_birth", "registration_start", "date_of_birth"),
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
                Column("quantity", F, "quantity issued", required=False, rules=(ValueRange(0, 1e6),)),
                Column("actual_cost", F, "actual cost in pounds", required=False, rules=(ValueRange(0, 1e6),)),
            ),
        ),
        Table(
            "sus_apc",
            "SUS+ admitted patient care, one row per consultant episode.",
            (
                _nhs(),
                Column("spell_id", S, "hospital provider spell number; episodes of one spell share it"),
                Column("episode_number", I, "1, 2, … within the spell", rules=(ValueRange(1, 99),)),
                Column("provider_code", S, "ODS code of the trust", code=CodeType.ODS_PROVIDER),
                Column("admission_date", D, "start of the spell"),
                Column("discharge_date", D, "end of the spell; empty = still in hospital", required=False),
                Column("episode_start", D, "start of the consultant episode"),
                Column("episode_end", D, "end of the consultant episode", required=False),
                Column(
                    "admission_method",
                    S,
                    "11-13 elective; 21-25, 2A-2D, 28 emergency; 31-32 maternity; 81-83 other",
                    rules=(AllowedValues(ADMISSION_METHODS),),
                ),
                Column(
                    "patient_classification",
                    S,
                    "1 ordinary, 2 day case, 3 regular day, 4 regular night, 5 mother and baby",
                    rules=(AllowedValues(PATIENT_CLASSIFICATIONS),),
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
                    rules=(ValueRange(0, 1e7),),
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
                NotBefore("discharge_before_admission", "discharge_date", "admission_date"),
                NotBefore("episode_end_before_start", "episode_end", "episode_start"),
                NotBefore("episode_before_admission", "episode_start", "admission_date"),
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
                    rules=(AllowedValues(FIRST_ATTENDANCE),),
                ),
                Column(
                    "attendance_status",
                    S,
                    "5/6 attended; 7 arrived late, not seen; 2 patient cancelled; 3 did not attend; "
                    "4 provider cancelled",
                    rules=(AllowedValues(ATTENDANCE_STATUS),),
                ),
                Column("referral_source", S, "source of referral", required=False),
                Column("cost", F, "pounds", required=False, rules=(ValueRange(0, 1e7),)),
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
                    rules=(AllowedValues(DEPARTMENT_TYPES),),
                ),
                Column("ambulance_arrival", B, "arrived by ambulance"),
                Column("chief_complaint", S, "SNOMED CT chief complaint", required=False, code=CodeType.SNOMED),
                Column("diagnosis", S, "SNOMED CT diagnosis", required=False, code=CodeType.SNOMED),
                Column("admitted", B, "the attendance ended in admission"),
                Column("cost", F, "pounds", required=False, rules=(ValueRange(0, 1e7),)),
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
                    rules=(AllowedValues(OPT_OUT_TYPES),),
                ),
                Column("recorded_date", D, "date the objection was recorded", required=False),
            ),
            required=False,
        ),
        Table(
            "care_register",
            "The practice's case-management register (v1.1): patients it already case-manages, who declined, "
            "or for whom case management is not appropriate. Read in the identifiable zone only; it reaches a "
            "practice's own list as a mark, and nothing else.",
            (
                Column(
                    "practice_code", S, "ODS code of the practice that keeps the register", code=CodeType.ODS_PRACTICE
                ),
                _nhs(),
                Column(
                    "status",
                    S,
                    "case_managed, declined or not_appropriate",
                    rules=(AllowedValues(REGISTER_STATUSES),),
                ),
                Column("recorded_date", D, "date the status was recorded (the latest before D applies)"),
            ),
            required=False,
            since="1.1",
            identifiable_zone_only=True,
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
                Column("imd_decile", I, "1 = most deprived … 10 = least deprived", rules=(ValueRange(1, 10),)),
            ),
            required=False,
            identifiable=False,
        ),
        Table(
            "ref_providers",
            "Names of the hospital providers (trusts and sites) that SUS+ activity names by ODS code, for the "
            "activity shown on practice lists; a provider not listed is shown by its code.",
            (
                Column("provider_code", S, "ODS code of the provider or site", code=CodeType.ODS_PROVIDER),
                Column("provider_name", S, "name of the provider, as practices know it"),
            ),
            required=False,
            identifiable=False,
            since="1.1",
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
    """The contract rendered as Markdown, from the declarations (docs/contract-v1-tables.md):
    a table per contract table, then every rule with its severity and description."""
    lines = [f"# riskstrat input data contract v{CONTRACT_VERSION} (generated from `riskstrat/schema.py`)", ""]
    rules: dict[str, tuple[Severity, str]] = {}
    for tbl in TABLES.values():
        status = "required" if tbl.required else "optional"
        if tbl.since != "1":
            status += f", since v{tbl.since}"
        lines += [f"## {tbl.name} ({status})", "", tbl.description, ""]
        lines += ["| column | type | required | rules | description |", "|---|---|---|---|---|"]
        for c in tbl.columns:
            cell = ", ".join(r.label for r in c.all_rules)
            lines.append(f"| {c.name} | {c.type} | {'yes' if c.required else 'no'} | {cell} | {c.description} |")
            for r in c.all_rules:
                rules.setdefault(r.name, (r.severity, r.description))
        if tbl.checks:
            lines += ["", "Row checks: " + "; ".join(f"`{k.name}` ({k.message})" for k in tbl.checks)]
            for k in tbl.checks:
                about = f"row check, against `{k.column}`: a row breaks it when {k.message}"
                rules.setdefault(k.name, (k.severity, about))
        lines.append("")
    for name, description in WHOLE_ROW_RULES.items():
        rules.setdefault(name, (Severity.ERROR, f"whole row (column `{WHOLE_ROW}`): {description}"))
    lines += [
        "## Rules",
        "",
        "`error`: the row is quarantined, against the first error rule it breaks; `warning`: the row is kept "
        "and the report counts and shows it; `note`: the row is kept and the report's JSON counts it.",
        "",
        "| rule | severity | checks |",
        "|---|---|---|",
    ]
    rank = list(Severity)
    ordered = sorted(rules.items(), key=lambda item: rank.index(item[1][0]))
    lines += [f"| `{name}` | {sev} | {description} |" for name, (sev, description) in ordered]
    lines.append("")
    return "\n".join(lines)
