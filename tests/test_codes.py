"""Clinical code types: shapes, 'known' checks, and the Verhoeff check of SNOMED CT ids."""

from __future__ import annotations

import glob
import os
import string

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstrat import codelists
from riskstrat.codes import CodeType, is_known, is_well_shaped, verhoeff_valid


def _verhoeff_reference(code: str) -> bool:
    """Textbook Verhoeff (dihedral group D5), written independently of riskstrat.codes."""
    mult = [[(j + i) % 5 + (5 if j >= 5 else 0) if i < 5 and j < 5 else 0 for j in range(10)] for i in range(10)]
    for i in range(10):
        for j in range(10):
            if i < 5 and j < 5:
                mult[i][j] = (i + j) % 5
            elif i < 5:
                mult[i][j] = 5 + (i + j - 5) % 5
            elif j < 5:
                mult[i][j] = 5 + (i - 5 - j) % 5
            else:
                mult[i][j] = (i - j) % 5
    perm = [list(range(10)), [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
    for _ in range(6):
        perm.append([perm[1][x] for x in perm[-1]])
    c = 0
    for i, ch in enumerate(reversed(code)):
        c = mult[c][perm[i % 8][int(ch)]]
    return c == 0


def test_known_snomed_concepts_pass_verhoeff():
    # Hypertensive disorder, Diabetes mellitus, Asthma, Heart failure, Chest pain.
    assert verhoeff_valid(["38341003", "73211009", "195967001", "84114007", "29857009"]).all()
    assert not verhoeff_valid(["38341004", "195967002", "12AB34", ""]).any()


def test_every_shared_snomed_code_is_a_valid_identifier():
    files = glob.glob(str(codelists.DATA_DIR / "snomed" / "*.csv"))
    assert len(files) >= 50
    for f in files:
        codes = codelists.codes(os.path.relpath(f, codelists.DATA_DIR))
        assert is_known(pa.array(codes), CodeType.SNOMED).all(), f


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=string.digits, min_size=6, max_size=18), min_size=1, max_size=40))
def test_verhoeff_matches_reference_on_mixed_lengths(codes):
    assert list(verhoeff_valid(codes)) == [_verhoeff_reference(c) for c in codes]


@pytest.mark.parametrize(
    ("code_type", "good", "bad"),
    [
        (CodeType.ICD10, ["J441", "I10X", "E11", "R69X"], ["J44.1", "j441", "J4", "J44123", "1441"]),
        (CodeType.ICD10_LIST, ["I10X;E119", "J44"], ["I10X,E119", "I10X;", ";J44"]),
        (CodeType.BNF, ["0206020A0AAAAAA", "0403030Q0AAAAAA"], ["0206020A0AAAAA", "BNF123", "0206020a0AAAAAA"]),
        (CodeType.SNOMED, ["29857009", "1049301000000100"], ["12AB34", "0298570", "12345"]),
        (CodeType.OPCS4, ["W371", "C75"], ["W37.1", "37W1"]),
        (CodeType.ODS_PRACTICE, ["G82001"], ["G8200", "82001G"]),
        (CodeType.LSOA, ["E01024000", "W01000001"], ["E0102400", "S01000001"]),
    ],
)
def test_shapes(code_type, good, bad):
    assert is_well_shaped(pa.array(good), code_type).all()
    assert not is_well_shaped(pa.array(bad), code_type).any()
    assert not is_well_shaped(pa.array([None], pa.string()), code_type).any()


def test_shapes_are_matched_per_distinct_value_and_mapped_back_to_each_row():
    good, bad = "0206020A0AAAAAA", "BNF123"
    values = pa.chunked_array([[good, None, bad, good, ""], [bad, good, None]])
    got = is_well_shaped(values, CodeType.BNF)
    assert got.tolist() == [True, False, False, True, False, False, True, False]


def test_icd10_known_means_inside_a_chapter():
    values = pa.array(["A00", "B99X", "D489", "D49", "E90", "E95X", "H95", "H96", "K95", "K97", "P96", "P97", "U07"])
    assert list(is_known(values, CodeType.ICD10)) == [
        True,
        True,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
    ]
    assert list(is_known(pa.array(["I10X;E119", "I10X;E95X"]), CodeType.ICD10_LIST)) == [True, False]


def test_bnf_chapters_16_and_17_do_not_exist():
    values = pa.array(["0206020A0AAAAAA", "1606020A0AAAAAA", "1706020A0AAAAAA", "2302000A0AAAAAA"])
    assert list(is_known(values, CodeType.BNF)) == [True, False, False, True]


def test_snomed_partition_must_be_a_concept():
    # 29857009 is a concept (partition 00); change the partition to 01 (description) and
    # repair the check digit: the result is a valid identifier, but not a concept.
    base = "298570" + "01"
    digit = next(d for d in string.digits if verhoeff_valid([base + d])[0])
    assert not is_known(pa.array([base + digit]), CodeType.SNOMED)[0]
    assert np.all(is_known(pa.array(["29857009"]), CodeType.SNOMED))
