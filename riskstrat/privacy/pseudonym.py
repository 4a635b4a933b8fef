"""Keyed pseudonyms: HMAC-SHA256 of the NHS number under the region key (``interface.md``).

``pseudonym = hex(HMAC-SHA256(key=UTF-8 bytes of the region key, msg=ASCII of the 10-digit
NHS number))``, lower case, 64 characters. The definition is fixed so a data provider can
pseudonymise at source with the same region key and its extracts link with riskstrat's.
An unkeyed hash would not do: there are only about a billion NHS numbers, so anyone could
hash them all and reverse it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PSEUDONYM_PATTERN", "PseudonymMap", "pseudonym", "pseudonymise"]

PSEUDONYM_PATTERN = r"^[0-9a-f]{64}$"


def pseudonym(nhs_number: str, key: str) -> str:
    """The region pseudonym of one NHS number (10 digits, no spaces)."""
    return hmac.new(key.encode("utf-8"), nhs_number.encode("ascii"), hashlib.sha256).hexdigest()


def pseudonymise(nhs_numbers: Iterable[str], key: str) -> list[str]:
    """Pseudonyms of many NHS numbers, in order."""
    mac = hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256)
    out = []
    for n in nhs_numbers:
        h = mac.copy()
        h.update(n.encode("ascii"))
        out.append(h.hexdigest())
    return out


class PseudonymMap:
    """NHS number -> pseudonym for a known set of numbers, applied to whole Arrow columns."""

    def __init__(self, nhs_numbers: pa.Array, key: str):
        numbers = pc.unique(nhs_numbers.cast(pa.string())).drop_null()
        self._index(numbers, pa.array(pseudonymise(numbers.to_pylist(), key), pa.string()))

    @classmethod
    def from_pairs(cls, numbers: pa.Array, pseudonyms: pa.Array) -> PseudonymMap:
        """A map of pseudonyms computed elsewhere (e.g. on Spark's executors), pair by pair."""
        out = cls.__new__(cls)
        out._index(numbers, pseudonyms)
        return out

    def _index(self, numbers: pa.Array, pseudonyms: pa.Array) -> None:
        self.numbers, self.pseudonyms = numbers, pseudonyms
        # NHS numbers are 10 digits: looked up as integers in a hash table built once (pandas'
        # index of the map's numbers keeps it), one probe per number. A binary search of a sorted
        # array took 21 cache-missing steps per number: 81 s of the pseudonymise stage at 2,000,000
        # people when the extracts come in date order, where each batch holds numbers of hundreds
        # of thousands of people (docs/performance.md, "Extracts in date order")
        self._positions = pd.Index(np.asarray(pc.cast(numbers, pa.int64()), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.numbers)

    @functools.cached_property
    def person_keys(self) -> np.ndarray:
        """Each map position's :data:`~riskstrat.schema.PERSON_KEY`: the rank of its pseudonym
        among the map's pseudonyms sorted as text (0, 1, …). A function of the pseudonyms alone,
        so it says nothing about NHS numbers; and it sorts as the pseudonyms do."""
        order = np.asarray(pc.sort_indices(self.pseudonyms), dtype=np.int64)
        keys = np.empty(len(order), dtype=np.int32)
        keys[order] = np.arange(len(order), dtype=np.int32)
        return keys

    def indices(self, nhs_numbers: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Position in the map of each NHS number of a column (every number must be in the map).

        A dictionary-encoded column (as Parquet stores a column of repeated values, read with
        ``read_dictionary``) is looked up once per distinct number of each chunk's dictionary, not
        once per row: a person's rows repeat their number."""
        if isinstance(nhs_numbers, pa.ChunkedArray):
            parts = [self.indices(chunk) for chunk in nhs_numbers.chunks]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if pa.types.is_dictionary(nhs_numbers.type):
            if nhs_numbers.null_count:
                raise AssertionError("a missing NHS number in the pseudonym map's input")  # internal error
            at = self.indices(nhs_numbers.dictionary)
            return at[np.asarray(nhs_numbers.indices.to_numpy(zero_copy_only=False), dtype=np.intp)]
        keys = np.asarray(pc.cast(nhs_numbers, pa.int64()), dtype=np.int64)
        at = self._positions.get_indexer(keys)
        if len(at) and at.min() < 0:
            raise AssertionError("an NHS number outside the pseudonym map")  # internal error
        return at

    def apply(self, nhs_numbers: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Pseudonyms for a column of NHS numbers (every number must be in the map)."""
        return self.pseudonyms.take(pa.array(self.indices(nhs_numbers)))

    def lookup(self, nhs_numbers: list[str]) -> np.ndarray:
        return np.asarray(self.apply(pa.array(nhs_numbers, pa.string())).to_numpy(zero_copy_only=False))
