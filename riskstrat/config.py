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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from riskstrat.errors import ConfigError
from riskstrat.privacy.disclosure import DEFAULT_RULES, DisclosureRules
from riskstrat.privacy.optout import DEFAULT_POLICY, OptOutPolicy, OptOutType, Use
from riskstrat.schema import TABLES

__all__ = ["DEFAULT_CONFIG", "DROP_WARNING_SHARE", "Config", "TableMapping", "load_config"]

#: a practice list shorter than last month's by more than this share raises a warning
DROP_WARNING_SHARE = 0.2

#: the embedded defaults written out; shipped inside the package (riskstrat/defaults/configs/, package
#: data in pyproject.toml) as the one copy, which users copy into the repository's configs/ to edit
#: (the same choice as the model specifications, riskstrat/modelling/spec.py)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "defaults" / "configs" / "default.yaml"
_KNOWN_KEYS = {"tables", "region", "validation", "opt_out_policy", "opt_outs", "mlflow", "disclosure"}


@dataclass(frozen=True)
class TableMapping:
    """How one contract table appears in a user's extracts directory."""

    file: str | None = None  # file name; default <table>.parquet or <table>.csv
    columns: dict[str, str] = field(default_factory=dict)  # contract name -> source name

    def source_name(self, contract_name: str) -> str:
        return self.columns.get(contract_name, contract_name)


@dataclass(frozen=True)
class Config:
    """Parsed configuration. Build with :func:`load_config`."""

    tables: dict[str, TableMapping] = field(default_factory=dict)
    region: str = "default"
    batch_rows: int = 1_000_000
    opt_out_policy: OptOutPolicy = DEFAULT_POLICY
    tracking_uri: str | None = None  # None: the embedded store in the work directory
    #: who applied patients' objections before the extracts arrived (e.g. "DSCRO"); without it
    #: and without an opt_outs table a run refuses to start (objections are never assumed)
    opt_outs_applied_upstream: str | None = None
    #: required tables that may arrive with no rows in this region (otherwise no rows stops the run)
    expected_empty: frozenset[str] = frozenset()
    practice_drop_warning_share: float = DROP_WARNING_SHARE
    disclosure: DisclosureRules = DEFAULT_RULES
    source: str = "embedded defaults"

    def mapping(self, table_name: str) -> TableMapping:
        return self.tables.get(table_name, TableMapping())


def _fail(path: Path | str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def load_config(path: Path | str | None = None) -> Config:
    """Read a YAML configuration; ``None`` gives the embedded defaults.

    Raises
    ------
    ConfigError
        When the file is missing or malformed, or maps a table or column the contract
        does not have.
    """
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise _fail(path, "configuration file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, f"cannot read configuration ({first})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "configuration must be a mapping of keys to values")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise _fail(path, f"unknown key(s) {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
    tables: dict[str, TableMapping] = {}
    for name, spec in (raw.get("tables") or {}).items():
        if name not in TABLES:
            raise _fail(path, f"tables.{name}: no such table in the data contract")
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - {"file", "columns"}:
            raise _fail(path, f"tables.{name}: expected keys 'file' and/or 'columns'")
        columns = {str(k): str(v) for k, v in (spec.get("columns") or {}).items()}
        bad = [c for c in columns if c not in TABLES[name].column_names]
        if bad:
            raise _fail(path, f"tables.{name}.columns: {bad} not in the contract for {name}")
        sources = list(columns.values())
        if len(set(sources)) != len(sources):
            raise _fail(path, f"tables.{name}.columns: a source column is mapped twice")
        tables[name] = TableMapping(file=spec.get("file"), columns=columns)
    validation = raw.get("validation") or {}
    batch_rows = int(validation.get("batch_rows", 1_000_000))
    if batch_rows < 1:
        raise _fail(path, "validation.batch_rows must be a positive integer")
    expected_empty = validation.get("expected_empty") or []
    if not isinstance(expected_empty, list) or set(map(str, expected_empty)) - set(TABLES):
        raise _fail(path, f"validation.expected_empty must list contract tables ({', '.join(TABLES)})")
    drop_share = validation.get("practice_drop_warning_share", DROP_WARNING_SHARE)
    if not isinstance(drop_share, int | float) or not 0 < drop_share <= 1:
        raise _fail(path, "validation.practice_drop_warning_share must be a share between 0 and 1 (e.g. 0.2)")
    upstream = (raw.get("opt_outs") or {}).get("applied_upstream") if isinstance(raw.get("opt_outs"), dict) else None
    if raw.get("opt_outs") is not None and (not isinstance(raw.get("opt_outs"), dict) or not upstream):
        raise _fail(path, "opt_outs: expected 'applied_upstream: <who applied the objections>' (e.g. DSCRO)")
    return Config(
        tables=tables,
        region=str(raw.get("region", "default")),
        batch_rows=batch_rows,
        opt_out_policy=_policy(path, raw.get("opt_out_policy")),
        tracking_uri=_tracking_uri(path, raw.get("mlflow")),
        opt_outs_applied_upstream=str(upstream) if upstream else None,
        expected_empty=frozenset(map(str, expected_empty)),
        practice_drop_warning_share=float(drop_share),
        disclosure=_disclosure(path, raw.get("disclosure")),
        source=str(path),
    )


def _tracking_uri(path: Path, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"tracking_uri"}:
        raise _fail(path, "mlflow: expected the key 'tracking_uri'")
    uri = raw.get("tracking_uri")
    if uri is not None and not isinstance(uri, str):
        raise _fail(path, "mlflow.tracking_uri must be a URI such as http://mlflow.internal:5000")
    return uri


def _disclosure(path: Path, raw: Any) -> DisclosureRules:
    """The disclosure section: how rates are rounded (counts are always redacted 1-7 and rounded to 5)."""
    if raw is None:
        return DEFAULT_RULES
    if not isinstance(raw, dict) or set(raw) - {"rates"} or raw.get("rates") not in ("round5", "midpoint6"):
        raise _fail(path, "disclosure: expected 'rates: round5' or 'rates: midpoint6'")
    return DisclosureRules(rates=raw["rates"])


def _policy(path: Path, raw: Any) -> OptOutPolicy:
    """The opt-out policy section: each objection type maps to the uses it excludes."""
    if raw is None:
        return DEFAULT_POLICY
    if not isinstance(raw, dict):
        raise _fail(path, "opt_out_policy must map type1/ndoo to a list of uses")
    unknown = set(raw) - {k.value for k in OptOutType}
    if unknown:
        raise _fail(path, f"opt_out_policy: unknown opt-out type(s) {sorted(unknown)}")
    known_uses = [u.value for u in Use]
    excludes = {}
    for kind in OptOutType:
        uses = raw.get(kind.value, known_uses)
        if not isinstance(uses, list):
            raise _fail(path, f"opt_out_policy.{kind.value} must be a list of uses")
        bad = [u for u in uses if u not in known_uses]
        if bad:
            raise _fail(path, f"opt_out_policy.{kind.value}: unknown use(s) {bad}; uses are {known_uses}")
        excludes[kind] = frozenset(Use(u) for u in uses)
    return OptOutPolicy(excludes)
