"""``riskstrat features``: the feature table of the population at D, in the pseudonymised zone."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat import __version__
from riskstrat.atomic import replacing
from riskstrat.background import BackgroundWriter
from riskstrat.errors import RiskstratError
from riskstrat.features import BUILDERS, data_dictionary, feature_table, finished, part
from riskstrat.features.asof import SOURCE_TABLES, Sources, cut, population
from riskstrat.features.engine import Engine, connect, load_sources
from riskstrat.features.registry import SHARED
from riskstrat.privacy.audit import AuditLog
from riskstrat.schema import PERSON_KEY, PSEUDONYM
from riskstrat.stages import manifest
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = ["FeaturesResult", "build_features", "features_path"]


@dataclass
class FeaturesResult:
    path: Path
    people: int
    features: int
    seconds: float
    engine: str


def features_path(workdir: Path, as_of: dt.date) -> Path:
    """:meth:`riskstrat.workdir.WorkDir.features` of the work directory ``workdir``."""
    return WorkDir(workdir).features(as_of)


def stage_name(as_of: dt.date) -> str:
    return f"features_{as_of.isoformat()}"


def stage_inputs(workdir: Path, as_of: dt.date) -> dict:
    """What the feature table at ``as_of`` depends on: the pseudonymised tables it reads and
    the feature definitions (the data dictionary, which names every feature and its rule)."""
    wd = WorkDir(workdir)
    tables = {n: manifest.fingerprint(wd.table(n)) for n in SOURCE_TABLES if wd.table(n).exists()}
    definitions = hashlib.sha256(data_dictionary(with_kinds=False).encode()).hexdigest()
    return {"as_of": str(as_of), "tables": tables, "definitions": definitions, "riskstrat": __version__}


def _build_in_parts(wd: WorkDir, as_of: dt.date, target: Path) -> None:
    """The feature table written one builder at a time, then put side by side.

    One query over every builder at once holds every builder's aggregation (and a join of
    them all) in memory together. Here each builder's features for the whole population
    (:func:`riskstrat.features.finished`: defaults filled, sorted by person) are computed
    alone and written to Parquet, so memory holds one builder's work and DuckDB spills inside
    the pseudonymised zone past its limit. Tables several builders read
    (:class:`~riskstrat.features.registry.Shared`, such as prescriptions by person and
    substance) are written first, once, and the builders read them. People are keyed by their integer
    :data:`~riskstrat.schema.PERSON_KEY` where the linked tables carry it (grouping by a 32-bit
    integer rather than a 64-character pseudonym is most of the builders' time); the key sorts
    as the pseudonyms do. The parts have the same people in the same order, so they are then
    read side by side in batches, with each person's pseudonym, and written as one table: the
    whole table is never in memory.
    """
    parts_dir = wd.features_parts(as_of)
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    try:
        con = connect(Engine.DUCKDB, spill_dir=wd.spill)
        cut_src = cut(load_sources(con, wd.linked, person_key=True), as_of)
        cut_src = _with_shared(con, cut_src, as_of, parts_dir)
        people_path = parts_dir / "population.parquet"
        _write(con, population(cut_src, as_of).select(PSEUDONYM), people_path)
        people = con.read_parquet(str(people_path))
        names_path = parts_dir / "pseudonyms.parquet"
        _write(con, _pseudonyms(con, wd, people), names_path)
        paths = []
        for b in BUILDERS:
            paths.append(parts_dir / f"{b.name}.parquet")
            _write(con, finished(people, part(cut_src, as_of, b), b), paths[-1])
        con.disconnect()
        _side_by_side(names_path, paths, target)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
        shutil.rmtree(wd.spill, ignore_errors=True)


def _with_shared(con, cut_src: Sources, as_of: dt.date, parts_dir: Path) -> Sources:
    """``cut_src`` with every shared table built from it written to ``parts_dir`` once (by
    DuckDB, streaming) and read back, for the builders to read."""
    built = {}
    for s in SHARED:
        path = parts_dir / f"shared_{s.name}.parquet"
        con.to_parquet(s.build(cut_src, as_of), path, compression="uncompressed")
        built[s.name] = con.read_parquet(str(path))
    return replace(cut_src, shared=built)


def _pseudonyms(con, wd: WorkDir, people):
    """``_key`` (how the parts know each person: person key or pseudonym) and ``pseudonym`` of
    everyone in ``people``, in the parts' order."""
    if people.schema()[PSEUDONYM].is_string():
        return people.select(_key=people[PSEUDONYM], pseudonym=people[PSEUDONYM]).order_by("_key")
    reg = con.read_parquet(str(wd.table("gp_registrations")))
    pairs = reg.select(_key=reg[PERSON_KEY], _name=reg[PSEUDONYM]).distinct()
    named = people.join(pairs, people[PSEUDONYM] == pairs._key)
    return named.select(_key=named._key, pseudonym=named._name).order_by("_key")


#: rows per row group of the parts, and of the feature table: the parts are read side by side one
#: row group at a time
PART_ROWS = 100_000


def _write(con, expr, path: Path) -> None:
    """One part to Parquet in the types the expression declares. (DuckDB's own COPY would write
    its native types: a SUM of integers as a 128-bit integer, stored as a double, where the
    feature is declared int64.) A part is one builder's columns for the population: at
    2,000,000 people about 1.3 million rows of a few dozen numbers, a few hundred MB at most.
    Uncompressed: it is read once, moments later."""
    pq.write_table(con.to_pyarrow(expr), path, compression="none", row_group_size=PART_ROWS)


def _side_by_side(names: Path, paths: list[Path], target: Path) -> None:
    """Write the columns of Parquet files holding the same people in the same order, in row
    groups of the same sizes (by the ``_key`` of ``names`` in their ``pseudonym`` column), as one
    file with each person's pseudonym, a row group at a time; stops if the files ever disagree
    on a person."""
    key_file = pq.ParquetFile(names)
    files = [pq.ParquetFile(p) for p in paths]
    groups = key_file.metadata.num_row_groups
    sizes = [key_file.metadata.row_group(g).num_rows for g in range(groups)]
    if any([f.metadata.row_group(g).num_rows for g in range(f.metadata.num_row_groups)] != sizes for f in files):
        raise RiskstratError(f"{target.name}: feature parts of different lengths (a bug: please report)")
    schema = pa.schema(
        [key_file.schema_arrow.field(PSEUDONYM)] + [f for p in files for f in p.schema_arrow if f.name != PSEUDONYM]
    )
    with BackgroundWriter(target, schema, compression="zstd") as writer:
        for g in range(groups):
            named = key_file.read_row_group(g)
            tables = [f.read_row_group(g) for f in files]
            if any(not t[PSEUDONYM].equals(named["_key"]) for t in tables):
                raise RiskstratError(f"{target.name}: feature parts out of step (a bug: please report)")
            columns = [named[PSEUDONYM]] + [t[c] for t in tables for c in t.column_names if c != PSEUDONYM]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


@named_stage("features")
def build_features(workdir: Path, as_of: dt.date, engine: Engine | str = Engine.DUCKDB, spark=None) -> FeaturesResult:
    """Build and write ``W/pseudonymised/features/<D>.parquet``; the run is audited."""
    wd = WorkDir(workdir)
    if not wd.linked.is_dir():
        raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
    started = time.perf_counter()
    engine = Engine(engine)
    out = wd.features(as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        if engine is Engine.DUCKDB:
            _build_in_parts(wd, as_of, tmp)
        else:
            con = connect(engine, spark)
            table = con.to_pyarrow(feature_table(load_sources(con, wd.linked), as_of))
            pq.write_table(table, tmp, compression="zstd")
    manifest.record(wd, stage_name(as_of), stage_inputs(workdir, as_of), [out])
    meta = pq.read_metadata(out)
    result = FeaturesResult(out, meta.num_rows, meta.num_columns - 1, time.perf_counter() - started, str(engine))
    AuditLog(wd.audit).record_stage(
        f"riskstrat features --as-of {as_of}",
        {},
        {"people": result.people, "features": result.features},
        "succeeded",
        engine=str(engine),
    )
    return result
