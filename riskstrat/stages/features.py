"""``riskstrat features``: the feature table of the population at D, in the pseudonymised zone."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskstrat import __version__
from riskstrat.atomic import replacing
from riskstrat.background import BackgroundWriter
from riskstrat.errors import RiskstratError
from riskstrat.features import BUILDERS, Builder, data_dictionary, feature_table, filled, part
from riskstrat.features.asof import SOURCE_TABLES, Sources, cut, population, restrict
from riskstrat.features.engine import Engine, connect, load_sources
from riskstrat.features.registry import SHARED
from riskstrat.modelling.selection import PeopleShare
from riskstrat.privacy.audit import AuditLog
from riskstrat.schema import PERSON_KEY, PSEUDONYM
from riskstrat.stages import manifest
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = ["SAMPLE_METADATA", "FeaturesResult", "build_features", "features_path", "sample_of"]

#: the feature table's Parquet metadata key naming the share of people it holds (absent: everyone)
SAMPLE_METADATA = b"riskstrat.people_share"


@dataclass
class FeaturesResult:
    path: Path
    people: int
    features: int
    seconds: float
    engine: str
    #: the share of the population built (a training date's table); None: everyone
    sample: PeopleShare | None = None


def features_path(workdir: Path, as_of: dt.date) -> Path:
    """:meth:`riskstrat.workdir.WorkDir.features` of the work directory ``workdir``."""
    return WorkDir(workdir).features(as_of)


def stage_name(as_of: dt.date) -> str:
    return f"features_{as_of.isoformat()}"


def stage_inputs(workdir: Path, as_of: dt.date, sample: PeopleShare | None = None) -> dict:
    """What the feature table at ``as_of`` depends on: the pseudonymised tables it reads, the
    feature definitions (the data dictionary, which names every feature and its rule) and, for
    a training date's table of only the people training reads, that share of people."""
    wd = WorkDir(workdir)
    tables = {n: manifest.fingerprint(wd.table(n)) for n in SOURCE_TABLES if wd.table(n).exists()}
    definitions = hashlib.sha256(data_dictionary(with_kinds=False).encode()).hexdigest()
    inputs = {"as_of": str(as_of), "tables": tables, "definitions": definitions, "riskstrat": __version__}
    if sample is not None:
        inputs["people"] = sample.as_dict()
    return inputs


def sample_of(path: Path) -> PeopleShare | None:
    """The share of people the feature table at ``path`` holds (None: the whole population)."""
    meta = pq.read_schema(path).metadata or {}
    if SAMPLE_METADATA not in meta:
        return None
    return PeopleShare(**json.loads(meta[SAMPLE_METADATA]))


def _build_in_parts(wd: WorkDir, as_of: dt.date, target: Path, sample: PeopleShare | None = None) -> None:
    """The feature table written one builder at a time, then put side by side.

    One query over every builder at once holds every builder's aggregation (and a join of
    them all) in memory together. Here each builder's features
    (:func:`riskstrat.features.filled`) are computed alone, put in the population's order with
    the defaults for people without records (:func:`_aligned`) and written to a file, so
    memory holds one builder's work and DuckDB spills inside the pseudonymised zone past its
    limit. Tables several builders read (:class:`~riskstrat.features.registry.Shared`, such as
    prescriptions by person and substance) are written first, once, and the builders read
    them. People are keyed by their integer :data:`~riskstrat.schema.PERSON_KEY` where the
    linked tables carry it (grouping by a 32-bit integer rather than a 64-character pseudonym
    is most of the builders' time); the key sorts as the pseudonyms do. The parts have the
    same people in the same order, so they are then read side by side in batches, with each
    person's pseudonym, and written as one table: the whole table is never in memory.

    With ``sample``, only the people of the population in that share (a keyed hash of their
    pseudonyms) are kept, and the sources are restricted to their records before any builder
    runs (:func:`~riskstrat.features.asof.restrict`): a training date's table holds only the
    people training reads, in about half the time of the whole population's.
    """
    parts_dir = wd.features_parts(as_of)
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    try:
        # the buffer pool's memory kept between the builders' queries, and freed with the
        # connection (riskstrat.duck.connect)
        con = connect(Engine.DUCKDB, spill_dir=wd.spill, keep_memory=True)
        try:
            cut_src = cut(load_sources(con, wd.linked, person_key=True), as_of)
            people_path = parts_dir / "population.parquet"
            _write(con, population(cut_src, as_of).select(PSEUDONYM), people_path)
            people = con.read_parquet(str(people_path))
            names_path = parts_dir / "pseudonyms.parquet"
            _write(con, _pseudonyms(con, wd, people), names_path)
            if sample is not None:
                _keep_share(names_path, people_path, sample)
                people = con.read_parquet(str(people_path))
                cut_src = restrict(cut_src, people)
            cut_src = _with_shared(con, cut_src, as_of, parts_dir)
            keys = pq.read_table(names_path, columns=["_key"])["_key"].combine_chunks()
            scratch = np.empty((max(len(b.features) for b in BUILDERS), len(keys)))
            paths = []
            for b in BUILDERS:
                paths.append(parts_dir / f"{b.name}.arrow")
                _write_part(_aligned(con.to_pyarrow(filled(part(cut_src, as_of, b), b)), keys, b, scratch), paths[-1])
        finally:
            con.disconnect()
        _side_by_side(names_path, paths, target, {SAMPLE_METADATA: json.dumps(sample.as_dict())} if sample else None)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
        shutil.rmtree(wd.spill, ignore_errors=True)


