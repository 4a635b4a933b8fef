"""Population groups that reports and the fairness audit break people down by.

Age bands, IMD quintiles and sex in words, each computed from the feature table's
``age_years``, ``imd_decile`` and ``sex`` in one place.

Two age-band schemes are declared, on purpose:

* :data:`FAIRNESS_AGE_BANDS` (0-17, 18-39, 40-64, 65-79, 80+) for the fairness audit at
  training, where every group must hold enough people *and outcomes* for a stable
  calibration and error rate in a validation sample; a single 80+ band keeps the oldest
  group large enough.
* :data:`COMMISSIONER_AGE_BANDS` (0-17, 18-39, 40-64, 65-74, 75-84, 85+) for commissioners'
  aggregates, which count people (small numbers are suppressed) and follow the older-age
  bands commissioners plan services by (75+ frailty services, 85+).

Unifying them would change either the published aggregates or the audit's groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskstrat.schema import SEX_LABELS

__all__ = [
    "COMMISSIONER_AGE_BANDS",
    "FAIRNESS_AGE_BANDS",
    "UNKNOWN_QUINTILE",
    "AgeBands",
    "imd_quintile",
    "sex_in_words",
]


@dataclass(frozen=True)
class AgeBands:
    """A named banding of age in whole years: band ``i`` holds ages ``edges[i] < age <= edges[i + 1]``."""

    name: str
    edges: tuple[int, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.labels) + 1:
            raise ValueError(f"age bands {self.name}: one more edge than labels")

    def of(self, ages: pd.Series) -> pd.Series:
        """The band label of each age (as strings)."""
        return pd.cut(ages, list(self.edges), labels=list(self.labels)).astype(str)


FAIRNESS_AGE_BANDS = AgeBands("fairness", (-1, 17, 39, 64, 79, 200), ("0-17", "18-39", "40-64", "65-79", "80+"))
COMMISSIONER_AGE_BANDS = AgeBands(
    "commissioner", (-1, 17, 39, 64, 74, 84, 200), ("0-17", "18-39", "40-64", "65-74", "75-84", "85+")
)

#: the quintile of people whose LSOA (and so IMD decile, 0) is not known
UNKNOWN_QUINTILE = "unknown"


def imd_quintile(deciles: pd.Series) -> np.ndarray:
    """IMD quintile ("1" most deprived … "5") of each IMD decile; decile 0 (not known) is "unknown"."""
    return np.where(deciles == 0, UNKNOWN_QUINTILE, ((deciles + 1) // 2).astype(str))


def sex_in_words(sex: pd.Series) -> pd.Series:
    """Person Stated Gender Code in words (male, female, indeterminate, not known)."""
    return sex.astype(str).map(SEX_LABELS).fillna("not known")
