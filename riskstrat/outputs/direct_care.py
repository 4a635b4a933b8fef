"""Direct-care lists: for each practice, its own registered patients by NHS number.

Each list holds only the patients registered at that practice on D (re-identified through
the vault, one practice at a time, audited), scored at D, highest risk first. Files appear
atomically: written under a temporary name in the same directory, then renamed.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd

from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.vault import OpenVault

__all__ = ["LIST_COLUMNS", "practice_list", "write_atomically"]

KEY_COUNTS = {
    "emergency_admissions_365d": "emergency_admissions_12m",
    "ae_attendances_365d": "ae_attendances_12m",
    "op_attendances_365d": "outpatient_attendances_12m",
    "ltc_count": "long_term_conditions",
    "distinct_medicines_182d": "medicines_6m",
}
LIST_COLUMNS = [
    "nhs_number",
    "risk_score",
    "risk_band",
    "rank_in_practice",
    "reason_1",
    "reason_2",
    "reason_3",
    "age",
    "sex",
    *KEY_COUNTS.values(),
]


def practice_list(vault: OpenVault, practice: str, as_of: dt.date, scored: pd.DataFrame) -> pd.DataFrame:
    """The list for one practice: ``scored`` is scores joined to features, by pseudonym."""
    people = vault.practice(practice, as_of, purpose="direct care risk list").to_pandas()
    lst = people.merge(scored, on="pseudonym", how="inner")
    lst = lst[lst["practice_code"] == practice]  # registered there on D by the pseudonymised record too
    lst = lst.sort_values(["risk_score", "pseudonym"], ascending=[False, True]).reset_index(drop=True)
    lst["rank_in_practice"] = range(1, len(lst) + 1)
    lst = lst.rename(columns={"age_years": "age", **KEY_COUNTS})
    return lst[LIST_COLUMNS]


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV so the file is either absent or complete (never partial)."""
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def record_export(audit: AuditLog, practice: str, patients: int, path: Path) -> None:
    audit.append("direct_care_export", practice_code=practice, patients=patients, file=path.name)
