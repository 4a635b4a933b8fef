"""Clinical and organisation code types, validated in bulk.

Each code type knows two things about a value:

* its **shape** (a regular expression): a value of the wrong shape is not a code of this
  type at all, and the row is quarantined;
* whether the value is **known**: a well-shaped value that cannot be a real code (an
  ICD-10 category outside every chapter, a BNF code in a chapter that does not exist, a
  SNOMED CT identifier whose Verhoeff check digit or partition is wrong). Unknown codes
  are kept (they match no code list, so they change no feature) and reported, counted.

All checks work on whole Arrow arrays at once; ``None`` (missing) values are neither
shaped nor known, so callers decide what a missing value means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "BNF_CHAPTERS",
    "CODE_TYPES",
    "ICD10_CHAPTERS",
    "CodeType",
    "is_known",
    "is_well_shaped",
    "verhoeff_valid",
]


class CodeType(StrEnum):
    """The code systems the data contract uses."""

    ICD10 = "icd10"
    ICD10_LIST = "icd10_list"  # ICD-10 codes separated by ';'
    OPCS4 = "opcs4"
    SNOMED = "snomed"
    BNF = "bnf"
    DMD = "dmd"
    ODS_PRACTICE = "ods_practice"
    ODS_PROVIDER = "ods_provider"
    PCN = "pcn"
    SUB_ICB = "sub_icb"
    LSOA = "lsoa"
    TREATMENT_FUNCTION = "treatment_function"
    DISCHARGE_DESTINATION = "discharge_destination"


@dataclass(frozen=True)
class _Spec:
    pattern: str
    description: str
    known: str | None = field(default=None)  # name of the 'known' check, if any


_ICD10_ONE = r"[A-Z][0-9]{2}[0-9X]?"

CODE_TYPES: dict[CodeType, _Spec] = {
    CodeType.ICD10: _Spec(rf"^{_ICD10_ONE}$", "ICD-10 code, no dot, 3 or 4 characters (e.g. J441)", "icd10_chapter"),
    CodeType.ICD10_LIST: _Spec(
        rf"^{_ICD10_ONE}(;{_ICD10_ONE})*$",
        "ICD-10 codes, no dots, separated by ';'",
        "icd10_chapter",
    ),
    CodeType.OPCS4: _Spec(r"^[A-Z][0-9]{2,3}$", "OPCS-4 code, no dot (e.g. W371)", "opcs4_chapter"),
    CodeType.SNOMED: _Spec(r"^[1-9][0-9]{5,17}$", "SNOMED CT identifier: 6 to 18 digits", "snomed_identifier"),
    CodeType.BNF: _Spec(
        r"^[0-9]{4}[0-9A-Z]{11}$",
        "15-character BNF presentation code (e.g. 0206020A0AAAAAA)",
        "bnf_chapter",
    ),
    CodeType.DMD: _Spec(r"^[1-9][0-9]{5,17}$", "dm+d concept identifier: 6 to 18 digits"),
    CodeType.ODS_PRACTICE: _Spec(r"^[A-Z][0-9]{5}$", "ODS code of a GP practice (e.g. G82001)"),
    CodeType.ODS_PROVIDER: _Spec(r"^[A-Z0-9]{3,5}$", "ODS code of a provider or site (3-5 characters)"),
    CodeType.PCN: _Spec(r"^U[0-9]{5}$", "ODS code of a primary care network (e.g. U12345)"),
    CodeType.SUB_ICB: _Spec(r"^[0-9A-Z]{3}$", "sub-ICB location code (3 characters)"),
    CodeType.LSOA: _Spec(r"^[EW]01[0-9]{6}$", "LSOA 2021 code (e.g. E01024000)"),
    CodeType.TREATMENT_FUNCTION: _Spec(r"^[0-9A-Z]{3}$", "treatment function code (3 characters)"),
    CodeType.DISCHARGE_DESTINATION: _Spec(r"^[0-9]{2}$", "discharge destination (2 digits)"),
}

# WHO ICD-10 (2019) chapter blocks, by 3-character category.
ICD10_CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("A00", "B99", "I Certain infectious and parasitic diseases"),
    ("C00", "D48", "II Neoplasms"),
    ("D50", "D89", "III Diseases of the blood and immune mechanism"),
    ("E00", "E90", "IV Endocrine, nutritional and metabolic diseases"),
    ("F00", "F99", "V Mental and behavioural disorders"),
    ("G00", "G99", "VI Diseases of the nervous system"),
    ("H00", "H59", "VII Diseases of the eye and adnexa"),
    ("H60", "H95", "VIII Diseases of the ear and mastoid process"),
    ("I00", "I99", "IX Diseases of the circulatory system"),
    ("J00", "J99", "X Diseases of the respiratory system"),
    ("K00", "K95", "XI Diseases of the digestive system"),
    ("L00", "L99", "XII Diseases of the skin and subcutaneous tissue"),
    ("M00", "M99", "XIII Diseases of the musculoskeletal system"),
    ("N00", "N99", "XIV Diseases of the genitourinary system"),
    ("O00", "O99", "XV Pregnancy, childbirth and the puerperium"),
    ("P00", "P96", "XVI Certain conditions originating in the perinatal period"),
    ("Q00", "Q99", "XVII Congenital malformations"),
    ("R00", "R99", "XVIII Symptoms, signs and abnormal findings"),
    ("S00", "T98", "XIX Injury, poisoning and other consequences of external causes"),
    ("V01", "Y98", "XX External causes of morbidity and mortality"),
    ("Z00", "Z99", "XXI Factors influencing health status"),
    ("U00", "U85", "XXII Codes for special purposes"),
)

# BNF chapters that exist (16 and 17 are not used).
BNF_CHAPTERS: frozenset[str] = frozenset([f"{c:02d}" for c in range(1, 16)] + [f"{c:02d}" for c in range(18, 24)])

_VERHOEFF_D = np.array(
    [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ],
    dtype=np.int8,
)


def _verhoeff_permutations() -> np.ndarray:
    """Row i is the permutation (1 5 7 6 2 8 3 0 9 4) applied i times."""
    first = np.array([1, 5, 7, 6, 2, 8, 3, 0, 9, 4], dtype=np.int8)
    rows = [np.arange(10, dtype=np.int8)]
    for _ in range(7):
        rows.append(first[rows[-1]])
    return np.stack(rows)


_VERHOEFF_P = _verhoeff_permutations()


def verhoeff_valid(codes: list[str] | np.ndarray) -> np.ndarray:
    """True where a digit string carries a valid Verhoeff check digit (SNOMED CT ids).

    Parameters
    ----------
    codes : sequence of str, length n
        Strings of digits (any length up to 18).

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    arr = np.asarray(codes, dtype="U18")
    n = arr.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    digits_only = np.char.isdigit(arr)  # False for "" and for any non-digit
    arr = np.where(digits_only, arr, "0")
    lengths = np.char.str_len(arr)
    width = int(lengths.max())
    # Right-align the digits so position 0 is the check digit (Verhoeff works right to left).
    padded = np.char.rjust(arr, width, "0").astype(f"U{width}")
    digits = padded.view("U1").reshape(n, width)[:, ::-1].astype(np.int8)
    state = np.zeros(n, dtype=np.int8)
    for i in range(width):
        live = i < lengths
        step = _VERHOEFF_D[state, _VERHOEFF_P[i % 8, digits[:, i]]]
        state = np.where(live, step, state)
    return (state == 0) & digits_only


