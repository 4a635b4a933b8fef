"""The randomised hold-out: people scored every month but never shown on a practice list.

Who is held out is decided by a keyed hash of the pseudonym, not a random draw: BLAKE2b keyed
with a key derived from the region key (:func:`riskstrat.privacy.keys.derived_key`, purpose
``"hold-out v1"``) maps each pseudonym to a number in [0, 1), and a person is held out when it
falls below the configured share (``monitoring.holdout_share``). So

* the same people stay held out month after month (the pseudonym and the key do not change);
* raising the share keeps everyone already held out and adds more (the sets are nested);
* no one without the region key can tell who is held out, and the assignment is independent of
  anything about the person (the hash of a keyed pseudonym), which is what makes it randomised.

The key is never logged or written; the choice is recorded per person only in the exposure log
of the pseudonymised zone (``W/pseudonymised/exposure/<D>.parquet``, column ``held_out``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from riskstrat.privacy.keys import derived_key

__all__ = ["HOLDOUT_PURPOSE", "held_out", "holdout_unit"]

HOLDOUT_PURPOSE = "hold-out v1"


def holdout_unit(pseudonyms: Iterable[str], region_key: str) -> np.ndarray:
    """A number in [0, 1) per pseudonym from the keyed hash (the same for a person every month)."""
    key = derived_key(region_key, HOLDOUT_PURPOSE)
    values = [int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8, key=key).digest(), "big") for p in pseudonyms]
    return np.asarray(values, dtype=np.uint64) / np.float64(2**64)


def held_out(pseudonyms: Iterable[str], region_key: str, share: float) -> np.ndarray:
    """True for the people held out of the practice lists when ``share`` of everyone is."""
    pseudonyms = list(pseudonyms)
    if share <= 0:
        return np.zeros(len(pseudonyms), dtype=bool)
    return holdout_unit(pseudonyms, region_key) < share
