"""The work directory W (``spec/interface.md``): where each zone's files live.

``W/identifiable/`` holds everything that carries NHS numbers (vault, quarantine, audit
log, transient staging); ``W/pseudonymised/`` never does. Keeping the paths in one place
keeps the zones apart: every path under W is built here, by the methods of :class:`WorkDir`.

The pseudonymised zone is laid out by kind (``docs/design.md``)::

    W/pseudonymised/region.json            the region key's fingerprint
    W/pseudonymised/linked/<table>.parquet  linked tables, one per source table (and opt_out_uses)
    W/pseudonymised/features/<D>.parquet   the feature table of the population at D
    W/pseudonymised/scores/<D>.parquet     the scores at D
    W/pseudonymised/exposure/<D>.parquet   who was shown on a practice list at D, in which band
    W/pseudonymised/monitoring/<D>.json    the monitoring record of the run at D (figures only)

Work directories made before this layout held every table directly in ``W/pseudonymised/``
(``<table>.parquet``, ``features_<D>.parquet``, ``scores_<D>.parquet``);
:func:`riskstrat.stages.migrate.migrate_layout` moves them once (``docs/cli.md``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from riskstrat.atomic import partial_path

__all__ = ["CURRENT", "IMPORT_GROUPS", "PracticeFiles", "WorkDir", "private_files"]

CURRENT = "current"


@dataclass(frozen=True)
class WorkDir:
    root: Path

    @property
    def identifiable(self) -> Path:
        return self.root / "identifiable"

    @property
    def pseudonymised(self) -> Path:
        return self.root / "pseudonymised"

    @property
    def quarantine(self) -> Path:
        return self.identifiable / "quarantine"

    @property
    def staging(self) -> Path:
        return self.identifiable / "staging"

    @property
    def vault(self) -> Path:
        return self.identifiable / "vault.bin"

    @property
    def care_register(self) -> Path:
        """The practices' care registers (contract v1.1), encrypted with the vault key: never
        pseudonymised, read only to mark a practice's own list."""
        return self.identifiable / "care_register.bin"

    @property
    def audit(self) -> Path:
        return self.identifiable / "audit.jsonl"

    @property
    def region_file(self) -> Path:
        return self.pseudonymised / "region.json"

    @property
    def linked(self) -> Path:
        """The linked pseudonymised tables (``<table>.parquet``: a file, or Spark's folder)."""
        return self.pseudonymised / "linked"

    @property
    def features_dir(self) -> Path:
        return self.pseudonymised / "features"

    @property
    def scores_dir(self) -> Path:
        return self.pseudonymised / "scores"

    @property
    def exposure(self) -> Path:
        """The exposure records (who was shown on which list, in which band, when)."""
        return self.pseudonymised / "exposure"

    @property
    def monitoring(self) -> Path:
        """The monitoring records (the model's stability and performance month by month)."""
        return self.pseudonymised / "monitoring"

    def exposure_record(self, as_of: dt.date) -> Path:
        """Who was shown on a practice list at D: ``W/pseudonymised/exposure/<D>.parquet``."""
        return self.exposure / f"{as_of.isoformat()}.parquet"

    def monitoring_record(self, as_of: dt.date) -> Path:
        """The monitoring figures of the run at D: ``W/pseudonymised/monitoring/<D>.json``."""
        return self.monitoring / f"{as_of.isoformat()}.json"

    def monitoring_page(self, as_of: dt.date) -> Path:
        """The monitoring report of the run at D: ``W/reports/monitoring_<D>.html``."""
        return self.reports / f"monitoring_{as_of.isoformat()}.html"

    @property
    def spill(self) -> Path:
        """Where DuckDB spills while building features (inside the zone it reads)."""
        return self.pseudonymised / ".spill"

    @property
    def mlflow_db(self) -> Path:
        """The embedded MLflow store (SQLite), unless a tracking URI is configured."""
        return self.root / "mlflow.db"

    @property
    def mlartifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def direct_care(self) -> Path:
        return self.root / "direct_care"

    @property
    def commissioner(self) -> Path:
        return self.root / "commissioner"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def month(self, kind: Path, as_of: dt.date) -> Path:
        """One month's folder of an output kind (``direct_care`` or ``commissioner``): ``<kind>/<D>``."""
        return kind / as_of.isoformat()

    def current(self, kind: Path) -> Path:
        """``<kind>/current``: points at the latest complete month's folder (``spec/interface.md`` v1.1)."""
        return kind / CURRENT

    def month_staging(self, kind: Path, as_of: dt.date) -> Path:
        """Transient: a month's folder of ``kind`` while it is written, before publication."""
        return partial_path(self.month(kind, as_of))

    def month_replaced(self, kind: Path, as_of: dt.date) -> Path:
        """Transient: a month's earlier folder of ``kind`` while a new one takes its place."""
        return kind / f".{as_of.isoformat()}.old"

    def current_staging(self, kind: Path) -> Path:
        """Transient: the new ``current`` pointer of ``kind`` before it replaces the old one."""
        return kind / ".current.tmp"

    def practice_files(self, month: Path, practice_code: str) -> PracticeFiles:
        """One practice's files in a month's direct-care folder ``month`` (published or being written)."""
        return PracticeFiles(month, practice_code)

    def quarantined(self, table: str) -> Path:
        """The quarantined rows of ``table`` (they carry NHS numbers: identifiable zone)."""
        return self.quarantine / f"{table}.csv"

    def staged(self, table: str) -> Path:
        """Transient: the validated identifiable copy of ``table`` while pseudonymisation runs."""
        return self.staging / f"{table}.parquet"

    @property
    def staging_spill(self) -> Path:
        """Where DuckDB spills while pseudonymising (identifiable data: inside the staging folder)."""
        return self.staging / "duckdb-spill"

    def table(self, name: str) -> Path:
        """A linked pseudonymised table: ``W/pseudonymised/linked/<name>.parquet``."""
        return self.linked / f"{name}.parquet"

    def features(self, as_of: dt.date) -> Path:
        """The feature table of the population at D: ``W/pseudonymised/features/<D>.parquet``."""
        return self.features_dir / f"{as_of.isoformat()}.parquet"

    def features_parts(self, as_of: dt.date) -> Path:
        """Transient: one builder's part of the feature table at D per file, while it is built."""
        return self.features_dir / f".{as_of.isoformat()}.parts"

    def scores(self, as_of: dt.date) -> Path:
        """The scores at D: ``W/pseudonymised/scores/<D>.parquet``."""
        return self.scores_dir / f"{as_of.isoformat()}.parquet"

    def scored_dates(self) -> list[dt.date]:
        """Every as-of date with scores (a file, or Spark's folder), oldest first."""
        if not self.scores_dir.is_dir():
            return []
        dates = []
        for p in self.scores_dir.iterdir():
            if p.name.startswith(".") or not p.name.endswith(".parquet"):
                continue
            with contextlib.suppress(ValueError):
                dates.append(dt.date.fromisoformat(p.name.removesuffix(".parquet")))
        return sorted(dates)

    def previous_scored(self, as_of: dt.date) -> dt.date | None:
        """The latest as-of date before ``as_of`` with scores (whatever the interval), or None:
        the month a practice's list is compared with."""
        earlier = [d for d in self.scored_dates() if d < as_of]
        return earlier[-1] if earlier else None

    def scores_work(self, as_of: dt.date) -> Path:
        """Transient: Spark's intermediate tables while scoring at D."""
        return self.scores_dir / f".{as_of.isoformat()}.work"

    def listed(self, as_of: dt.date) -> Path:
        """Transient: the scored people at D partitioned by practice, for a Spark export."""
        return self.scores_dir / f".listed_{as_of.isoformat()}"

    def pseudonymise_report(self) -> Path:
        return self.reports / "pseudonymise.json"

    def score_report(self, as_of: dt.date) -> Path:
        return self.reports / f"score_{as_of.isoformat()}.json"

    def export_report(self, as_of: dt.date) -> Path:
        return self.reports / f"export_{as_of.isoformat()}.json"

    def export_reports(self) -> list[Path]:
        """Every month's export report, oldest first."""
        return sorted(self.reports.glob("export_*.json"))

    def run_report(self, as_of: dt.date) -> Path:
        return self.reports / f"run_{as_of.isoformat()}.json"

    @property
    def stage_records(self) -> Path:
        return self.reports / "stages"

    def stage_record(self, stage: str) -> Path:
        """What a stage read and wrote (:mod:`riskstrat.stages.manifest`)."""
        return self.stage_records / f"{stage}.json"

    def make(self) -> None:
        for d in (self.identifiable, self.pseudonymised, self.linked, self.features_dir, self.scores_dir, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        self.identifiable.chmod(0o700)


@dataclass(frozen=True)
class PracticeFiles:
    """One practice's files in a month's direct-care folder (``W/direct_care/<D>/``), all in the
    identifiable zone (files 0600, folders 0700; ``docs/outputs.md`` says what each is for)::

        <code>.csv, <code>.html                          the list and its page
        <code>/<code>_recently_discharged.csv            emergency spells ended in the last 30 days
        <code>/<code>_<group>_import_<n>.csv              NHS number and Date of Birth, split n = 1, 2, ...
        <code>/<code>_<group>_nhs_numbers.txt             one NHS number a line

    ``group`` is one of :data:`IMPORT_GROUPS`.
    """

    month: Path
    code: str

    @property
    def list_csv(self) -> Path:
        return self.month / f"{self.code}.csv"

    @property
    def page(self) -> Path:
        return self.month / f"{self.code}.html"

    @property
    def folder(self) -> Path:
        """The practice's own folder of the month: the discharged list and the import files."""
        return self.month / self.code

    @property
    def discharged(self) -> Path:
        return self.folder / f"{self.code}_recently_discharged.csv"

    def import_file(self, group: str, part: int) -> Path:
        """Part ``part`` (1, 2, ...) of the import file of ``group``."""
        return self.folder / f"{self.code}_{group}_import_{part}.csv"

    def nhs_numbers(self, group: str) -> Path:
        return self.folder / f"{self.code}_{group}_nhs_numbers.txt"


#: the groups of patients each practice gets import files for: the top bands (very high and high by
#: default) and the recently discharged
IMPORT_GROUPS = ("top_bands", "recently_discharged")


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created inside the block are the owner's alone (0600 and 0700): for
    everything that carries NHS numbers (staged copies, quarantine), wherever it is written."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
