"""NHS numbers: the Modulus 11 check, in bulk, and synthetic numbers.

An NHS number is ten digits; the tenth is a check digit. Multiply the first nine digits by
weights 10, 9, …, 2, sum, take the remainder on division by 11 and subtract it from 11; a
result of 11 means a check digit of 0, and a result of 10 means the nine digits can never
form a valid number (NHS Data Dictionary, NHS NUMBER).

Synthetic numbers (:func:`synthetic_nhs_numbers`) come first from the range beginning
``999`` that NHS England reserves for testing (about 909,000 valid numbers); a population
larger than that continues with numbers beginning ``998``, ``997``, …, which no UK range
allocates to patients. They are synthetic by construction and documented as such.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TEST_RANGE_PREFIX", "WEIGHTS", "check_digits", "is_valid", "synthetic_nhs_numbers"]

WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)
TEST_RANGE_PREFIX = 999


def check_digits(first_nine: np.ndarray) -> np.ndarray:
    """Check digit for each 9-digit stem; 10 where no check digit can make it valid.

    Parameters
    ----------
    first_nine : numpy.ndarray of int, shape (n,)
        The first nine digits as integers (0 … 999,999,999).
    """
    stems = np.asarray(first_nine, dtype=np.int64)
    total = np.zeros(stems.shape, dtype=np.int64)
    rest = stems.copy()
    for weight in range(2, 11):  # least significant digit carries weight 2
        total += (rest % 10) * weight
        rest //= 10
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def is_valid(values: pa.Array | list[str | None]) -> np.ndarray:
    """True where a value is exactly ten digits with a valid Modulus 11 check digit.

    Missing values, spaces, and any other characters are invalid.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    # ten bytes, each an ASCII digit: six times faster than the regular expression ^[0-9]{10}$
    shaped = pc.fill_null(pc.and_(pc.equal(pc.binary_length(arr), 10), pc.ascii_is_decimal(arr)), False)
    out = shaped.to_numpy(zero_copy_only=False).copy()
    if not out.any():
        return out
    ten = pc.filter(arr, shaped)
    # the digits straight from Arrow's buffer of the (contiguous, ten-byte) values, as an n x 10
    # matrix: a weighted sum per row, not nine passes of // and % over 64-bit integers
    offset_type = np.int64 if pa.types.is_large_string(ten.type) else np.int32
    start = np.frombuffer(ten.buffers()[1], offset_type, 1, ten.offset * np.dtype(offset_type).itemsize)[0]
    digits = np.frombuffer(ten.buffers()[2], np.uint8, 10 * len(ten), int(start)).reshape(-1, 10) - ord("0")
    check = 11 - (digits[:, :9].astype(np.int32) @ np.arange(10, 1, -1, dtype=np.int32)) % 11
    check[check == 11] = 0  # 10 stays 10: no digit can match it
    out[out] = check == digits[:, 9]
    return out


def synthetic_nhs_numbers(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct valid synthetic NHS numbers, as 10-character strings, in random order.

    The 999 test range is used first; beyond its ~909,000 valid numbers, ranges beginning
    998, 997, … (never allocated to patients) follow.
    """
    out: list[np.ndarray] = []
    need = n
    prefix = TEST_RANGE_PREFIX
    while need > 0:
        if prefix < 900:
            raise ValueError(f"cannot make {n} synthetic NHS numbers in the 9xx ranges")
        stems = prefix * 1_000_000 + rng.permutation(1_000_000)
        check = check_digits(stems)
        ok = check != 10
        numbers = stems[ok] * 10 + check[ok]
        out.append(numbers[:need])
        need -= min(need, numbers.shape[0])
        prefix -= 1
    numbers = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return numbers.astype("U10")
