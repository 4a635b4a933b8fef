"""``riskstrat export``: direct-care lists per practice and commissioner outputs at D."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from riskstrat import tracking
from riskstrat.config import Config, PracticeListSettings, RegisterHandling
from riskstrat.errors import KeyMissingError, RiskstratError
from riskstrat.modelling.spec import RiskBand
from riskstrat.outputs.commissioner import COHORT_INPUTS, aggregates, at_risk_bands, cohort_table
from riskstrat.outputs.direct_care import (
    KEY_COUNTS,
    LIST_COLUMNS,
    practice_list,
    recent_activity,
    recently_discharged,
    record_export,
    write_atomically,
)
from riskstrat.outputs.html import activity_details, practice_html, report_html
from riskstrat.outputs.worklist import (
    CHANGE_COLUMNS,
    flag_counts,
    mark_changes,
    previous_list,
    write_import_files,
)
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.disclosure import DEFAULT_RULES, DisclosureRules
from riskstrat.privacy.holdout import held_out
from riskstrat.privacy.optout import Use
from riskstrat.privacy.vault import open_vault
from riskstrat.stages.exposure import write_exposure
from riskstrat.stages.features import features_path
from riskstrat.stages.objections import without_objectors
from riskstrat.stages.resources import named_stage
from riskstrat.stages.score import scores_path
from riskstrat.stages.train import FAIRNESS_SUMMARY
from riskstrat.workdir import PracticeFiles, WorkDir

__all__ = [
    "ExportResult",
    "HoldOut",
    "Month",
    "export",
    "hold_out",
    "record_exposure",
    "write_commissioner_outputs",
    "write_practice_lists",
]


@dataclass
class ExportResult:
    practices: int
    patients_listed: int
    cohort_rows: int
    direct_care: Path | None
    commissioner: Path
    note: str
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _scored(workdir: Path, as_of: dt.date) -> pd.DataFrame:
    if not scores_path(workdir, as_of).exists():
        raise RiskstratError(f"{workdir}: no scores at {as_of}: run 'riskstrat score --as-of {as_of}' first")
    scores = pq.read_table(scores_path(workdir, as_of)).to_pandas()
    if "actionable_reasons" not in scores.columns:
        raise RiskstratError(
            f"the scores at {as_of} were made by an earlier riskstrat that did not split reasons into actionable "
            f"and background: run 'riskstrat score --as-of {as_of}' again"
        )
    # Only the feature columns the outputs show or use.
    columns = ["pseudonym", *dict.fromkeys([*COHORT_INPUTS, "age_years", "sex", *KEY_COUNTS])]
    feats = pq.read_table(features_path(workdir, as_of), columns=columns).to_pandas()
    return scores.merge(feats, on="pseudonym", how="inner", validate="one_to_one")


class Month:
    """One month's outputs, built aside and published together.

    The commissioner and direct-care folders of ``D`` are written under hidden names
    (``<kind>/.<D>.partial``) and renamed to ``<kind>/<D>`` only when every file is written;
    then each kind's ``current`` pointer moves to them (direct care last). A run killed before
    that leaves last month's folders whole, ``current`` still pointing at them, and every file
    in them names its own month; the next run clears the half-written folders. ``current``
    never moves back to an earlier month than the one it points at.
    """

    def __init__(self, wd: WorkDir, as_of: dt.date):
        self.wd, self.as_of = wd, as_of
        self.kinds = (wd.commissioner, wd.direct_care)
        for kind in self.kinds:
            if kind.exists():
                for stale in [*kind.glob(".*.partial"), *kind.glob(".*.old")]:
                    shutil.rmtree(stale, ignore_errors=True)

    def _staging(self, kind: Path) -> Path:
        return self.wd.month_staging(kind, self.as_of)

    def folder(self, kind: Path) -> Path:
        """Where this month's files of ``kind`` are written before publication."""
        path = self._staging(kind)
        path.mkdir(parents=True, exist_ok=True)
        if kind == self.wd.direct_care:  # NHS numbers: the identifiable zone's permissions
            kind.chmod(0o700)
            path.chmod(0o700)
        return path

    def publish(self) -> None:
        for kind in self.kinds:
            staging = self._staging(kind)
            if not staging.exists():
                continue
            final = self.wd.month(kind, self.as_of)
            old = self.wd.month_replaced(kind, self.as_of)
            if final.exists():
                final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        for kind in self.kinds:
            if self.wd.month(kind, self.as_of).exists():
                self._point(kind)

    def _point(self, kind: Path) -> None:
        current = self.wd.current(kind)
        if current.is_symlink() and os.readlink(current) > self.as_of.isoformat():
            return  # a later month is published already
        tmp = self.wd.current_staging(kind)
        tmp.unlink(missing_ok=True)
        os.symlink(self.as_of.isoformat(), tmp)
        os.replace(tmp, current)


