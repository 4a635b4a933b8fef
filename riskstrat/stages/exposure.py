"""The exposure log: who was shown on a practice list, in which band, by which model, when.

Each export at D writes ``W/pseudonymised/exposure/<D>.parquet`` (pseudonymised zone, no NHS
numbers), one row per person scored at D:

========== =====================================================================
pseudonym  the person
as_of      D
model_name the registered model that scored them
model_version its version
risk_band  their band at D
at_risk    the band is one of the at-risk bands (the top 5%: very high and high by default;
           :func:`riskstrat.outputs.commissioner.at_risk_bands`), the ones a practice acts on
shown      on their practice's list at D (False: held out, an objection to direct care, or
           not on the vault's registrations of a practice on D)
held_out   in the randomised hold-out (:mod:`riskstrat.privacy.holdout`): scored, never shown
========== =====================================================================

Training reads it (:func:`exposed_rows`) to leave out or weight the rows whose outcomes the
lists may have changed (``monitoring.exposure_handling``, ``docs/modelling.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.atomic import replacing
from riskstrat.modelling.spec import RiskBand
from riskstrat.outputs.commissioner import at_risk_bands
from riskstrat.workdir import WorkDir

__all__ = ["EXPOSURE_SCHEMA", "exposed_rows", "exposure_dates", "read_exposure", "write_exposure"]

EXPOSURE_SCHEMA = pa.schema(
    [
        ("pseudonym", pa.string()),
        ("as_of", pa.date32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("risk_band", pa.string()),
        ("at_risk", pa.bool_()),
        ("shown", pa.bool_()),
        ("held_out", pa.bool_()),
    ]
)


def write_exposure(
    wd: WorkDir,
    as_of: dt.date,
    scored: pd.DataFrame,
    bands: list[RiskBand],
    model_name: str,
    model_version: str,
    shown: Iterable[str],
    held_out: np.ndarray,
) -> pd.DataFrame:
    """Write the exposure record of ``as_of``: every person of ``scored`` (``pseudonym``,
    ``risk_band``), whether ``shown`` on a list and whether ``held_out`` (aligned with
    ``scored``). Returns the record."""
    shown_set = set(shown)
    record = pd.DataFrame(
        {
            "pseudonym": scored["pseudonym"].to_numpy(),
            "as_of": as_of,
            "model_name": model_name,
            "model_version": str(model_version),
            "risk_band": scored["risk_band"].astype(str).to_numpy(),
            "at_risk": scored["risk_band"].isin(at_risk_bands(bands)).to_numpy(),
            "shown": scored["pseudonym"].isin(shown_set).to_numpy(),
            "held_out": np.asarray(held_out, dtype=bool),
        }
    ).sort_values("pseudonym", ignore_index=True)
    out = wd.exposure_record(as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        pq.write_table(pa.Table.from_pandas(record, schema=EXPOSURE_SCHEMA, preserve_index=False), tmp)
    return record


def exposure_dates(wd: WorkDir) -> list[dt.date]:
    """The as-of dates with an exposure record, oldest first."""
    if not wd.exposure.is_dir():
        return []
    return sorted(dt.date.fromisoformat(p.stem) for p in wd.exposure.glob("*.parquet"))


def read_exposure(wd: WorkDir, as_of: dt.date) -> pd.DataFrame | None:
    path = wd.exposure_record(as_of)
    return pq.read_table(path).to_pandas() if path.exists() else None


def exposed_rows(wd: WorkDir, dates: Iterable[dt.date], horizon_days: int) -> pd.DataFrame:
    """The (``pseudonym``, ``as_of``) training rows whose outcome the lists may have changed: the
    person was shown in an at-risk band by a list at E whose horizon overlaps the row's outcome
    window, ``as_of - horizon < E < as_of + horizon`` (a list acted on at E changes care in
    ``[E, E + horizon)``; the outcome is counted in ``[as_of, as_of + horizon)``)."""
    from riskstrat.duck import connect

    dates = list(dates)
    months = exposure_dates(wd)
    frames = []
    if months and dates:
        files = ", ".join(f"'{wd.exposure_record(d).as_posix()}'" for d in months)
        con = connect()
        for d in dates:
            lo, hi = d - dt.timedelta(days=horizon_days), d + dt.timedelta(days=horizon_days)
            found = con.execute(
                f"SELECT DISTINCT pseudonym FROM read_parquet([{files}]) WHERE shown AND at_risk "
                f"AND as_of > DATE '{lo.isoformat()}' AND as_of < DATE '{hi.isoformat()}'"
            ).df()
            frames.append(found.assign(as_of=d))
        con.close()
    if not frames:
        return pd.DataFrame({"pseudonym": pd.Series(dtype=str), "as_of": pd.Series(dtype=object)})
    return pd.concat(frames, ignore_index=True)
