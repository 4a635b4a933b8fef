"""Deployment configuration (YAML under ``configs/``), separate from code.

A configuration says where things are and how a region's extracts differ from the
contract: the file name of each table and the local name of each column. Secrets never
live here: keys come from the environment (see ``spec/interface.md``).

Example (``configs/examples/udal-style.yaml``)::

    tables:
      sus_apc:
        file: apcs_extract.csv
        columns:              # contract name: name in the user's extract
          nhs_number: Der_NHS_Number
          admission_date: Admission_Date

The configuration is a tree of pydantic models (:class:`Settings`): each key of the file is a
field, typed, with its constraint and its default. The defaults live in one place, the field
defaults below; ``riskstrat/defaults/configs/default.yaml`` writes them out for users to copy,
and ``tests/test_config.py`` checks that it says the same as ``Config()``. A file that breaks
the rules stops the run with one line naming the file and the key (:func:`load_settings`).
The model specifications (:mod:`riskstrat.modelling.spec`) are read the same way.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from riskstrat.errors import ConfigError
from riskstrat.privacy.disclosure import DEFAULT_RULES, DisclosureRules, RateRounding
from riskstrat.privacy.optout import DEFAULT_POLICY, OptOutPolicy, OptOutType, Use
from riskstrat.schema import TABLES

__all__ = [
    "DEFAULT_CONFIG",
    "DROP_WARNING_SHARE",
    "Config",
    "ExposureHandling",
    "MlflowSettings",
    "MonitoringSettings",
    "OptOutsSettings",
    "PracticeListSettings",
    "RegisterHandling",
    "Settings",
    "TableMapping",
    "ValidationSettings",
    "invalid",
    "load_config",
    "load_settings",
]

#: a practice list shorter than last month's by more than this share raises a warning
DROP_WARNING_SHARE = 0.2

#: the embedded defaults written out; shipped inside the package (riskstrat/defaults/configs/, package
#: data in pyproject.toml) as the one copy, which users copy into the repository's configs/ to edit
#: (the same choice as the model specifications, riskstrat/modelling/spec.py)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "defaults" / "configs" / "default.yaml"

S = TypeVar("S", bound="Settings")


def invalid(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error at ``loc`` (relative to the value being validated) for a check that a
    type cannot express; raised inside a validator, pydantic prefixes the field's own path."""
    error = PydanticCustomError("riskstrat", "{message}", {"message": message})  # braces in it stay as written
    return ValidationError.from_exception_data("riskstrat", [InitErrorDetails(type=error, loc=loc, input=value)])


class Settings(BaseModel):
    """Base of every section of a configuration or model specification: unknown keys are
    errors (naming the known ones), values cannot change once loaded, and a key written with
    nothing after it (``validation:`` with its lines commented out) means its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if data is None:  # a section written with nothing in it: every key at its default
            return {}
        if isinstance(data, dict):
            known = [field.alias or name for name, field in cls.model_fields.items()]
            unknown = [key for key in data if key not in known]
            if unknown:
                details = [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "unknown_key", "unknown key; known keys: {known}", {"known": ", ".join(known)}
                        ),
                        loc=(str(key),),
                        input=data[key],
                    )
                    for key in unknown
                ]
                raise ValidationError.from_exception_data(cls.__name__, details)
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _nothing_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields[info.field_name]  # type: ignore[index]
        if value is None and not field.is_required():
            default = field.get_default(call_default_factory=True)
            return value if default is None else default
        return value


def _contract_table(name: str) -> str:
    if name not in TABLES:
        raise PydanticCustomError(
            "table", "no such table in the data contract (tables: {tables})", {"tables": ", ".join(TABLES)}
        )
    return name


#: the name of a table of data contract v1 (:data:`riskstrat.schema.TABLES`)
ContractTable = Annotated[str, AfterValidator(_contract_table)]


class TableMapping(Settings):
    """How one contract table appears in a user's extracts directory."""

    model_config = ConfigDict(coerce_numbers_to_str=True)  # a column may be called 2021

    #: file name; default <table>.parquet or <table>.csv
    file: str | None = None
    #: contract name -> the name of the column in the user's extract (unmapped: the contract name)
    columns: dict[str, str] = Field(default_factory=dict)

    def source_name(self, contract_name: str) -> str:
        return self.columns.get(contract_name, contract_name)


class ValidationSettings(Settings):
    """The ``validation`` section: how extracts are read and when a run stops or warns."""

    #: rows validated at a time (bounds memory)
    batch_rows: int = Field(1_000_000, gt=0)
    #: required tables that may arrive with no rows in this region (otherwise no rows stops the run)
    expected_empty: frozenset[ContractTable] = frozenset()
    #: warn when a practice list is shorter than last month's by more than this share
    practice_drop_warning_share: float = Field(DROP_WARNING_SHARE, gt=0, le=1)