def _as_string_array(values: pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(pa.string())
    return values


def is_well_shaped(values: pa.Array, code_type: CodeType) -> np.ndarray:
    """True where the value has the shape of a ``code_type`` code; False where missing.

    The pattern is matched once per distinct value: a batch of codes holds few (a few hundred
    BNF codes in 100,000 prescriptions), and hashing a value is several times cheaper than
    matching it against a regular expression."""
    encoded = _as_string_array(values).dictionary_encode()
    matched = pc.match_substring_regex(encoded.dictionary, CODE_TYPES[code_type].pattern)
    return pc.fill_null(pc.take(matched, encoded.indices), False).to_numpy(zero_copy_only=False)


def _icd10_category_known(categories: np.ndarray) -> np.ndarray:
    known = np.zeros(categories.shape[0], dtype=bool)
    for low, high, _ in ICD10_CHAPTERS:
        known |= (categories >= low) & (categories <= high)
    return known


def is_known(values: pa.Array, code_type: CodeType) -> np.ndarray:
    """True where a well-shaped value could be a real code of ``code_type``.

    Only meaningful on values for which :func:`is_well_shaped` is True; code types with no
    'known' check return True for every value. The check runs once per distinct value.
    """
    values = _as_string_array(values)
    n = len(values)
    if CODE_TYPES[code_type].known is None or n == 0:
        return np.ones(n, dtype=bool)
    encoded = pc.fill_null(values, "").dictionary_encode()
    distinct = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=str)
    known_distinct = _known_distinct(distinct, code_type)
    return known_distinct[encoded.indices.to_numpy(zero_copy_only=False)]


def _known_distinct(strings: np.ndarray, code_type: CodeType) -> np.ndarray:
    kind = CODE_TYPES[code_type].known
    if kind == "icd10_chapter":
        if code_type is CodeType.ICD10_LIST:  # known when every code of the list is
            lists = pc.split_pattern(pa.array(strings, pa.string()), ";")
            categories = pc.utf8_slice_codeunits(pc.list_flatten(lists), 0, 3).to_numpy(zero_copy_only=False)
            unknown = ~_icd10_category_known(np.asarray(categories, dtype="U3"))
            owner = pc.list_parent_indices(lists).to_numpy()
            return np.bincount(owner[unknown], minlength=len(strings)) == 0
        return _icd10_category_known(strings.astype("U3"))
    if kind == "bnf_chapter":
        return np.isin(strings.astype("U2"), list(BNF_CHAPTERS))
    if kind == "opcs4_chapter":
        first = strings.astype("U1")
        return (first != "I") & (first != "O")
    if kind == "snomed_identifier":
        # Partition identifier (2nd and 3rd digits from the right): 00 or 10 for concepts.
        partition = np.array([s[-3:-1] for s in strings], dtype="U2")
        return verhoeff_valid(strings) & np.isin(partition, ["00", "10"])
    raise AssertionError(f"no 'known' check called {kind}")
