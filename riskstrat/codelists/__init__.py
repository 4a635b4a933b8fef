"""Published clinical code lists, versioned, with provenance.

The CSV files under ``riskstrat/codelists/data/`` are copies of ``shared/reference/codelists``
(SNOMED CT QOF clusters, ICD-10 Charlson/Elixhauser/HFRS, eFI deficits; ``manifest.csv``
and ``README.md`` record source repository, path, commit and version of each) plus the BNF
presentation and section codes in ``data/bnf/`` (provenance in ``data/bnf/README.md``).
Nothing here is invented; lists are read, never edited, by code.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

__all__ = ["DATA_DIR", "codelist", "codes", "manifest", "snomed_cluster"]

DATA_DIR = Path(__file__).resolve().parent / "data"
_PCD = "snomed/nhsd-primary-care-domain-refsets-{}_cod.csv"


@cache
def codelist(path: str) -> tuple[dict[str, str], ...]:
    """Rows of one code list file (relative to ``data/``), as dicts of strings."""
    full = DATA_DIR / path
    if not full.is_file():
        raise FileNotFoundError(f"no code list {path} under {DATA_DIR}")
    with full.open(newline="", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def codes(path: str, **where: str) -> list[str]:
    """The ``code`` column of a code list, optionally filtered on other columns."""
    return [r["code"] for r in codelist(path) if all(r.get(k) == v for k, v in where.items())]


def snomed_cluster(cluster: str) -> list[str]:
    """Codes of an NHS England Primary Care Domain cluster, e.g. ``snomed_cluster("hf")``."""
    return codes(_PCD.format(cluster.lower()))


@cache
def manifest() -> dict[str, dict[str, str]]:
    """Provenance of each shared code list file, keyed by its path under ``data/``."""
    with (DATA_DIR / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}
