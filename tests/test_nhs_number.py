"""NHS number Modulus 11: spec examples, and property tests against the nhs-number package."""

from __future__ import annotations

import string

import nhs_number
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskstrat.privacy.nhs_number import check_digits, is_valid, synthetic_nhs_numbers


def test_check_digit_worked_example():
    # 999 123 456 ?: 9*10+9*9+9*8+1*7+2*6+3*5+4*4+5*3+6*2 = 90+81+72+7+12+15+16+15+12 = 320;
    # 320 mod 11 = 1; 11 - 1 = 10 -> no valid check digit exists for this stem.
    assert check_digits(np.array([999123456]))[0] == 10
    # 999 000 001 ?: 9*10+9*9+9*8+1*2 = 245; 245 mod 11 = 3; 11 - 3 = 8.
    assert check_digits(np.array([999000001]))[0] == 8
    # remainder 0 -> check digit 0 (11 maps to 0): 999 000 005: 243+10=253=11*23.
    assert check_digits(np.array([999000005]))[0] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9990000018", True),
        ("9990000017", False),  # wrong check digit
        ("9990000050", True),  # check digit 0
        ("9991234560", False),  # stem with no valid check digit (10)
        ("999 000 0018", False),  # the contract says 10 digits: no spaces
        ("999000001", False),  # 9 digits
        ("99900000188", False),  # 11 digits
        ("999000001A", False),
        ("", False),
        (None, False),
    ],
)
def test_is_valid_examples(value, expected):
    assert bool(is_valid([value])[0]) is expected


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet=string.digits, min_size=10, max_size=10), min_size=1, max_size=50))
def test_agrees_with_nhs_number_package_on_digit_strings(values):
    # The package also rejects numbers in the Scottish CHI range (0101000000-3112999999) whose
    # first six digits are not a DDMMYY date; CHI is not an NHS number rule, so compare the
    # Modulus 11 check itself there and the package's whole verdict everywhere else.
    ours = is_valid(values)
    for v, ok in zip(values, ours, strict=True):
        modulus_11 = nhs_number.calculate_checksum(v[:9]) == int(v[9])
        assert bool(ok) is modulus_11
        if not nhs_number.REGION_SCOTLAND.contains_number(v):
            assert bool(ok) is nhs_number.is_valid(v)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=string.digits + " -aX", min_size=0, max_size=12), min_size=1, max_size=30))
def test_anything_not_ten_digits_is_invalid(values):
    ours = is_valid(values)
    for v, ok in zip(values, ours, strict=True):
        if ok:
            assert len(v) == 10 and v.isdigit() and nhs_number.is_valid(v)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=999_999_999))
def test_every_single_digit_change_of_a_valid_number_is_caught(stem):
    check = int(check_digits(np.array([stem]))[0])
    if check == 10:
        return
    number = f"{stem:09d}{check}"
    assert is_valid([number])[0]
    for pos in range(10):
        for d in string.digits:
            if d != number[pos]:
                changed = number[:pos] + d + number[pos + 1 :]
                assert not is_valid([changed])[0]  # Modulus 11 catches every single-digit error


def test_synthetic_numbers_are_valid_distinct_and_in_the_test_range_first():
    rng = np.random.default_rng(3)
    numbers = synthetic_nhs_numbers(20_000, rng)
    assert len(set(numbers)) == 20_000
    assert is_valid(list(numbers)).all()
    assert all(n.startswith("999") for n in numbers)


def test_synthetic_numbers_beyond_the_test_range_begin_with_nine():
    numbers = synthetic_nhs_numbers(1_000_000, np.random.default_rng(4))
    in_test_range = sum(n.startswith("999") for n in numbers)
    assert 905_000 < in_test_range < 912_000  # ~ 10/11 of a million stems are valid
    assert len(set(numbers)) == 1_000_000
    assert all(n.startswith("99") for n in numbers)
    assert is_valid(list(numbers[-1000:])).all()


def test_validity_read_from_arrow_buffers_matches_the_arithmetic_on_slices_and_large_strings():
    """``is_valid`` reads the digits from Arrow's value buffer: a sliced array (an offset into
    the buffer), large strings (64-bit offsets), nulls, other lengths, non-ASCII digits and
    every check digit give what Modulus 11 computed digit by digit gives."""
    import pyarrow as pa

    rng = np.random.default_rng(3)
    stems = rng.integers(0, 10**9, 20_000)
    values = [f"{s:09d}{d}" for s, d in zip(stems, rng.integers(0, 10, stems.size), strict=True)]
    values += [None, "", "999000001", "99900000181", "９９９０００００１８", "999 000 0018", "99900000 8"]

    def by_hand(v):
        if v is None or len(v) != 10 or not all("0" <= c <= "9" for c in v):
            return False
        check = 11 - sum(int(c) * w for c, w in zip(v[:9], range(10, 1, -1), strict=True)) % 11
        return (0 if check == 11 else check) == int(v[9])

    expected = np.array([by_hand(v) for v in values])
    assert 1_000 < expected.sum() < 5_000  # about one in ten random numbers is valid
    for kind in (pa.string(), pa.large_string()):
        arr = pa.array(["x"] * 3 + values, kind).slice(3)
        assert (is_valid(arr) == expected).all(), kind
        assert (is_valid(pa.chunked_array([arr.slice(0, 7), arr.slice(7)])) == expected).all(), kind
