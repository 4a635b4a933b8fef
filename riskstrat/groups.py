"""Population groups that reports, reasons and the fairness audit break people down by.

Age bands, IMD quintiles, sex and eFI frailty categories, each computed from the feature
table's ``age_years``, ``imd_decile``, ``sex`` and ``efi_score`` in one place.

Sex is written the same way in every output (practice lists and pages, the commissioner
cohort table, aggregates and report, the fairness audit): one letter, M male, F female,
I indeterminate, U not known (:data:`riskstrat.schema.SEX_LETTERS`, from the Person Stated
Gender Code).

The eFI categories are those published with the electronic Frailty Index (Clegg A, Bates C,
Young J, et al. Development and validation of an electronic frailty index using routine
primary care electronic health record data. *Age and Ageing* 2016;45(3):353-360): fit
0-0.12, mild frailty >0.12-0.24, moderate frailty >0.24-0.36, severe frailty >0.36. With the
36 deficits of the index that is 0-4 deficits fit, 5-8 mild, 9-12 moderate, 13 or more severe.

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

from riskstrat.schema import SEX_LETTERS

__all__ = [
    "COMMISSIONER_AGE_BANDS",
    "EFI_CATEGORIES",
    "FAIRNESS_AGE_BANDS",
    "UNKNOWN_QUINTILE",
    "UNKNOWN_SEX",
    "AgeBands",
    "EfiCategory",
    "efi_category",
    "imd_quintile",
    "is_frail",
    "sex_letter",
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


#: the letter of a code that is not a Person Stated Gender Code (read as not known)
UNKNOWN_SEX = SEX_LETTERS["0"]


def sex_letter(sex: pd.Series) -> pd.Series:
    """Person Stated Gender Code as every output writes it: M, F, I (indeterminate), U (not known)."""
    return sex.astype(str).map(SEX_LETTERS).fillna(UNKNOWN_SEX)


@dataclass(frozen=True)
class EfiCategory:
    """An eFI category: scores above the previous category's ``upper`` up to this ``upper``."""

    name: str  # "fit", "mild", "moderate", "severe"
    upper: float  # the highest score in the category (inclusive)
    words: str  # as a clinician reads it: "fit", "mild frailty", ...


#: The published eFI categories (Clegg et al. 2016), lowest first; upper limits inclusive.
EFI_CATEGORIES = (
    EfiCategory("fit", 0.12, "fit"),
    EfiCategory("mild", 0.24, "mild frailty"),
    EfiCategory("moderate", 0.36, "moderate frailty"),
    EfiCategory("severe", float("inf"), "severe frailty"),
)
#: categories at or above which a person counts as frail for service planning (the
#: commissioners' "frail and elderly" cohort: moderate or severe frailty)
_FRAIL_FROM = "moderate"


def efi_category(score: float) -> EfiCategory:
    """The eFI category of one score: 0.12 is fit, 0.13 mild, 0.24 mild, 0.25 moderate, 0.36
    moderate, 0.37 severe. The score is taken to 3 decimals first (as the feature table holds
    it), so 13 deficits of 36 (0.361) are severe."""
    s = round(float(score), 3)
    return next(c for c in EFI_CATEGORIES if s <= c.upper)


def is_frail(scores: pd.Series) -> pd.Series:
    """True where the eFI category is moderate frailty or worse."""
    limit = next(c for c in EFI_CATEGORIES if c.name == _FRAIL_FROM)
    below = EFI_CATEGORIES[EFI_CATEGORIES.index(limit) - 1].upper
    return scores.round(3) > below