def model_of(wd: WorkDir, as_of: dt.date) -> str:
    """The model that scored the population at ``as_of`` ("name version N")."""
    manifest = json.loads(wd.score_report(as_of).read_text())
    return f"{manifest['model_name']} version {manifest['model_version']}"


def bands_of(wd: WorkDir, as_of: dt.date) -> list[RiskBand]:
    """The risk bands, highest first, of the model that scored the population at ``as_of``."""
    manifest = json.loads(wd.score_report(as_of).read_text())
    if "risk_bands" not in manifest:
        raise RiskstratError(
            f"the scores at {as_of} were made by an earlier riskstrat that did not record the model's risk bands: "
            f"run 'riskstrat score --as-of {as_of}' again"
        )
    return [RiskBand(name=b["name"], top_share=float(b["top_share"])) for b in manifest["risk_bands"]]


def write_commissioner_outputs(
    wd: WorkDir,
    folder: Path,
    as_of: dt.date,
    people: pd.DataFrame,
    rules: DisclosureRules = DEFAULT_RULES,
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """The commissioner folder from the scored people commissioners may see: the pseudonymised
    cohort table, the protected aggregates, the record of the rule applied to each of their
    cells (``disclosure_log.csv``) and the report, each naming its month and model. Bands come
    from the model that scored them, and the report's fairness summary from its training run
    (in the MLflow store at ``tracking_uri``). Returns the cohort table."""
    model = model_of(wd, as_of)
    bands = bands_of(wd, as_of)
    cohort = cohort_table(people, bands)
    stamp = {"as_of": as_of.isoformat(), "model_version": model}
    pq.write_table(pa.Table.from_pandas(cohort.assign(**stamp), preserve_index=False), folder / "cohort.parquet")
    agg, decisions = aggregates(cohort, bands, rules)
    write_atomically(agg.assign(**stamp), folder / "aggregates.csv")
    write_atomically(decisions.assign(**stamp), folder / "disclosure_log.csv")
    sizes = agg[agg["dimension"] == "cohort"][["value", "published"]].rename(
        columns={"value": "cohort", "published": "people"}
    )
    run_id = json.loads(wd.score_report(as_of).read_text())["run_id"]
    fairness = tracking.run_table(wd.root, tracking_uri, run_id, FAIRNESS_SUMMARY)
    write_atomically(report_html(as_of, agg, sizes, model, bands, rules, fairness), folder / "report.html")
    return cohort


@dataclass(frozen=True)
class HoldOut:
    """The randomised hold-out at D: every person scored (``pseudonyms``, as in the scores file)
    and whether they are held out of the practice lists (``held``, aligned)."""

    pseudonyms: np.ndarray
    risk_band: np.ndarray
    held: np.ndarray
    share: float

    @property
    def people(self) -> set[str]:
        return set(self.pseudonyms[self.held].tolist())


def hold_out(wd: WorkDir, as_of: dt.date, config: Config, region_key: str | None) -> HoldOut:
    """Who is held out of the practice lists at ``as_of`` (``monitoring.holdout_share`` of everyone
    scored, chosen by :func:`riskstrat.privacy.holdout.held_out` under the region key)."""
    share = config.monitoring.holdout_share
    scores = pq.read_table(scores_path(wd.root, as_of), columns=["pseudonym", "risk_band"])
    pseudonyms = np.asarray(scores["pseudonym"].to_pylist(), dtype=object)
    if share > 0 and region_key is None:
        raise KeyMissingError(
            "no key: the hold-out (monitoring.holdout_share) is chosen under the region key: set "
            "RISKSTRAT_PSEUDONYM_KEY (or RISKSTRAT_PSEUDONYM_KEY_FILE)"
        )
    held = held_out(pseudonyms, region_key or "", share)
    return HoldOut(pseudonyms, np.asarray(scores["risk_band"].to_pylist(), dtype=object), held, share)


def record_exposure(wd: WorkDir, as_of: dt.date, holdout: HoldOut, listed: list[str]) -> None:
    """The exposure log of ``as_of`` (:mod:`riskstrat.stages.exposure`): everyone scored, in
    which band, whether shown (``listed``: the pseudonyms on the practice lists), held out."""
    manifest = json.loads(wd.score_report(as_of).read_text())
    people = pd.DataFrame({"pseudonym": holdout.pseudonyms, "risk_band": holdout.risk_band})
    write_exposure(
        wd, as_of, people, bands_of(wd, as_of), manifest["model_name"], manifest["model_version"], listed, holdout.held
    )


def write_practice_lists(
    wd: WorkDir,
    folder: Path,
    as_of: dt.date,
    vault_key: str,
    rows_of: Callable[[str], pd.DataFrame],
    audit: AuditLog,
    settings: PracticeListSettings | None = None,
    listed: list[str] | None = None,
    holdout: bool = False,
) -> dict[str, dict[str, int]]:
    """Each practice's files in ``folder`` (:class:`riskstrat.workdir.PracticeFiles`), one
    practice at a time through the vault (``rows_of(code)``: the scored rows of that practice's
    people): the list (CSV) marked with what changed since the practice's previous list, its
    care register and the recently discharged (:mod:`riskstrat.outputs.worklist`); the page
    (HTML) with its summary; the recently discharged (CSV); the import files. ``settings``: the
    ``practice_list`` section of the configuration (default: the embedded defaults). ``listed``,
    when given, receives the pseudonyms of everyone listed (for the exposure log); ``holdout``: a
    randomised hold-out is in force (the page names it among the reasons, never who).

    Returns, per practice, the people listed and the registered people not listed, with the
    reasons counted (the page says the same to the practice), and the summary's counts."""
    settings = settings or PracticeListSettings()
    ref = pq.read_table(wd.table("ref_practices")).to_pandas().sort_values("practice_code")
    model = model_of(wd, as_of)
    bands = bands_of(wd, as_of)
    band_names, top = [b.name for b in bands], at_risk_bands(bands)
    vault = open_vault(wd.vault, vault_key, audit, wd.care_register)
    activity = _Activity(recent_activity(wd, as_of))
    previous = previous_list(wd, as_of)
    spells = recently_discharged(wd, as_of, settings.discharged_days)
    spell_people = spells["pseudonym"].tolist()
    quarantined = _quarantined_registrations(wd)
    counts: dict[str, dict[str, int]] = {}
    with _Pages(PAGE_WORKERS if activity.people >= PARALLEL_FROM_PEOPLE else 1) as pages:
        for practice in ref.itertuples(index=False):
            code = practice.practice_code
            lst, pseudonyms, registered, births = practice_list(
                vault,
                code,
                as_of,
                rows_of(code),
                with_pseudonyms=True,
                model=model,
                with_registered=True,
                with_births=True,
            )
            theirs = set(pseudonyms)
            mine = spells[[p in theirs for p in spell_people]]
            marked = mark_changes(
                lst,
                pseudonyms,
                previous.of(code),
                previous.as_of,
                band_names,
                top,
                set(mine["pseudonym"]),
                vault.register(code, as_of).to_pandas(),
                settings,
            )
            flags = flag_counts(marked, settings)
            if listed is not None:
                listed.extend(pseudonyms)
            counts[code] = {
                "listed": len(lst),
                "registered_not_listed": registered - len(lst),
                "registrations_quarantined": quarantined.get(code, 0),
                **flags.to_dict(),
            }
            files = wd.practice_files(folder, code)
            files.folder.mkdir(mode=0o700, exist_ok=True)
            files.folder.chmod(0o700)
            discharged = _discharged_rows(mine, marked, pseudonyms)
            write_atomically(discharged, files.discharged)
            imported = write_import_files(files, marked, births, top, settings, write_atomically)
            pages.write(
                files,
                activity.of(pseudonyms),
                pseudonyms,
                pd.Series(practice._asdict()),
                as_of,
                marked,
                model,
                _notes(counts[code], holdout),
                bands=band_names,
                top_bands=top,
                summary=flags,
                discharged=discharged,
                files=_file_purposes(files, imported, top, settings),
                rising_points=settings.rising_points,
                discharged_days=settings.discharged_days,
            )
            record_export(audit, code, len(lst), files.list_csv)
    return counts


#: processes that write practice lists and render their pages beside the loop that makes the
#: lists (rendering, in jinja2 with autoescaping, is most of the export's time at the size of an
#: ICB: about 70 microseconds a patient); the machines this is built for have 2 cores
PAGE_WORKERS = 2
#: with fewer people with hospital activity than this (a region's lists are then small), pages are
#: rendered in the stage's own process: starting the workers (about 2 s) would cost more than
#: it saves
PARALLEL_FROM_PEOPLE = 20_000


class _Activity:
    """The region's recent hospital activity (:func:`riskstrat.outputs.direct_care.recent_activity`,
    ordered by person), taken a practice's people at a time."""

    def __init__(self, events: pd.DataFrame):
        self.events = events.reset_index(drop=True)
        people = self.events["pseudonym"].to_numpy()
        starts = np.flatnonzero(np.r_[True, people[1:] != people[:-1]]) if len(people) else np.array([], int)
        ends = np.r_[starts[1:], len(people)].astype(int)
        self._spans = dict(zip(people[starts].tolist(), zip(starts.tolist(), ends.tolist(), strict=True), strict=True))
        self.people = len(self._spans)

    def of(self, pseudonyms: list[str]) -> pd.DataFrame:
        """The events of ``pseudonyms``."""
        spans = [self._spans[p] for p in pseudonyms if p in self._spans]
        rows = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else np.array([], int)
        return self.events.iloc[rows]


def _write_list_and_page(
    out: PracticeFiles, events: pd.DataFrame, pseudonyms: list[str], practice, as_of, marked, model, *args, **kwargs
) -> None:
    """A practice's list (CSV) and page (HTML) in ``out``, from its marked list and its people's
    ``events``; the other arguments are the page's (:func:`riskstrat.outputs.html.practice_html`)."""
    write_atomically(marked[[*LIST_COLUMNS, *CHANGE_COLUMNS]], out.list_csv)
    details = activity_details(events)
    details.index = details.index.astype(object)  # Python strings: the fastest to look up
    page = practice_html(practice, as_of, marked, details.reindex(pseudonyms), model, *args, **kwargs)
    write_atomically(page, out.page)


class _Pages:
    """Practice pages rendered and written, in the stage's process (``workers`` 1) or by a pool
    of ``workers`` processes while the stage makes the next practices' lists. Started by
    *spawn*, not fork: the stage's process holds DuckDB's and Arrow's threads, which a forked
    child would inherit mid-flight. At most twice ``workers`` pages wait, so memory holds a few
    practices' rows, not the region's. A page that fails fails the export (its error is raised
    here, as the stage's own)."""

    def __init__(self, workers: int):
        self._pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
        self._waiting: list[Future] = []
        self._workers = workers

    def write(self, *args, **kwargs) -> None:
        """:func:`_write_list_and_page` with these arguments, now or in a worker."""
        if self._pool is None:
            _write_list_and_page(*args, **kwargs)
            return
        self._waiting.append(self._pool.submit(_write_list_and_page, *args, **kwargs))
        while len(self._waiting) > 2 * self._workers:
            self._waiting.pop(0).result()

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._pool is None:
            return
        try:
            if error is None:  # else the stage's own error stands; pages not yet written are dropped
                for future in self._waiting:
                    future.result()
        finally:
            self._pool.shutdown(cancel_futures=True)


#: the columns of a practice's recently discharged CSV
DISCHARGED_COLUMNS = [
    "nhs_number",
    "discharge_date",
    "admission_date",
    "length_of_stay_days",
    "provider_code",
    "provider_name",
    "risk_score",
    "risk_band",
    "rank_in_practice",
    "register_status",
    "as_of",
]


def _discharged_rows(spells: pd.DataFrame, marked: pd.DataFrame, pseudonyms: list[str]) -> pd.DataFrame:
    """The practice's recently discharged, one row per spell, most recent discharge first (then
    highest risk): the spells of its listed people with their NHS number, risk and register status."""
    people = marked.assign(pseudonym=pseudonyms)[
        ["pseudonym", "nhs_number", "risk_score", "risk_band", "rank_in_practice", "register_status", "as_of"]
    ]
    rows = spells.merge(people, on="pseudonym", how="inner", validate="many_to_one")
    rows = rows.sort_values(["discharge_date", "rank_in_practice", "admission_date"], ascending=[False, True, True])
    return rows[DISCHARGED_COLUMNS].reset_index(drop=True)


def _file_purposes(
    files: PracticeFiles, imported: dict[str, int], top: list[str], settings: PracticeListSettings
) -> list[tuple[str, str]]:
    """What each of a practice's files is for, as its page says (``docs/outputs.md`` says the same)."""
    batch = settings.import_batch_size
    who = {"top_bands": f"the {' and '.join(top)} band(s)", "recently_discharged": "the recently discharged"}
    left_out = " (patients on the register left out)" if settings.care_register is RegisterHandling.EXCLUDE else ""
    out = [
        (files.list_csv.name, "this list as a spreadsheet, with the changes, flags and register status"),
        (
            f"{files.code}/{files.discharged.name}",
            "the recently discharged below, one row per spell, for post-discharge contact",
        ),
    ]
    for group, people in imported.items():
        parts = -(-people // batch)
        if parts:
            names = ", ".join(f"{files.code}/{files.import_file(group, p).name}" for p in range(1, parts + 1))
            out.append(
                (
                    names,
                    f"{people:,} patients of {who[group]}{left_out} to import into Accurx as a patient list "
                    f"(columns NHS number and Date of Birth, at most {batch} a file)",
                )
            )
        out.append(
            (
                f"{files.code}/{files.nhs_numbers(group).name}",
                f"the NHS numbers of {who[group]}{left_out}, one a line, for a search in the clinical system"
                + ("" if people else ": none this month"),
            )
        )
    return out


def _notes(counts: dict[str, int], holdout: bool = False) -> tuple[str, ...]:
    notes = []
    if counts["registrations_quarantined"]:
        n = counts["registrations_quarantined"]
        notes.append(f"{n:,} registration{'s' if n != 1 else ''} could not be used: see the quarantine report.")
    if counts["registered_not_listed"]:
        n = counts["registered_not_listed"]
        notes.append(
            f"{n:,} registered patient{'s are' if n != 1 else ' is'} not on this list: not in the population the model "
            "scores on this date (for example deceased, or outside its ages) or an objection to this use"
            + (", or in the region's randomised evaluation group (scored, not listed)." if holdout else ".")
        )
    return tuple(notes)


def _quarantined_registrations(wd: WorkDir) -> dict[str, int]:
    """Quarantined registration rows by the practice code written on them."""
    path = wd.quarantined("gp_registrations")
    if not path.exists():
        return {}
    codes = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"practice_code": pa.string()}))
    return {str(k): int(v) for k, v in pd.Series(codes["practice_code"].to_pylist()).value_counts().items()}


