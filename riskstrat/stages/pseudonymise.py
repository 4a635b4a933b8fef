"""``riskstrat pseudonymise``: validate, apply opt-outs, pseudonymise, fill the vault.

Identifiable extracts go in; out come, in ``W/pseudonymised/linked/``, the same tables keyed by
the region pseudonym instead of the NHS number (``month_of_birth`` in place of the date of
birth), and in ``W/identifiable/`` the encrypted vault, the quarantine and the audit log.
Staged identifiable copies are deleted once the pseudonymised tables are written. People
whose objections exclude them from every use are removed before their rows reach the
pseudonymised zone; people excluded from some uses are flagged in ``opt_out_uses``.

Every input row is accounted for, per table: rows read = quarantined + opted out + written.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from riskstrat import __version__
from riskstrat.atomic import replacing
from riskstrat.background import BackgroundWriter
from riskstrat.config import Config
from riskstrat.duck import connect
from riskstrat.errors import KeyMissingError, RiskstratError
from riskstrat.ingest.read import locate_tables
from riskstrat.ingest.validate import ValidationReport, validate_extracts
from riskstrat.privacy.audit import AuditLog, file_checksum
from riskstrat.privacy.keys import fingerprint
from riskstrat.privacy.nhs_number import is_valid as nhs_number_is_valid
from riskstrat.privacy.optout import UNREADABLE, Use, exclusions
from riskstrat.privacy.pseudonym import PseudonymMap
from riskstrat.privacy.vault import write_register, write_vault
from riskstrat.schema import CARE_REGISTER, PERSON_KEY, PSEUDONYM, TABLES, pseudonymised_schema
from riskstrat.stages import manifest
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir, private_files

__all__ = [
    "OPT_OUT_USES_TABLE",
    "OWN_PROCESS",
    "STAGE",
    "PseudonymiseReport",
    "count_opt_outs",
    "count_written",
    "extract_checksums",
    "keep_register",
    "pseudonymise",
    "stage_inputs",
]

OPT_OUT_USES_TABLE = "opt_out_uses"
_COUNTS = ("read", "quarantined", "opted_out", "consumed", "written")


@dataclass
class PseudonymiseReport:
    """Counts only: never a row value, never a key."""

    validation: ValidationReport
    tables: dict[str, dict] = field(default_factory=dict)
    opted_out: dict[str, int] = field(default_factory=dict)
    vault_rows: int | None = None
    reidentification: str = ""
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(t["read"] for t in self.tables.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    @property
    def reconciles(self) -> bool:
        return all(
            t["read"] == t["quarantined"] + t["opted_out"] + t["consumed"] + t["written"] for t in self.tables.values()
        )

    def to_dict(self) -> dict:
        return {
            "tables": self.tables,
            "opted_out_people": self.opted_out,
            "vault_rows": self.vault_rows,
            "reidentification": self.reidentification,
            "rows_read": self.rows_read,
            "seconds": round(self.seconds, 2),
            "rows_per_second": round(self.rows_per_second),
            "reconciles": self.reconciles,
            "validation": self.validation.to_dict(),
        }


STAGE = "pseudonymise"
#: the stage runs in a process of its own (riskstrat.stages.isolated: Arrow's freed memory kept
#: for reuse inside it, all of it the machine's again when it ends), in a run and alone
OWN_PROCESS = True


def extract_checksums(extracts: Path, config: Config) -> dict[str, str]:
    """SHA-256 of each extract file, by table (what the audit log records as the stage's inputs)."""
    return {s.name: file_checksum(s.path) for s in locate_tables(extracts, config).values()}


def stage_inputs(checksums: dict[str, str], config: Config, pseudonym_key: str, today: dt.date | None) -> dict:
    """What the stage's output depends on: the extract files, the configuration, the region
    key (by fingerprint) and the day (validation refuses dates after it)."""
    return {
        "extracts": checksums,
        "config": manifest.canonical(config),
        "key": fingerprint(pseudonym_key),
        "today": str(today or dt.date.today()),
        "riskstrat": __version__,
    }


def _check_region(wd: WorkDir, key: str, region: str) -> None:
    tag = fingerprint(key)
    if wd.region_file.exists():
        held = json.loads(wd.region_file.read_text())
        if held.get("key_fingerprint") != tag:
            raise KeyMissingError(
                f"{wd.root}: this work directory holds pseudonyms made with another region key "
                f"(region {held.get('region')!r}); data of two regions are never mixed: use a new work directory"
            )
        return
    wd.pseudonymised.mkdir(parents=True, exist_ok=True)
    wd.region_file.write_text(json.dumps({"region": region, "key_fingerprint": tag}, indent=2) + "\n")


def _refuse_unsafe(validation: ValidationReport, config: Config, extracts: Path) -> None:
    """Stop before anything is written when going on would silently change who is counted:
    no objections supplied and none said to be applied upstream; a required table with no rows."""
    if "opt_outs" not in validation.tables and not config.opt_outs_applied_upstream:
        raise RiskstratError(
            f"{extracts}: no opt_outs table, so patients' objections cannot be applied and nothing is processed: "
            "supply opt_outs (data contract v1), or, if objections were applied before the extracts reached you, "
            "say who applied them in the configuration (opt_outs: {applied_upstream: DSCRO})"
        )
    empty = [
        t
        for t in validation.tables.values()
        if TABLES[t.table].required and t.rows_read == 0 and t.table not in config.expected_empty
    ]
    if empty:
        names = ", ".join(f"{t.table} ({t.file})" for t in empty)
        raise RiskstratError(
            f"{extracts}: required table(s) with no rows: {names}; every feature from them would be 0 for everyone: "
            "check the extract, or, if the region truly has none, list them under validation.expected_empty "
            "in the configuration"
        )


def _objection_sources(validation: ValidationReport, config: Config) -> str:
    """How patients' objections were applied, in words, for the run summary and the audit log."""
    sources = []
    if "opt_outs" in validation.tables:
        sources.append(f"from the opt_outs table ({validation.tables['opt_outs'].file})")
    if config.opt_outs_applied_upstream:
        sources.append(f"upstream by {config.opt_outs_applied_upstream} (configuration {config.source})")
    return "applied " + " and ".join(sources)


def objections(staged: Path | None, quarantine: Path) -> pa.Table:
    """Every objection: the accepted rows of ``opt_outs`` (``staged``) and, failing closed,
    each quarantined row from which an identifier can be recovered (an NHS number written with
    spaces or dashes, with a valid check digit; or a pseudonym), as an objection of type
    :data:`~riskstrat.privacy.optout.UNREADABLE`, which excludes the person from every use.

    Returns ``identifier``, ``opt_out_type`` and ``identifier_kind`` (``nhs_number`` or ``pseudonym``)
    columns; empty when there are none."""
    empty = pa.table({"identifier": pa.array([], pa.string()), "opt_out_type": pa.array([], pa.string())})
    accepted, kind = empty, "nhs_number"
    if staged is not None:
        tbl = pq.read_table(staged)
        kind = "nhs_number" if "nhs_number" in tbl.column_names else PSEUDONYM
        accepted = pa.table({"identifier": tbl[kind].combine_chunks(), "opt_out_type": tbl["opt_out_type"]})
    recovered = empty
    path = quarantine / "opt_outs.csv"
    if path.exists():
        q = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"raw_line": pa.string()}))
        q = q.cast(pa.schema([pa.field(n, pa.string()) for n in q.column_names]))
        column = q[kind] if kind in q.column_names else pa.nulls(q.num_rows, pa.string())
        text = pc.coalesce(column, q["raw_line"]).combine_chunks()
        if kind == "nhs_number":
            found = pc.extract_regex(text, r"(?:^|[^0-9])(?P<n>[0-9]{3}[ -]*[0-9]{3}[ -]*[0-9]{4})(?:[^0-9]|$)")
            ids = pc.replace_substring_regex(pc.struct_field(found, "n"), r"[ -]", "")
            ids = pc.filter(ids, pa.array(nhs_number_is_valid(ids)))
        else:
            found = pc.extract_regex(pc.utf8_lower(text), r"(?P<p>[0-9a-f]{64})")
            ids = pc.drop_null(pc.struct_field(found, "p"))
        ids = pc.unique(ids)
        recovered = pa.table({"identifier": ids, "opt_out_type": pa.array([UNREADABLE] * len(ids), pa.string())})
    return pa.concat_tables([accepted, recovered]).append_column(
        "identifier_kind", pa.array([kind] * (accepted.num_rows + recovered.num_rows), pa.string())
    )