class OptOutsSettings(Settings):
    """The ``opt_outs`` section, for a region whose extracts arrive with objections applied."""

    #: who applied patients' objections before the extracts arrived (e.g. "DSCRO")
    applied_upstream: str = Field(min_length=1)


class RegisterHandling(StrEnum):
    """What a practice list does with patients on the practice's care register (contract v1.1)."""

    #: marked on the list, left out of the "to review" counts and of the import files
    EXCLUDE = "exclude"
    #: marked on the list only: counted and imported like everyone else
    INCLUDE = "include"


class PracticeListSettings(Settings):
    """The ``practice_list`` section: what each practice's monthly list compares, marks and exports
    (``docs/outputs.md``)."""

    #: "rising": risk up by at least this many percentage points since the practice's previous list
    #: (or moved up a band)
    rising_points: float = Field(5.0, gt=0, le=100)
    #: patients on the practice's care register: ``exclude`` (from the to-review counts and the
    #: import files; still on the list, marked) or ``include``
    care_register: RegisterHandling = RegisterHandling.EXCLUDE
    #: "recently discharged": discharged from an emergency spell in this many days before D
    discharged_days: int = Field(30, gt=0, le=365)
    #: patients per import file (Accurx takes at most 250); longer lists are split _1, _2, ...
    import_batch_size: int = Field(250, gt=0)


class MlflowSettings(Settings):
    """The ``mlflow`` section."""

    #: a tracking server's URI; None: the embedded store in the work directory
    tracking_uri: str | None = None


class ExposureHandling(StrEnum):
    """How training treats people whose outcomes the practice lists may have changed: rows whose
    outcome window overlaps the horizon of a list that showed the person in an at-risk band
    (``docs/modelling.md``, "Exposure to the lists")."""

    #: train on everyone, exposed or not (the default: the reason is in docs/modelling.md)
    INCLUDE = "include"
    #: leave the exposed rows out of training
    EXCLUDE = "exclude"
    #: keep a share ``exposed_weight`` of the exposed rows (a keyed hash of the pseudonym picks
    #: them): each counts, in expectation, as ``exposed_weight`` of a row
    WEIGHT = "weight"


class MonitoringSettings(Settings):
    """The ``monitoring`` section: the exposure log's use in training, the randomised hold-out,
    and the thresholds above which the monthly monitoring report warns (``docs/modelling.md``)."""

    #: how training treats rows whose outcomes the lists may have changed
    exposure_handling: ExposureHandling = ExposureHandling.INCLUDE
    #: with ``exposure_handling: weight``, the weight of an exposed row (the share of them kept)
    exposed_weight: float = Field(0.5, gt=0, lt=1)
    #: share of people scored but never shown on a practice list (a keyed, stable hash of the
    #: pseudonym chooses them); 0 turns the hold-out off. A governance decision of the ICB.
    holdout_share: float = Field(0.0, ge=0, le=0.5)
    #: population stability index of a feature or of the score, against the training population,
    #: above which the report warns (0.25: the conventional "major shift")
    psi_warning: float = Field(0.25, gt=0)
    #: AUROC (expected without labels, or realised) below its reference by more than this warns
    auroc_drop_warning: float = Field(0.03, gt=0, lt=0.5)
    #: expected PPV at a band threshold below the training population's by more than this share
    #: of it warns
    ppv_drop_warning: float = Field(0.2, gt=0, lt=1)
    #: realised observed/expected events further from 1 than this warns
    oe_warning: float = Field(0.2, gt=0, lt=1)


class _DisclosureSettings(Settings):
    """The ``disclosure`` section: only how rates are rounded can be chosen (counts are always
    redacted 1-7 and rounded to 5: :data:`riskstrat.privacy.disclosure.DEFAULT_RULES`)."""

    rates: RateRounding = RateRounding(DEFAULT_RULES.rates)


def _disclosure(value: Any) -> DisclosureRules:
    if isinstance(value, DisclosureRules):
        return value
    return DisclosureRules(rates=_DisclosureSettings.model_validate(value).rates)


_POLICY_FILE = TypeAdapter(dict[OptOutType, frozenset[Use]])


def _policy(value: Any) -> OptOutPolicy:
    """``opt_out_policy``: each objection type to the uses it excludes; a type the file leaves
    out keeps the default (every use)."""
    if isinstance(value, OptOutPolicy):
        return value
    named = _POLICY_FILE.validate_python(value)
    return OptOutPolicy({kind: named.get(kind, DEFAULT_POLICY.excludes[kind]) for kind in OptOutType})