def _aligned(raw: pa.Table, keys: pa.Array, builder: Builder, scratch: np.ndarray) -> pa.Table:
    """``builder``'s features (``raw``: :func:`~riskstrat.features.filled`, one row per person it
    has records for, in any order) for the people ``keys`` (``_key`` of the parts' names, in
    their order): each person's row looked up by key, people with no row given the declared
    defaults. This is the left join of :func:`~riskstrat.features.assemble`, done by a look-up
    of each person's row (:func:`_rows_of`) rather than by a join and a sort in DuckDB: at
    2,000,000 people the stage took about 11 % less CPU (``docs/performance.md``).

    Numeric columns are written into rows of ``scratch`` (float64, one row per feature of the
    largest builder, one column per person), which every builder reuses: the returned table
    holds views of it, so it must be written before the next builder's call."""
    raw = raw.combine_chunks()
    rows = _rows_of(keys, raw[PSEUDONYM].chunk(0) if raw.num_rows else pa.array([], keys.type))
    if rows is None:
        raise RiskstratError(f"feature builder {builder.name} gave a person two rows (a bug: please report)")
    missing = rows < 0
    at = np.where(missing, 0, rows)
    columns = []
    for i, f in enumerate(builder.features):
        column = raw[f.name]
        if raw.num_rows and column.type in (pa.int64(), pa.float64()):  # the declared numeric types
            # into the scratch row, from a view of Arrow's buffer (filled: no nulls): no temporaries,
            # whose fresh memory cost more than the copying on the benchmark machine
            values = scratch[i].view(column.type.to_pandas_dtype())
            np.take(column.chunk(0).to_numpy(zero_copy_only=True), at, out=values)
            values[missing] = f.default
            columns.append(pa.array(values))
        else:
            column = column.take(pa.array(rows, mask=missing))
            columns.append(pc.fill_null(column, pa.scalar(f.default, column.type)))
    return pa.Table.from_arrays(columns, names=builder.feature_names)


def _rows_of(keys: pa.Array, found: pa.Array) -> np.ndarray | None:
    """For each of ``keys`` (distinct), its position in ``found`` (-1: absent); None when
    ``found`` holds one of ``keys`` twice. Person keys (non-negative integers, dense: ranks of
    the pseudonyms) are looked up in an array indexed by key, a gather and a scatter; Arrow's
    hash kernels took 0.1-0.4 s each for a million keys on the benchmark machine. Pseudonyms
    (text), by hash."""
    if pa.types.is_integer(keys.type) and len(keys) and pc.min(keys).as_py() >= 0:
        people = np.asarray(keys)
        at = np.full(int(people.max()) + 1, -1, dtype=np.int64)  # person key -> position in keys
        at[people] = np.arange(len(people))
        found = np.asarray(found)
        inside = np.flatnonzero((found >= 0) & (found < len(at)))  # rows whose key could be in keys
        position = at[found[inside]]
        kept = position >= 0
        rows = np.full(len(people), -1, dtype=np.int64)
        rows[position[kept]] = inside[kept]
        duplicated = np.count_nonzero(rows >= 0) != np.count_nonzero(kept)  # a person of keys found twice
    else:
        rows = np.asarray(pc.fill_null(pc.index_in(keys, value_set=found), -1), dtype=np.int64)
        duplicated = pc.count_distinct(found).as_py() != len(found)
    return None if duplicated else rows