def _quote(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


@named_stage("pseudonymise")
def pseudonymise(
    extracts: Path,
    workdir: Path,
    config: Config,
    pseudonym_key: str,
    vault_key: str | None,
    today: dt.date | None = None,
    progress=None,
    command: str = "riskstrat pseudonymise",
    write=None,
) -> PseudonymiseReport:
    """Run the stage; see the module docstring. Raises RiskstratError for bad input.

    ``write(wd, config, pseudonym_key, vault_key, report)`` does the work after validation
    (default: DuckDB on this machine; :mod:`riskstrat.scaleout` passes Spark's)."""
    wd = WorkDir(workdir)
    wd.make()
    audit = AuditLog(wd.audit)
    started = time.perf_counter()
    inputs: dict[str, str] = {}
    try:
        sources = locate_tables(extracts, config)
        inputs = extract_checksums(extracts, config)
        _check_region(wd, pseudonym_key, config.region)
        registrations_identifiable = sources["gp_registrations"].table.identifiable
        if registrations_identifiable and vault_key is None:
            raise KeyMissingError("no key: set RISKSTRAT_VAULT_KEY (or RISKSTRAT_VAULT_KEY_FILE) to fill the vault")
        shutil.rmtree(wd.staging, ignore_errors=True)
        for old in wd.quarantine.glob("*.csv") if wd.quarantine.is_dir() else ():
            old.unlink()  # an earlier extract's quarantine would be read as this one's
        with private_files():  # staged copies and quarantine carry NHS numbers
            validation = validate_extracts(extracts, config, wd.quarantine, wd.staging, today=today, progress=progress)
        _refuse_unsafe(validation, config, extracts)
        report = PseudonymiseReport(validation)
        report.opted_out["objections"] = _objection_sources(validation, config)
        (write or _run)(wd, config, pseudonym_key, vault_key, report)
        for name in TABLES:  # a table absent this month is never read from an earlier month's copy
            if name not in report.tables and wd.table(name).exists():
                wd.table(name).unlink()
    except RiskstratError as exc:
        audit.record_stage(command, inputs, {}, "failed", error=type(exc).__name__, message=str(exc))
        exc.riskstrat_audited = True
        raise
    finally:
        shutil.rmtree(wd.staging, ignore_errors=True)  # identifiable staged copies never stay
    report.seconds = time.perf_counter() - started
    if not report.reconciles:  # internal error, never the user's
        raise AssertionError(f"pseudonymise does not reconcile: {report.tables}")
    wd.reports.mkdir(parents=True, exist_ok=True)
    wd.pseudonymise_report().write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    audit.record_stage(
        command,
        inputs,
        {k: {x: v[x] for x in _COUNTS} for k, v in report.tables.items()},
        "succeeded",
        opted_out_people=report.opted_out,
        vault_rows=report.vault_rows,
    )
    outputs = [wd.table(n) for n in (*TABLES, OPT_OUT_USES_TABLE) if wd.table(n).exists()]
    manifest.record(
        wd,
        STAGE,
        stage_inputs(inputs, config, pseudonym_key, today),
        [*outputs, *([wd.vault] if wd.vault.exists() else [])],
    )
    return report


def _run(wd: WorkDir, config: Config, key: str, vault_key: str | None, report: PseudonymiseReport) -> None:
    staged = {n: wd.staged(n) for n in TABLES if wd.staged(n).exists()}
    con = connect(wd.staging_spill)
    identifiable = {
        n
        for n, p in staged.items()
        if "nhs_number" in pq.ParquetFile(p).schema_arrow.names and not TABLES[n].identifiable_zone_only
    }
    # One pseudonym per distinct NHS number in any table.
    if identifiable:
        union = " UNION ".join(
            f"SELECT DISTINCT nhs_number FROM read_parquet({_quote(staged[n])})" for n in identifiable
        )
        numbers = con.sql(union).to_arrow_table()["nhs_number"].combine_chunks()
    else:
        numbers = pa.array([], pa.string())
    con.close()
    pmap = PseudonymMap(numbers, key)
    # Opt-outs, by pseudonym.
    flags = _opt_out_flags(objections(staged.get("opt_outs"), wd.quarantine), pmap, config, report)
    removed = flags.filter(flags["all_uses"])[PSEUDONYM].combine_chunks()
    partial = flags.filter(pc.invert(flags["all_uses"]))
    for name, path in staged.items():
        if name == "opt_outs":
            count_opt_outs(report, path)
            continue
        if TABLES[name].identifiable_zone_only:
            continue
        _write_table(name, path, wd, pmap if name in identifiable else None, removed, report)
    _write_opt_out_uses(partial, wd)
    _fill_vault(staged.get("gp_registrations"), "gp_registrations" in identifiable, pmap, flags, wd, vault_key, report)
    keep_register(staged.get(CARE_REGISTER), wd, vault_key, report)


def count_opt_outs(report: PseudonymiseReport, path: Path) -> None:
    """The opt-out table's line of the report: its accepted rows are consumed as the policy,
    never written to the pseudonymised zone."""
    t = report.validation.tables["opt_outs"]
    report.tables["opt_outs"] = {
        "read": t.rows_read,
        "quarantined": t.quarantined_rows,
        "opted_out": 0,
        "consumed": pq.ParquetFile(path).metadata.num_rows,
        "written": 0,
        "identifier": "applied as the opt-out policy; not written",
    }


def keep_register(path: Path | None, wd: WorkDir, vault_key: str | None, report: PseudonymiseReport) -> None:
    """The care register (contract v1.1): its accepted rows are consumed into
    ``W/identifiable/care_register.bin`` (encrypted with the vault key), never written to the
    pseudonymised zone. Without a register this month, or without a vault (registrations
    pseudonymised at source: no list to mark), an earlier month's register is removed."""
    if path is None or not wd.vault.exists() or vault_key is None:
        wd.care_register.unlink(missing_ok=True)
        if path is not None:
            _count_consumed(report, CARE_REGISTER, path, "not used: no direct-care lists to mark")
        return
    table = pq.read_table(path)
    if "nhs_number" not in table.column_names:  # pseudonymised at source: cannot mark an NHS-number list
        wd.care_register.unlink(missing_ok=True)
        _count_consumed(report, CARE_REGISTER, path, "not used: pseudonymised at source")
        return
    write_register(wd.care_register, table, vault_key)
    _count_consumed(report, CARE_REGISTER, path, "kept in the identifiable zone (encrypted); not written")


def _count_consumed(report: PseudonymiseReport, name: str, path: Path, identifier: str) -> None:
    t = report.validation.tables[name]
    report.tables[name] = {
        "read": t.rows_read,
        "quarantined": t.quarantined_rows,
        "opted_out": 0,
        "consumed": pq.ParquetFile(path).metadata.num_rows,
        "written": 0,
        "identifier": identifier,
    }


def count_written(report: PseudonymiseReport, name: str, staged: Path, written: int, identifiable: bool) -> None:
    """A written table's line of the report: rows accepted by validation (``staged``) and not
    written were removed by the opt-out policy."""
    accepted = pq.ParquetFile(staged).metadata.num_rows
    t = report.validation.tables[name]
    report.tables[name] = {
        "read": t.rows_read,
        "quarantined": t.quarantined_rows,
        "opted_out": accepted - written,
        "consumed": 0,
        "written": written,
        "identifier": "nhs_number" if identifiable else (PSEUDONYM if TABLES[name].identifiable else "none"),
    }


def _opt_out_flags(found: pa.Table, pmap: PseudonymMap, config: Config, report: PseudonymiseReport) -> pa.Table:
    """Per person with an objection (``found``: :func:`objections`), by pseudonym, the uses it
    excludes them from; the report's opt-out counts."""
    empty = pa.table(
        {
            PSEUDONYM: pa.array([], pa.string()),
            **{u.value: pa.array([], pa.bool_()) for u in Use},
            "all_uses": pa.array([], pa.bool_()),
        }
    )
    unreadable = pc.sum(pc.equal(found["opt_out_type"], UNREADABLE)).as_py() or 0
    report.opted_out |= {"unreadable_objections_applied": int(unreadable)}
    if found.num_rows == 0:
        report.opted_out |= {
            "people_with_objections": 0,
            "removed_before_pseudonymisation": 0,
            "flagged_for_some_uses": 0,
        }
        return empty
    tbl = found
    if found["identifier_kind"][0].as_py() == "nhs_number":
        # objections of people with no other rows need no pseudonym: they are in no table
        known = pc.is_in(tbl["identifier"], value_set=pmap.numbers)
        tbl = tbl.filter(known)
        ids = pmap.apply(tbl["identifier"])
    else:
        ids = tbl["identifier"].combine_chunks()
    out = exclusions(ids, tbl["opt_out_type"].combine_chunks(), config.opt_out_policy)
    out = out.rename_columns([PSEUDONYM, *out.column_names[1:]])
    kinds = pa.table({"id": ids, "t": tbl["opt_out_type"]}).group_by("id").aggregate([("t", "distinct")])
    types = [tuple(sorted(x)) for x in kinds["t_distinct"].to_pylist()]
    report.opted_out |= {
        "people_with_objections": len(types),
        "type1_only": types.count(("type1",)),
        "ndoo_only": types.count(("ndoo",)),
        "both": types.count(("ndoo", "type1")),
        "removed_before_pseudonymisation": int(pc.sum(out["all_uses"]).as_py() or 0),
        "flagged_for_some_uses": int(out.num_rows - (pc.sum(out["all_uses"]).as_py() or 0)),
    }
    return out


#: rows per Parquet row group of the pseudonymised tables (DuckDB's own default)
ROW_GROUP_ROWS = 122_880
_BATCH_ROWS = 1 << 20


def _write_table(
    name: str, path: Path, wd: WorkDir, pmap: PseudonymMap | None, removed: pa.Array, report: PseudonymiseReport
) -> None:
    """One accepted table to the pseudonymised zone, streamed in batches in its source order:
    NHS numbers replaced by pseudonyms through ``pmap`` (looked up, never hashed again), people
    ``removed`` by their objections dropped, dates of birth cut to the month, each person's
    :data:`~riskstrat.schema.PERSON_KEY` beside the pseudonym (for the features stage). No sort: the
    output depends only on the input, never on thread timing, so a rerun writes the same file;
    and extracts come in an order worth keeping (by person, or by date, which lets a reader
    filtering by date skip row groups)."""
    tbl = TABLES[name]
    schema = pseudonymised_schema(name)
    if pmap is not None:
        schema = schema.append(pa.field(PERSON_KEY, pa.int32()))
    out = wd.table(name)
    # objections by position in the map: the look-up gives both the pseudonym and the decision
    removed_at = np.asarray(pc.is_in(pmap.pseudonyms, value_set=removed), dtype=bool) if pmap is not None else None
    written = 0
    # statistics of the columns readers filter on (dates, numbers: row groups are skipped by date);
    # none of text (pseudonyms, codes: unordered, never filtered by range): about a quarter of the write's time
    ranged = [f.name for f in schema if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
    with (
        replacing(out) as partial,
        BackgroundWriter(partial, schema, compression="zstd", write_statistics=ranged) as writer,
    ):
        # NHS numbers as Parquet stores them, a dictionary of each row group's distinct numbers and
        # an index per row: looked up once per distinct number (PseudonymMap.indices)
        numbers = ["nhs_number"] if pmap is not None else []
        pending: list[pa.Table] = []
        for batch in pq.ParquetFile(path, read_dictionary=numbers).iter_batches(batch_size=_BATCH_ROWS):
            if pmap is not None:
                idx = pmap.indices(batch["nhs_number"])
                keep = ~removed_at[idx]
                ids = pmap.pseudonyms.take(pa.array(idx[keep]))
                person_keys = pa.array(pmap.person_keys[idx[keep]])
                batch = batch.filter(pa.array(keep))
            elif tbl.identifiable:
                ids = batch[PSEUDONYM]
                batch = batch.filter(pc.invert(pc.is_in(ids, value_set=removed)))
                ids = batch[PSEUDONYM]
            columns = []
            for f in schema:
                if f.name == PSEUDONYM:
                    columns.append(ids)
                elif f.name == PERSON_KEY:
                    columns.append(person_keys)
                elif f.name == "month_of_birth":
                    columns.append(pc.floor_temporal(batch["date_of_birth"], unit="month"))
                else:
                    columns.append(batch[f.name])
            pending.append(pa.Table.from_arrays(columns, schema=schema))
            written += batch.num_rows
            pending = _write_whole_groups(writer, pending)
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
    count_written(report, name, path, written, pmap is not None)


def _write_whole_groups(writer: BackgroundWriter, pending: list[pa.Table]) -> list[pa.Table]:
    """Write the rows of ``pending`` in whole row groups of :data:`ROW_GROUP_ROWS` once they make
    :data:`_BATCH_ROWS` or more; return what is left. (Batches read with dictionaries end where
    the staged file's row groups do, so their sizes vary; the table's row groups do not.)"""
    rows = sum(t.num_rows for t in pending)
    if rows < _BATCH_ROWS:
        return pending
    whole = rows - rows % ROW_GROUP_ROWS
    table = pa.concat_tables(pending)
    writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
    return [table.slice(whole)] if whole < rows else []


def _write_opt_out_uses(partial: pa.Table, wd: WorkDir) -> None:
    with replacing(wd.table(OPT_OUT_USES_TABLE)) as tmp:
        pq.write_table(partial.drop_columns(["all_uses"]), tmp)


def _fill_vault(
    path: Path | None,
    identifiable: bool,
    pmap: PseudonymMap,
    flags: pa.Table,
    wd: WorkDir,
    vault_key: str | None,
    report: PseudonymiseReport,
) -> None:
    if path is None or not identifiable or vault_key is None:
        if wd.vault.exists():
            wd.vault.unlink()  # a vault from an earlier run would be stale
        report.reidentification = (
            "not possible: gp_registrations was pseudonymised at source, so direct-care lists cannot be produced"
        )
        return
    reg = pq.read_table(
        path, columns=["nhs_number", "practice_code", "registration_start", "registration_end", "date_of_birth"]
    )
    pseud = pmap.apply(reg["nhs_number"])
    reg = reg.append_column(PSEUDONYM, pseud)
    # Only people whose data may be used for direct care are re-identifiable.
    no_direct_care = flags.filter(pc.or_(flags["direct_care"], flags["all_uses"]))[PSEUDONYM]
    reg = reg.filter(pc.invert(pc.is_in(reg[PSEUDONYM], value_set=no_direct_care)))
    report.vault_rows = write_vault(wd.vault, reg, vault_key)
    report.reidentification = "through the vault, one practice at a time, audited"