def unannounced_losses(wd: WorkDir, as_of: dt.date, counts: dict[str, dict[str, int]], share: float) -> list[str]:
    """Warnings, in words, for registered people who would otherwise vanish from the outputs:
    people registered at a practice missing from ``ref_practices`` (e.g. its row quarantined),
    quarantined registrations, and practice lists that fell by more than ``share`` since the
    last month exported. Writes the per-practice counts to ``W/reports/export_<D>.json``."""
    warnings = []
    ref_quarantine = wd.quarantined("ref_practices")
    quarantined_refs = set()
    if ref_quarantine.exists():
        rows = pcsv.read_csv(
            ref_quarantine, convert_options=pcsv.ConvertOptions(column_types={"practice_code": pa.string()})
        )
        quarantined_refs = {str(c) for c in rows["practice_code"].to_pylist() if c}
    for code, people in _registered_outside_ref(wd, as_of).items():
        why = " (its row was quarantined: see the quarantine report)" if code in quarantined_refs else ""
        warnings.append(
            f"{people:,} people registered at practice {code} on {as_of} are not scored: "
            f"{code} is not in ref_practices{why}"
        )
    bad = {c: n["registrations_quarantined"] for c, n in counts.items() if n["registrations_quarantined"]}
    if bad:
        warnings.append(
            f"{sum(bad.values()):,} registrations at {len(bad)} practices could not be used (quarantined): "
            "each practice's page says how many"
        )
    previous = _previous_export(wd, as_of)
    if previous is not None:
        before, counts_before = previous
        for code, n in counts.items():
            was = counts_before.get(code, {}).get("listed", 0)
            if was and (was - n["listed"]) / was > share:
                warnings.append(
                    f"practice {code}: {n['listed']:,} patients listed against {was:,} at {before} "
                    f"(down {(was - n['listed']) / was:.0%}, more than the warning share of {share:.0%})"
                )
    wd.reports.mkdir(parents=True, exist_ok=True)
    record = {"as_of": str(as_of), "practices": counts, "warnings": warnings}
    wd.export_report(as_of).write_text(json.dumps(record, indent=2) + "\n")
    return warnings


