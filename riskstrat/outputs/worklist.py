"""What a practice can act on this month: changes since its previous list, its own care
register, the recently discharged, and the files its clinical system imports.

Each practice list (:func:`riskstrat.outputs.direct_care.practice_list`) is compared with the
practice's previous list: the scores at the latest earlier as-of date ``D'`` (whatever the
interval; :meth:`riskstrat.workdir.WorkDir.previous_scored`) of the people the pseudonymised
record placed at the practice on ``D'``. The comparison is by pseudonym, in memory, and only the
flags and the previous risk reach the practice's own list (identifiable zone).

Flags (``docs/outputs.md``):

* **new to the top bands**: in the top bands now (very high and high by default:
  :func:`riskstrat.outputs.commissioner.at_risk_bands`) and not in them on the previous list,
  including people who were not on it (they joined the practice or the population);
* **rising**: on the previous list and moved up a band, or risk up by at least
  ``practice_list.rising_points`` percentage points;
* **recently discharged**: an emergency spell ended in the ``practice_list.discharged_days``
  days before D;
* **on the register**: an entry of the practice's own care register (contract v1.1) recorded
  before D. With ``practice_list.care_register: exclude`` (the default) such patients stay on the
  list, marked, and are left out of the "to review" counts and of the import files.

On the first list (no earlier scores) nothing is new or rising, and the page says so.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from riskstrat.config import PracticeListSettings, RegisterHandling
from riskstrat.workdir import PracticeFiles, WorkDir

__all__ = [
    "CHANGE_COLUMNS",
    "IMPORT_DATE_FORMAT",
    "IMPORT_HEADER",
    "FlagCounts",
    "PreviousList",
    "flag_counts",
    "import_texts",
    "mark_changes",
    "previous_list",
    "reason_key",
    "write_import_files",
]

#: the columns :func:`mark_changes` adds to a practice list, in the order the CSV writes them
CHANGE_COLUMNS = [
    "previous_as_of",
    "previous_risk_score",
    "previous_risk_band",
    "change_points",
    "new_to_top_bands",
    "rising",
    "recently_discharged",
    "register_status",
    "register_recorded_date",
]
#: the header of an import file: what Accurx reads from a patient-list upload (columns named
#: exactly so, at most 250 patients a file: support.accurx.com, "How to manage my Patient Lists")
IMPORT_HEADER = ("NHS number", "Date of Birth")
#: dates of birth in import files as written in UK clinical systems: day/month/year
IMPORT_DATE_FORMAT = "%d/%m/%Y"


@dataclass(frozen=True)
class PreviousList:
    """The lists of the latest earlier month: ``as_of`` (None: there is none) and, by pseudonym,
    ``practice_code``, ``risk_score`` and ``risk_band`` of everyone scored then."""

    as_of: dt.date | None
    rows: pd.DataFrame

    def of(self, practice: str) -> pd.DataFrame:
        """The people on ``practice``'s previous list, indexed by pseudonym."""
        rows = self.rows[self.rows["practice_code"] == practice]
        return rows.set_index("pseudonym")[["risk_score", "risk_band"]]


def previous_list(wd: WorkDir, as_of: dt.date) -> PreviousList:
    """The scores of the latest as-of date before ``as_of`` with the practice each person was
    placed at then (from that date's feature table); an empty :class:`PreviousList` when there
    is no earlier date, or its feature table is gone."""
    empty = pd.DataFrame(
        {
            "pseudonym": pd.Series(dtype=object),
            "practice_code": pd.Series(dtype=object),
            "risk_score": pd.Series(dtype=float),
            "risk_band": pd.Series(dtype=object),
        }
    )
    before = wd.previous_scored(as_of)
    if before is None or not wd.features(before).exists():
        return PreviousList(None, empty)
    scores = pq.read_table(wd.scores(before), columns=["pseudonym", "risk_score", "risk_band"]).to_pandas()
    places = pq.read_table(wd.features(before), columns=["pseudonym", "practice_code"]).to_pandas()
    rows = scores.merge(places, on="pseudonym", how="inner", validate="one_to_one")
    return PreviousList(before, rows[list(empty.columns)])


