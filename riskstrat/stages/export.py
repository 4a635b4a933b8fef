"""``riskstrat export``: direct-care lists per practice and commissioner outputs at D."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.errors import RiskstratError
from riskstrat.outputs.commissioner import COHORT_INPUTS, aggregates, cohort_table
from riskstrat.outputs.direct_care import (
    KEY_COUNTS,
    practice_list,
    recent_activity,
    record_export,
    write_atomically,
)
from riskstrat.outputs.html import activity_details, practice_html, report_html
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.vault import open_vault
from riskstrat.stages.features import features_path
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.stages.resources import named_stage
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
    # Only the feature columns the outputs show or use.
    columns = ["pseudonym", *dict.fromkeys([*COHORT_INPUTS, "age_years", "sex", *KEY_COUNTS])]
    feats = pq.read_table(features_path(workdir, as_of), columns=columns).to_pandas()
    return scores.merge(feats, on="pseudonym", how="inner", validate="one_to_one")


def write_commissioner_outputs(wd: WorkDir, as_of: dt.date, people: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The commissioner folder from the scored people commissioners may see: the pseudonymised
    cohort table, the suppressed aggregates and the report. Returns the cohort table and the
    model that scored them ("name version N")."""
    cohort = cohort_table(people)
    wd.commissioner.mkdir(parents=True, exist_ok=True)
    tmp = wd.commissioner / ".cohort.parquet.partial"
    pq.write_table(pa.Table.from_pandas(cohort, preserve_index=False), tmp)
    tmp.replace(wd.commissioner / "cohort.parquet")
    agg = aggregates(cohort)
    write_atomically(agg, wd.commissioner / "aggregates.csv")
    sizes = agg[agg["dimension"] == "cohort"][["value", "published"]].rename(
        columns={"value": "cohort", "published": "people"}
    )
    score_manifest = json.loads((wd.reports / f"score_{as_of}.json").read_text())
    model = f"{score_manifest['model_name']} version {score_manifest['model_version']}"
    write_atomically(report_html(as_of, agg, sizes, model), wd.commissioner / "report.html")
    return cohort, model


@named_stage("export")
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
    cohort, model = write_commissioner_outputs(wd, as_of, commissioner_view)
    # Direct care: each practice's own patients, through the vault.
    ref = pq.read_table(wd.table("ref_practices")).to_pandas()
    practices = ref["practice_code"].tolist()
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
        details = activity_details(recent_activity(wd.pseudonymised, as_of))
        by_practice = dict(tuple(direct.groupby("practice_code", sort=False)))
        empty = direct.iloc[:0]
        for practice in ref.sort_values("practice_code").itertuples(index=False):
            code = practice.practice_code
            lst, pseudonyms = practice_list(vault, code, as_of, by_practice.get(code, empty), with_pseudonyms=True)
            path = out_dir / f"{code}.csv"
            write_atomically(lst, path)
            page = practice_html(pd.Series(practice._asdict()), as_of, lst, details.reindex(pseudonyms), model)
            write_atomically(page, out_dir / f"{code}.html")
            record_export(audit, code, len(lst), path)
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
