"""``riskstrat export``: direct-care lists per practice and commissioner outputs at D."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.errors import RiskstratError
from riskstrat.outputs.commissioner import aggregates, cohort_table
from riskstrat.outputs.direct_care import practice_list, record_export, write_atomically
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.vault import open_vault
from riskstrat.stages.features import features_path
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.stages.score import scores_path
from riskstrat.workdir import WorkDir

__all__ = ["ExportResult", "export"]


@dataclass
class ExportResult:
    practices: int
    patients_listed: int
    cohort_rows: int
    direct_care: Path | None
    commissioner: Path
    note: str
    seconds: float


def _scored(workdir: Path, as_of: dt.date) -> pd.DataFrame:
    if not scores_path(workdir, as_of).exists():
        raise RiskstratError(f"{workdir}: no scores at {as_of}: run 'riskstrat score --as-of {as_of}' first")
    scores = pq.read_table(scores_path(workdir, as_of)).to_pandas()
    feats = pq.read_table(features_path(workdir, as_of)).to_pandas()
    return scores.merge(feats, on="pseudonym", how="inner", validate="one_to_one")


def export(workdir: Path, as_of: dt.date, vault_key: str | None) -> ExportResult:
    started = time.perf_counter()
    wd = WorkDir(workdir)
    scored = _scored(workdir, as_of)
    audit = AuditLog(wd.audit)
    flags = pq.read_table(wd.table(OPT_OUT_USES_TABLE)).to_pandas() if wd.table(OPT_OUT_USES_TABLE).exists() else None
    # Commissioners: pseudonymised cohort table and suppressed aggregates.
    commissioner_view = scored
    if flags is not None and len(flags):
        commissioner_view = scored[~scored["pseudonym"].isin(set(flags.loc[flags["commissioner"], "pseudonym"]))]
    cohort = cohort_table(commissioner_view)
    wd.commissioner.mkdir(parents=True, exist_ok=True)
    tmp = wd.commissioner / ".cohort.parquet.partial"
    pq.write_table(pa.Table.from_pandas(cohort, preserve_index=False), tmp)
    tmp.replace(wd.commissioner / "cohort.parquet")
    write_atomically(aggregates(cohort), wd.commissioner / "aggregates.csv")
    # Direct care: each practice's own patients, through the vault.
    practices = pq.read_table(wd.table("ref_practices"))["practice_code"].to_pylist()
    listed, note, out_dir = 0, "", None
    if not wd.vault.exists():
        note = "no direct-care lists: the registrations were pseudonymised at source, so no one can be re-identified"
    elif vault_key is None:
        raise RiskstratError("no key: set RISKSTRAT_VAULT_KEY (or RISKSTRAT_VAULT_KEY_FILE) to export practice lists")
    else:
        direct = scored
        if flags is not None and len(flags):
            direct = scored[~scored["pseudonym"].isin(set(flags.loc[flags["direct_care"], "pseudonym"]))]
        vault = open_vault(wd.vault, vault_key, audit)
        out_dir = wd.direct_care
        out_dir.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(0o700)
        for practice in sorted(practices):
            lst = practice_list(vault, practice, as_of, direct)
            path = out_dir / f"{practice}.csv"
            write_atomically(lst, path)
            record_export(audit, practice, len(lst), path)
            listed += len(lst)
    audit.record_stage(
        f"riskstrat export --as-of {as_of}",
        {},
        {"practices": len(practices), "patients_listed": listed, "cohort_rows": len(cohort)},
        "succeeded",
    )
    return ExportResult(
        len(practices), listed, len(cohort), out_dir, wd.commissioner, note, time.perf_counter() - started
    )
