"""Direct-care lists: for each practice, its own registered patients by NHS number.

Each list holds only the patients registered at that practice on D (re-identified through
the vault, one practice at a time, audited), scored at D, highest risk first. Files appear
atomically: written under a temporary name in the same directory, then renamed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from riskstrat.atomic import write_private
from riskstrat.codelists import icd10_description, icd10_with_dot, treatment_function_name
from riskstrat.errors import RiskstratError
from riskstrat.groups import sex_letter
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.vault import OpenVault
from riskstrat.workdir import WorkDir

__all__ = [
    "ACTIVITY_DAYS",
    "KEY_COUNTS",
    "LIST_COLUMNS",
    "practice_list",
    "recent_activity",
    "recently_discharged",
    "record_export",
    "write_atomically",
]

#: the look-back of the hospital activity a practice's page shows: 12 months, the window of the
#: ``_365d`` key counts beside it on the list and the page ("last 12 months"). A look-back,
#: not the model's horizon (which looks forward from D).
ACTIVITY_DAYS = 365
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
    "actionable_reasons",
    "background_reasons",
    "age",
    "sex",
    *KEY_COUNTS.values(),
    "as_of",
    "model_version",
]


def practice_list(
    vault: OpenVault,
    practice: str,
    as_of: dt.date,
    scored: pd.DataFrame,
    with_pseudonyms: bool = False,
    model: str = "",
    with_registered: bool = False,
    with_births: bool = False,
):
    """The list for one practice: ``scored`` is scores joined to features, by pseudonym; every
    row carries the as-of date and the model (``model``, e.g. "emergency_admission_12m version 3").
    Reasons come three ways: ``reason_1..3`` (the three that raise the risk most) and, by kind,
    ``actionable_reasons`` and ``background_reasons`` (up to three each, joined by ``"; "``);
    sex as every output writes it (M, F, I, U: :func:`riskstrat.groups.sex_letter`).

    Highest risk first: by calibrated risk, then by the model's own score (``model_score``)
    where calibration ties people, then by pseudonym. ``scored`` may hold everyone or only
    this practice's rows; only people the vault has registered at the practice on D *and*
    whose pseudonymised record puts them there are listed. With ``with_pseudonyms`` also
    returns the pseudonyms in list order (never written out); with ``with_registered`` also the
    number of people the vault has registered at the practice on D (listed or not); with
    ``with_births`` also the dates of birth in list order (from the vault: identifiable zone).
    """
    people = vault.practice(practice, as_of, purpose="direct care risk list").to_pandas()
    lst = people.merge(scored[scored["practice_code"] == practice], on="pseudonym", how="inner")
    order = ["risk_score", "model_score", "pseudonym"]
    lst = lst.sort_values(order, ascending=[False, False, True]).reset_index(drop=True)
    lst["rank_in_practice"] = range(1, len(lst) + 1)
    lst = lst.rename(columns={"age_years": "age", **KEY_COUNTS})
    lst["sex"] = sex_letter(lst["sex"])
    lst["as_of"] = as_of.isoformat()
    lst["model_version"] = model
    out = (lst[LIST_COLUMNS],)
    if with_pseudonyms:
        out += (lst["pseudonym"].tolist(),)
    if with_registered:
        out += (len(people),)
    if with_births:
        if "date_of_birth" not in lst.columns:
            raise RiskstratError(
                "the re-identification vault was made by an earlier riskstrat that did not keep dates of birth: "
                "run 'riskstrat pseudonymise' again to export the import files"
            )
        out += (lst["date_of_birth"].tolist(),)
    return out if len(out) > 1 else out[0]


def write_atomically(content: pd.DataFrame | str, path: Path) -> None:
    """Write a CSV (from a frame) or text so the file is either absent or complete, readable
    by the owner only (it carries NHS numbers)."""
    write_private(path, content.to_csv(index=False) if isinstance(content, pd.DataFrame) else content)


def recent_activity(wd: WorkDir, as_of: dt.date, days: int = ACTIVITY_DAYS) -> pd.DataFrame:
    """SUS+ activity of the ``days`` days before D (default :data:`ACTIVITY_DAYS`), one row per
    event: pseudonym, date, setting, detail, provider (admissions by spell, A&E attendances,
    outpatient appointments), from the linked tables of ``wd``, in words a clinician reads:
    the primary diagnosis by its WHO ICD-10 description and code ("Congestive heart failure
    (I50.0)"), the clinic by its NHS Data Dictionary treatment function ("Cardiology Service
    (320)") and the provider by its name from ``ref_providers`` (contract v1.1) when the
    extracts carry it, else by its ODS code. A code with no description is shown as a code."""
    from riskstrat.duck import connect

    con = connect()
    d = f"DATE '{as_of.isoformat()}'"
    window = f"BETWEEN {d} - INTERVAL {int(days)} DAY AND {d} - INTERVAL 1 DAY"
    src = {n: f"read_parquet('{_parquet(wd.table(n))}')" for n in ("sus_apc", "sus_ecds", "sus_op")}
    names = _provider_names(wd)
    frame = con.execute(f"""
        WITH events AS (
            SELECT pseudonym, admission_date AS date,
                   CASE WHEN admission_method LIKE '2%' THEN 'emergency admission'
                        WHEN admission_method IN ('11','12','13') THEN 'planned admission' ELSE 'admission' END
                     AS setting,
                   first(primary_diagnosis ORDER BY episode_number) AS code,
                   coalesce('; discharged ' || CAST(max(discharge_date) AS VARCHAR), '; still in hospital') AS rest,
                   first(provider_code ORDER BY episode_number) AS provider_code
            FROM {src["sus_apc"]} WHERE admission_date {window}
            GROUP BY pseudonym, spell_id, admission_date, admission_method
            UNION ALL
            SELECT pseudonym, arrival_date, 'A&E', NULL,
                   CASE WHEN admitted THEN 'admitted' ELSE 'not admitted' END
                     || CASE WHEN ambulance_arrival THEN ', by ambulance' ELSE '' END, provider_code
            FROM {src["sus_ecds"]} WHERE arrival_date {window}
            UNION ALL
            SELECT pseudonym, appointment_date, 'outpatients', treatment_function_code,
                   CASE attendance_status WHEN '3' THEN ', did not attend' WHEN '2' THEN ', cancelled by patient'
                     WHEN '4' THEN ', cancelled by hospital' ELSE '' END, provider_code
            FROM {src["sus_op"]} WHERE appointment_date {window}
        )
        SELECT e.pseudonym, e.date, e.setting, e.code, e.rest,
               coalesce(p.provider_name, e.provider_code) AS provider
        FROM events e LEFT JOIN {names} p ON p.provider_code = e.provider_code
        ORDER BY 1, 2 DESC, 3, 4, 5, 6  -- every column: rows alike but for one keep one order
    """).df()
    con.close()
    frame.insert(3, "detail", _described(frame["setting"], frame["code"]) + frame["rest"].fillna(""))
    return frame.drop(columns=["code", "rest"])


def _provider_names(wd: WorkDir) -> str:
    """A DuckDB subquery of ``provider_code``, ``provider_name`` from the optional ``ref_providers``
    (contract v1.1): one name per code; empty when the extracts carry no such table."""
    providers = wd.table("ref_providers")
    if not providers.exists():
        return "(SELECT NULL::VARCHAR AS provider_code, NULL::VARCHAR AS provider_name WHERE false)"
    return (
        f"(SELECT provider_code, any_value(provider_name) AS provider_name FROM read_parquet('{_parquet(providers)}') "
        "GROUP BY provider_code)"
    )


def _parquet(path: Path) -> str:
    """A linked table for DuckDB's ``read_parquet``: the file, or the part files of Spark's folder."""
    return (path / "*.parquet").as_posix() if path.is_dir() else path.as_posix()


def _described(settings: pd.Series, codes: pd.Series) -> pd.Series:
    """Each event's code in words: an admission's primary diagnosis by its ICD-10 description,
    an appointment's treatment function by its name, the code itself (and what it is) where
    there is no description; A&E attendances carry no code."""
    admission = settings.str.endswith("admission").to_numpy()
    outpatients = (settings == "outpatients").to_numpy()
    words: dict[tuple[bool, str], str] = {}
    for is_admission, code in {(bool(a), str(c)) for a, c in zip(admission, codes, strict=True) if pd.notna(c)}:
        if is_admission:
            description = icd10_description(code)
            shown = icd10_with_dot(code)
            words[(True, code)] = f"{description} ({shown})" if description else f"diagnosis {shown}"
        else:
            name = treatment_function_name(code)
            words[(False, code)] = f"{name} ({code})" if name else f"treatment function {code}"
    out = [
        words[(bool(a), str(c))] if (a or o) and pd.notna(c) else ""
        for a, o, c in zip(admission, outpatients, codes, strict=True)
    ]
    return pd.Series(out, index=settings.index, dtype=object)


def recently_discharged(wd: WorkDir, as_of: dt.date, days: int) -> pd.DataFrame:
    """Emergency spells (an emergency admission method, :data:`~riskstrat.schema.EMERGENCY_ADMISSION_METHODS`,
    as the outcome uses) that ended in the ``days`` days before D (``discharge_date`` in
    ``[D - days, D - 1]``: a discharge on or after D is not yet known at D), one row per spell:
    ``pseudonym``, ``admission_date``, ``discharge_date``, ``length_of_stay_days`` (discharge
    minus admission, 0 for a same-day spell), ``provider_code`` (of the first episode) and
    ``provider_name`` (from ``ref_providers``, contract v1.1; the code where it names none), most
    recent discharge first."""
    from riskstrat.duck import connect
    from riskstrat.schema import EMERGENCY_ADMISSION_METHODS

    con = connect()
    d = f"DATE '{as_of.isoformat()}'"
    methods = ", ".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
    apc = f"read_parquet('{_parquet(wd.table('sus_apc'))}')"
    frame = con.execute(f"""
        WITH spells AS (
            SELECT pseudonym, spell_id, min(admission_date) AS admission_date, max(discharge_date) AS discharge_date,
                   first(provider_code ORDER BY episode_number) AS provider_code,
                   first(admission_method ORDER BY episode_number) AS admission_method
            FROM {apc} WHERE admission_date < {d}
            GROUP BY pseudonym, spell_id
        )
        SELECT s.pseudonym, s.admission_date, s.discharge_date,
               CAST(date_diff('day', s.admission_date, s.discharge_date) AS INTEGER) AS length_of_stay_days,
               s.provider_code, coalesce(p.provider_name, s.provider_code) AS provider_name
        FROM spells s LEFT JOIN {_provider_names(wd)} p ON p.provider_code = s.provider_code
        WHERE s.admission_method IN ({methods})
          AND s.discharge_date BETWEEN {d} - INTERVAL {int(days)} DAY AND {d} - INTERVAL 1 DAY
        ORDER BY s.discharge_date DESC, s.pseudonym, s.admission_date, s.provider_code
    """).df()
    con.close()
    for c in ("admission_date", "discharge_date"):
        frame[c] = pd.to_datetime(frame[c]).dt.date
    return frame


def record_export(audit: AuditLog, practice: str, patients: int, path: Path) -> None:
    audit.append("direct_care_export", practice_code=practice, patients=patients, file=path.name)