def _write_part(table: pa.Table, path: Path) -> None:
    """One builder's aligned features as an Arrow IPC file in batches of :data:`PART_ROWS` rows
    (uncompressed: written and read back moments later, memory-mapped, without decoding)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=PART_ROWS):
            writer.write_batch(batch)


def _keep_share(names_path: Path, people_path: Path, sample: PeopleShare) -> None:
    """Rewrite the parts' population and names (``_key``, ``pseudonym``, in the parts' order)
    with only the people in ``sample``, in the same order."""
    names = pq.read_table(names_path)
    names = names.filter(pa.array(sample.kept(names[PSEUDONYM].to_pandas())))
    pq.write_table(names, names_path, compression="none", row_group_size=PART_ROWS)
    people = pa.table({PSEUDONYM: names["_key"]})
    pq.write_table(people, people_path, compression="none", row_group_size=PART_ROWS)


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


#: rows per row group of the population's names and of the feature table, and per batch of the
#: parts: the parts are read side by side one row group at a time
PART_ROWS = 100_000


def _write(con, expr, path: Path) -> None:
    """The population or its names (a column or two for each person at D) to Parquet, in row
    groups of :data:`PART_ROWS`, uncompressed: read moments later."""
    pq.write_table(con.to_pyarrow(expr), path, compression="none", row_group_size=PART_ROWS)


def _side_by_side(names: Path, paths: list[Path], target: Path, metadata: dict | None = None) -> None:
    """Write the columns of the parts ``paths`` (Arrow IPC files in batches of the sizes of the
    row groups of ``names``: :func:`_write_part`) beside each person's ``pseudonym`` from
    ``names``, as one file, a row group at a time; stops if a part's batches are not the same
    sizes. ``metadata``: the file's schema metadata."""
    key_file = pq.ParquetFile(names)
    parts = [pa.ipc.open_file(pa.memory_map(str(p))) for p in paths]
    groups = key_file.metadata.num_row_groups
    sizes = [key_file.metadata.row_group(g).num_rows for g in range(groups)]
    if any(p.num_record_batches != groups for p in parts):
        raise RiskstratError(f"{target.name}: feature parts of different lengths (a bug: please report)")
    schema = pa.schema(
        [key_file.schema_arrow.field(PSEUDONYM)] + [f for p in parts for f in p.schema], metadata=metadata
    )
    with BackgroundWriter(target, schema, compression="zstd") as writer:
        for g in range(groups):
            batches = [p.get_batch(g) for p in parts]
            if any(b.num_rows != sizes[g] for b in batches):
                raise RiskstratError(f"{target.name}: feature parts out of step (a bug: please report)")
            named = key_file.read_row_group(g, columns=[PSEUDONYM])
            columns = [named[PSEUDONYM]] + [c for b in batches for c in b.columns]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


@named_stage("features")
def build_features(
    workdir: Path,
    as_of: dt.date,
    engine: Engine | str = Engine.DUCKDB,
    spark=None,
    sample: PeopleShare | None = None,
) -> FeaturesResult:
    """Build and write ``W/pseudonymised/features/<D>.parquet``; the run is audited.

    ``sample``: only the people of the population in this share (a training date's table when
    training reads a share of the people: see :func:`riskstrat.stages.train.training_share`);
    the table names it in its metadata (:func:`sample_of`). On Spark the whole population is
    built whatever ``sample`` says (training keeps the same people from it)."""
    wd = WorkDir(workdir)
    if not wd.linked.is_dir():
        raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
    started = time.perf_counter()
    engine = Engine(engine)
    out = wd.features(as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        if engine is Engine.DUCKDB:
            _build_in_parts(wd, as_of, tmp, sample)
        else:
            con = connect(engine, spark)
            table = con.to_pyarrow(feature_table(load_sources(con, wd.linked), as_of))
            pq.write_table(table, tmp, compression="zstd")
    if engine is not Engine.DUCKDB:
        sample = None  # the whole population (see above)
    manifest.record(wd, stage_name(as_of), stage_inputs(workdir, as_of, sample), [out])
    meta = pq.read_metadata(out)
    result = FeaturesResult(
        out, meta.num_rows, meta.num_columns - 1, time.perf_counter() - started, str(engine), sample
    )
    AuditLog(wd.audit).record_stage(
        f"riskstrat features --as-of {as_of}",
        {},
        {"people": result.people, "features": result.features},
        "succeeded",
        engine=str(engine),
        **({"people_share": round(sample.share, 6)} if sample else {}),
    )
    return result