def _registered_outside_ref(wd: WorkDir, as_of: dt.date) -> dict[str, int]:
    """People registered on ``as_of`` (open registrations) at practices not in ``ref_practices``."""
    from riskstrat.duck import connect

    reg, ref = (
        wd.table(n) / "*.parquet" if wd.table(n).is_dir() else wd.table(n)
        for n in ("gp_registrations", "ref_practices")
    )  # Spark writes folders
    con = connect()
    d = f"DATE '{as_of.isoformat()}'"
    rows = con.execute(
        f"SELECT practice_code, count(DISTINCT pseudonym) FROM read_parquet('{reg.as_posix()}') "
        f"WHERE registration_start <= {d} AND (registration_end IS NULL OR registration_end >= {d}) "
        f"AND practice_code NOT IN (SELECT practice_code FROM read_parquet('{ref.as_posix()}')) "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    con.close()
    return {str(code): int(n) for code, n in rows}


def _previous_export(wd: WorkDir, as_of: dt.date) -> tuple[str, dict] | None:
    earlier = [p for p in wd.export_reports() if p.stem.removeprefix("export_") < as_of.isoformat()]
    if not earlier:
        return None
    record = json.loads(earlier[-1].read_text())
    return record["as_of"], record["practices"]


def publish_month(
    wd: WorkDir,
    month: Month,
    as_of: dt.date,
    command: str,
    practices: int,
    cohort_rows: int,
    counts: dict[str, dict[str, int]],
    note: str,
    started: float,
    config: Config,
) -> ExportResult:
    """The end of an export on either engine: warnings for people who would vanish, the month
    published, the stage audited, and its result."""
    warnings = unannounced_losses(wd, as_of, counts, config.practice_drop_warning_share)
    month.publish()
    listed = sum(c["listed"] for c in counts.values())
    AuditLog(wd.audit).record_stage(
        command,
        {},
        {"practices": practices, "patients_listed": listed, "cohort_rows": cohort_rows, "warnings": len(warnings)},
        "succeeded",
    )
    direct_dir = wd.month(wd.direct_care, as_of) if counts else None
    return ExportResult(
        practices,
        listed,
        cohort_rows,
        direct_dir,
        wd.month(wd.commissioner, as_of),
        note,
        time.perf_counter() - started,
        warnings,
    )


@named_stage("export")
def export(
    workdir: Path,
    as_of: dt.date,
    vault_key: str | None,
    config: Config | None = None,
    region_key: str | None = None,
) -> ExportResult:
    """The month's outputs at ``as_of`` (:class:`Month`): commissioner files from the people
    commissioners may see (the hold-out included), practice lists of the people direct care may
    see less the randomised hold-out, and the exposure log (``config``: disclosure rules, the
    practice-list warning share and the hold-out share, default the embedded defaults;
    ``region_key`` chooses the hold-out, needed when its share is above 0)."""
    config = config or Config()
    started = time.perf_counter()
    wd = WorkDir(workdir)
    scored = _scored(workdir, as_of)
    holdout = hold_out(wd, as_of, config, region_key)
    audit = AuditLog(wd.audit)
    month = Month(wd, as_of)
    # Commissioners: pseudonymised cohort table and suppressed aggregates.
    commissioner_view = without_objectors(scored, wd, Use.COMMISSIONER)
    cohort = write_commissioner_outputs(
        wd, month.folder(wd.commissioner), as_of, commissioner_view, config.disclosure, config.tracking_uri
    )
    # Direct care: each practice's own patients, through the vault.
    practices = pq.read_metadata(wd.table("ref_practices")).num_rows
    note, counts, listed = "", {}, []
    if not wd.vault.exists():
        note = "no direct-care lists: the registrations were pseudonymised at source, so no one can be re-identified"
    elif vault_key is None:
        raise KeyMissingError("no key: set RISKSTRAT_VAULT_KEY (or RISKSTRAT_VAULT_KEY_FILE) to export practice lists")
    else:
        direct = without_objectors(scored, wd, Use.DIRECT_CARE)
        if holdout.share > 0:
            direct = direct[~direct["pseudonym"].isin(holdout.people)]
        by_practice = dict(tuple(direct.groupby("practice_code", sort=False)))
        empty = direct.iloc[:0]
        counts = write_practice_lists(
            wd,
            month.folder(wd.direct_care),
            as_of,
            vault_key,
            lambda code: by_practice.get(code, empty),
            audit,
            config.practice_list,
            listed,
            holdout.share > 0,
        )
    record_exposure(wd, as_of, holdout, listed)
    return publish_month(
        wd, month, as_of, f"riskstrat export --as-of {as_of}", practices, len(cohort), counts, note, started, config
    )