def mark_changes(
    lst: pd.DataFrame,
    pseudonyms: list[str],
    previous: pd.DataFrame,
    previous_as_of: dt.date | None,
    bands: list[str],
    top_bands: list[str],
    discharged: set[str],
    register: pd.DataFrame,
    settings: PracticeListSettings,
) -> pd.DataFrame:
    """The practice list with :data:`CHANGE_COLUMNS` added.

    Parameters
    ----------
    lst : the list (one practice), highest risk first; ``pseudonyms`` its people in the same order.
    previous : the practice's previous list (:meth:`PreviousList.of`), indexed by pseudonym.
    previous_as_of : its as-of date; None: no earlier list (nothing is new or rising).
    bands : this month's band names, highest risk first; ``top_bands`` those that are "very high/high".
    discharged : pseudonyms with an emergency spell ended in the window before D.
    register : the practice's own register entries (``nhs_number``, ``status``, ``recorded_date``).
    settings : ``practice_list`` of the configuration (``rising_points``).

    ``change_points`` is the change in risk in percentage points (risk now minus risk then, times
    100; missing for people not on the previous list).
    """
    out = lst.copy()
    before = previous.reindex(pseudonyms)
    on_previous = before["risk_score"].notna().to_numpy()
    out["previous_as_of"] = "" if previous_as_of is None else previous_as_of.isoformat()
    out["previous_risk_score"] = before["risk_score"].to_numpy()
    out["previous_risk_band"] = before["risk_band"].to_numpy()
    change = (out["risk_score"].to_numpy(dtype=float) - before["risk_score"].to_numpy(dtype=float)) * 100
    out["change_points"] = np.round(change, 2)
    rank = {name: i for i, name in enumerate(bands)}  # 0: the highest band
    now_rank = out["risk_band"].map(rank).to_numpy(dtype=float)
    then_rank = before["risk_band"].map(rank).to_numpy(dtype=float)  # a band this model lacks: NaN, not compared
    up_a_band = on_previous & (now_rank < then_rank)
    risen = on_previous & (np.nan_to_num(change, nan=-np.inf) >= settings.rising_points - 1e-9)
    in_top_now = out["risk_band"].isin(top_bands).to_numpy()
    in_top_then = before["risk_band"].isin(top_bands).to_numpy()
    known = previous_as_of is not None
    out["new_to_top_bands"] = known & in_top_now & ~in_top_then
    out["rising"] = known & (up_a_band | risen)
    out["recently_discharged"] = np.isin(np.asarray(pseudonyms, dtype=object), list(discharged))
    entries = register.set_index("nhs_number") if len(register) else None
    if entries is None:
        out["register_status"] = ""
        out["register_recorded_date"] = ""
    else:
        found = entries.reindex(out["nhs_number"])
        out["register_status"] = found["status"].fillna("").to_numpy()
        dates = found["recorded_date"]
        out["register_recorded_date"] = [("" if pd.isna(v) else str(v)) for v in dates]
    return out


@dataclass(frozen=True)
class FlagCounts:
    """The summary of one practice's list: the patients "to review" in each flag (register
    patients left out under ``care_register: exclude``) and the patients on the register."""

    new_to_top_bands: int
    rising: int
    recently_discharged: int
    on_register: int
    register_excluded: bool
    first_list: bool

    def to_dict(self) -> dict[str, int]:
        return {
            "new_to_top_bands": self.new_to_top_bands,
            "rising": self.rising,
            "recently_discharged": self.recently_discharged,
            "on_register": self.on_register,
        }


def _to_review(marked: pd.DataFrame, settings: PracticeListSettings) -> pd.Series:
    """Rows that count as "to review" and go into the import files."""
    if settings.care_register is RegisterHandling.EXCLUDE:
        return marked["register_status"] == ""
    return pd.Series(True, index=marked.index)


def flag_counts(marked: pd.DataFrame, settings: PracticeListSettings) -> FlagCounts:
    """The counts of the practice's summary from its marked list (:func:`mark_changes`)."""
    review = _to_review(marked, settings)
    return FlagCounts(
        new_to_top_bands=int((marked["new_to_top_bands"] & review).sum()),
        rising=int((marked["rising"] & review).sum()),
        recently_discharged=int((marked["recently_discharged"] & review).sum()),
        on_register=int((marked["register_status"] != "").sum()),
        register_excluded=settings.care_register is RegisterHandling.EXCLUDE,
        first_list=(marked["previous_as_of"] == "").all() if len(marked) else True,
    )


def import_texts(numbers: list[str], births: list[dt.date], batch: int) -> tuple[list[str], str]:
    """The import files of one group of patients, in the order given: the Accurx-style CSVs
    (:data:`IMPORT_HEADER`, at most ``batch`` patients each) and the one-column list of NHS
    numbers (one a line, no header). No patients: no CSV, an empty list."""
    if len(numbers) != len(births):
        raise ValueError("one date of birth per NHS number")
    rows = [f"{n},{b.strftime(IMPORT_DATE_FORMAT)}\n" for n, b in zip(numbers, births, strict=True)]
    header = ",".join(IMPORT_HEADER) + "\n"
    parts = [header + "".join(rows[i : i + batch]) for i in range(0, len(rows), batch)]
    return parts, "".join(f"{n}\n" for n in numbers)


def write_import_files(
    files: PracticeFiles,
    marked: pd.DataFrame,
    births: list[dt.date],
    top_bands: list[str],
    settings: PracticeListSettings,
    write,
) -> dict[str, int]:
    """Write a practice's import files (:data:`riskstrat.workdir.IMPORT_GROUPS`) with
    ``write(text, path)``: the top bands and the recently discharged, highest risk first, each
    patient once; patients on the register left out under ``care_register: exclude``. ``births``: the
    dates of birth of ``marked``'s rows, from the vault. Returns the patients in each group."""
    review = _to_review(marked, settings).to_numpy()
    groups = {
        "top_bands": marked["risk_band"].isin(top_bands).to_numpy() & review,
        "recently_discharged": marked["recently_discharged"].to_numpy(dtype=bool) & review,
    }
    numbers = marked["nhs_number"].tolist()
    counts = {}
    for group, chosen in groups.items():
        idx = np.flatnonzero(chosen)
        parts, plain = import_texts([numbers[i] for i in idx], [births[i] for i in idx], settings.import_batch_size)
        for part, text in enumerate(parts, start=1):
            write(text, files.import_file(group, part))
        write(plain, files.nhs_numbers(group))
        counts[group] = len(idx)
    return counts


_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?\+?")


def reason_key(reason: str) -> str:
    """A reason without its numbers, for the page's reason filter: "3 emergency admissions" and
    "2 emergency admissions" are both "emergency admissions"."""
    return " ".join(_NUMBER.sub(" ", reason).split())