class Config(Settings):
    """A deployment configuration: the file's keys as fields. Build with :func:`load_config`;
    ``Config()`` is the embedded defaults."""

    region: str = "default"
    #: contract table -> how it appears in the extracts directory (tables left out: as in the contract)
    tables: dict[ContractTable, TableMapping] = Field(default_factory=dict)
    validation: ValidationSettings = ValidationSettings()
    #: without it and without an opt_outs table a run refuses to start (objections are never assumed)
    opt_outs: OptOutsSettings | None = None
    #: read and written as in the file: each objection type to the list of uses it excludes
    opt_out_policy: Annotated[
        OptOutPolicy, PlainValidator(_policy), PlainSerializer(lambda policy: policy.to_dict())
    ] = DEFAULT_POLICY
    #: read and written as in the file: ``{rates: round5}`` or ``{rates: midpoint6}``
    disclosure: Annotated[
        DisclosureRules, PlainValidator(_disclosure), PlainSerializer(lambda rules: {"rates": str(rules.rates)})
    ] = DEFAULT_RULES
    mlflow: MlflowSettings = MlflowSettings()
    practice_list: PracticeListSettings = PracticeListSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    _source: str = PrivateAttr(default="embedded defaults")

    @field_validator("tables")
    @classmethod
    def _mapped_columns_are_in_the_contract(cls, tables: dict[str, TableMapping]) -> dict[str, TableMapping]:
        for name, mapping in tables.items():
            for contract_name in mapping.columns:
                if contract_name not in TABLES[name].column_names:
                    raise invalid(
                        (name, "columns", contract_name),
                        f"no such column in the contract for {name} (columns: {', '.join(TABLES[name].column_names)})",
                        mapping.columns[contract_name],
                    )
            seen: dict[str, str] = {}
            for contract_name, source in mapping.columns.items():
                if source in seen:
                    raise invalid(
                        (name, "columns", contract_name),
                        f"the source column is already mapped to {seen[source]}",
                        source,
                    )
                seen[source] = contract_name
        return tables

    @property
    def source(self) -> str:
        """The file this configuration was read from, or ``"embedded defaults"``."""
        return self._source

    @property
    def batch_rows(self) -> int:
        return self.validation.batch_rows

    @property
    def expected_empty(self) -> frozenset[str]:
        return self.validation.expected_empty

    @property
    def practice_drop_warning_share(self) -> float:
        return self.validation.practice_drop_warning_share

    @property
    def opt_outs_applied_upstream(self) -> str | None:
        return self.opt_outs.applied_upstream if self.opt_outs else None

    @property
    def tracking_uri(self) -> str | None:
        return self.mlflow.tracking_uri

    def mapping(self, table_name: str) -> TableMapping:
        return self.tables.get(table_name, TableMapping())


def load_config(path: Path | str | None = None) -> Config:
    """Read a YAML configuration; ``None`` gives the embedded defaults (an empty file too).

    Raises
    ------
    ConfigError
        One line naming the file and the key, when the file is missing, unreadable or not
        YAML, or a key is unknown, of the wrong type, out of range, or maps a table or column
        the contract does not have.
    """
    if path is None:
        return Config()
    config = load_settings(Config, Path(path), "configuration", empty_is_default=True)
    config._source = str(path)
    return config


def load_settings(model: type[S], path: Path, what: str, empty_is_default: bool = False) -> S:
    """Read the YAML file ``path`` as ``model``; ``what`` names the kind of file in messages.

    Raises
    ------
    ConfigError
        ``<path>: <key path>: <what is wrong> (got <value>)``, one line, for the first problem
        (with how many more there are).
    """
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: cannot read the {what} ({first})") from None
    if raw is None and empty_is_default:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys to values (got {_kind(raw)})")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """The first problem of a validation error as ``key.path[i].key: what is wrong (got value)``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _key_path(first["loc"])
    line = f"{where}: {_message(first)}" if where else _message(first)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def _key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # the problem is a mapping's key, already named by the part before
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_MUST_BE = {
    "missing": "required key is missing",
    "model_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "frozen_set_type": "must be a list",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
}


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return _MUST_BE[kind]
    if kind in ("enum", "literal_error"):
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        message = f"must be one of {', '.join(choices)}"
    elif kind in _MUST_BE:
        message = _MUST_BE[kind]
    else:
        message = re.sub(r"^\w+ should ", "must ", error["msg"].removeprefix("Value error, "))
    if kind == "unknown_key":
        return message
    return f"{message} (got {_kind(error['input'])})"


def _kind(value: Any) -> str:
    """A value as a message shows it: scalars as written, containers by kind."""
    if value is None:
        return "nothing"
    if isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, list) and len(value) <= 10 and all(isinstance(v, bool | int | float | str) for v in value):
        return f"[{', '.join(map(repr, value))}]"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)
