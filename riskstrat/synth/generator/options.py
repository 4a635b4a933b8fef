"""What to generate: options, day numbers, and the period simulated."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_EXTRACT_DATE", "NEVER", "YEAR", "SynthOptions", "day_number"]

DEFAULT_EXTRACT_DATE = dt.date(2026, 10, 1)
_EPOCH = dt.date(1970, 1, 1)
YEAR = 365.25
NEVER = np.int64(10**7)  # a day number far beyond any extract


def day_number(d: dt.date) -> int:
    return (d - _EPOCH).days


@dataclass(frozen=True)
class SynthOptions:
    """What to generate. ``patients`` counts everyone who appears in the extracts over
    the ``years`` simulated (about 75% of them are registered on the extract date)."""

    patients: int = 10_000
    seed: int = 42
    years: int = 7
    extract_date: dt.date = DEFAULT_EXTRACT_DATE
    fault_rate: float = 0.0
    chunk_size: int = 100_000
    practices: int | None = None  # default: about 8,000 registered people per practice

    @property
    def end(self) -> int:
        return day_number(self.extract_date)

    @property
    def start(self) -> int:
        return self.end - 365 * self.years

    def boundaries(self) -> list[int]:
        """As-of day numbers B_0 … B_years (the last is the extract date)."""
        return [self.start + 365 * k for k in range(self.years + 1)]
