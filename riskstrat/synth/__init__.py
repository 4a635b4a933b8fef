"""Synthetic NHS population in data contract v1 (``riskstrat synth``).

:func:`generate` writes one file per contract table to ``out`` and, to a separate truth
directory, each person's true probability of an emergency admission in ``[D, D + 365)``
for every simulated as-of date ``D`` and the counts of any injected faults. Truth never
goes into the extracts directory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from riskstrat.atomic import move_into_place, partial_path
from riskstrat.privacy.nhs_number import synthetic_nhs_numbers
from riskstrat.schema import TABLES, arrow_schema
from riskstrat.synth.faults import FaultCounts, inject_faults
from riskstrat.synth.generator import (
    DEFAULT_EXTRACT_DATE,
    ChunkResult,
    Region,
    SynthOptions,
    simulate_chunk,
)
from riskstrat.synth.order import Order, date_column, write_in_date_order

__all__ = [
    "DEFAULT_EXTRACT_DATE",
    "FAULTS_FILE",
    "TRUTH_FILE",
    "Order",
    "Structure",
    "SynthOptions",
    "SynthSummary",
    "generate",
]

TRUTH_FILE = "true_risk.parquet"
FAULTS_FILE = "faults.json"
MANIFEST_FILE = "manifest.json"


class Structure(StrEnum):
    """The generative model of health and risk: ``default`` (``generator/``) or ``alt``
    (``alt.py``, independently parameterised; see docs/synthetic-population.md)."""

    DEFAULT = "default"
    ALT = "alt"


@dataclass
class SynthSummary:
    """What was written."""

    out: str
    truth: str | None
    rows: dict[str, int]
    as_of_dates: list[str]
    faults: dict

    def to_dict(self) -> dict:
        return asdict(self)


#: the region's reference tables, written once (not per chunk of people)
_REFERENCE_TABLES = ("ref_practices", "ref_lsoa", "ref_providers")


def _file_schema(name: str, faulted: bool) -> pa.Schema:
    schema = arrow_schema(TABLES[name]).remove_metadata()
    if not faulted:
        return schema
    from riskstrat.synth.faults import FAULT_PLAN, faulted_text_columns

    if name not in FAULT_PLAN:
        return schema
    text = faulted_text_columns(name)
    return pa.schema([pa.field(f.name, pa.string() if f.name in text else f.type) for f in schema])


class _Writer:
    """One output file per table, written in row groups, renamed into place when closed."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str):
        self.path, self.fmt, self.schema = path, fmt, schema
        self.tmp = partial_path(path)
        self.rows = 0
        if fmt == "parquet":
            self.w = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        else:
            self.w = pcsv.CSVWriter(self.tmp, schema)

    def write(self, tbl: pa.Table) -> None:
        tbl = tbl.select(self.schema.names).cast(self.schema)
        self.w.write_table(tbl)
        self.rows += tbl.num_rows

    def close(self) -> None:
        self.w.close()
        move_into_place(self.tmp, self.path)


def _chunk_job(args: tuple) -> tuple[ChunkResult, FaultCounts]:
    opts, region, nhs, chunk, offset, structure = args
    if structure == Structure.ALT:
        from riskstrat.synth.alt import simulate_alt_chunk

        result = simulate_alt_chunk(opts, region, nhs, chunk, offset)
    else:
        result = simulate_chunk(opts, region, nhs, chunk, offset)
    counts = FaultCounts()
    if opts.fault_rate > 0:
        rng = np.random.default_rng([opts.seed, 5000 + chunk])
        result.tables, counts = inject_faults(result.tables, opts.fault_rate, rng)
    return result, counts


def generate(
    out: Path,
    options: SynthOptions,
    truth: Path | None = None,
    fmt: str = "parquet",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    structure: Structure | str = Structure.DEFAULT,
    order: Order | str = Order.PERSON,
) -> SynthSummary:
    """Write a synthetic extracts directory (and the truth, if ``truth`` is given).

    Parameters
    ----------
    out : extracts directory to write (created; contract files in it are replaced).
    options : population size, seed, years, extract date, fault rate, chunk size.
    truth : directory for true risks, fault counts and a manifest; must differ from ``out``.
    fmt : "parquet" (default) or "csv".
    workers : processes (default: up to 2, one per chunk).
    progress : optional callable ``(people_done, people_total)``.
    structure : "default" or "alt", the generative model of health and risk (same tables, same truth file).
    order : "person" (each person's rows together, as simulated) or "date" (the rows of every
        table that names people sorted by its first date, as real deliveries come:
        :mod:`riskstrat.synth.order`); the same rows either way. Date order is written as Parquet.
    """
    structure, order = Structure(structure), Order(order)
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, not {fmt}")
    if order is Order.DATE and fmt != "parquet":
        raise ValueError("extracts in date order are written as Parquet only: use --format parquet")
    if options.patients < 1:
        raise ValueError("patients must be at least 1")
    if truth is not None and truth.resolve() == out.resolve():
        raise ValueError("the truth directory must not be the extracts directory")
    out.mkdir(parents=True, exist_ok=True)
    region = Region.build(options.patients, options.seed, options.practices)
    nhs = synthetic_nhs_numbers(options.patients, np.random.default_rng([options.seed, 99]))
    faulted = options.fault_rate > 0
    writers = {
        name: _Writer(out / f"{name}.{fmt}", _file_schema(name, faulted), fmt)
        for name in TABLES
        if name not in _REFERENCE_TABLES
    }
    truth_writer = None
    if truth is not None:
        truth.mkdir(parents=True, exist_ok=True)
        truth_writer = _Writer(
            truth / TRUTH_FILE,
            pa.schema([("nhs_number", pa.string()), ("as_of", pa.date32()), ("true_risk", pa.float64())]),
            "parquet",
        )
    size = max(1, options.chunk_size)
    jobs = [
        (options, region, nhs[i : i + size], c, c * 10**8, structure)
        for c, i in enumerate(range(0, options.patients, size))
    ]
    workers = workers or min(2, len(jobs), os.cpu_count() or 1)
    counts = FaultCounts()
    done = 0
    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_chunk_job, jobs)
                for (result, c), job in zip(results, jobs, strict=True):
                    done = _take(result, c, job, writers, truth_writer, counts, done, options, progress)
        else:
            for job in jobs:
                result, c = _chunk_job(job)
                done = _take(result, c, job, writers, truth_writer, counts, done, options, progress)
        for name, table in (
            ("ref_practices", region.ref_practices()),
            ("ref_lsoa", region.ref_lsoa()),
            ("ref_providers", region.ref_providers()),
        ):
            w = _Writer(out / f"{name}.{fmt}", arrow_schema(TABLES[name]).remove_metadata(), fmt)
            w.write(table)
            writers[name] = w
    finally:
        for w in writers.values():
            w.close()
        if truth_writer is not None:
            truth_writer.close()
    if order is Order.DATE:
        for name in writers:
            if (column := date_column(name)) is not None:
                write_in_date_order(writers[name].path, writers[name].path, column, out / ".spill")
        shutil.rmtree(out / ".spill", ignore_errors=True)
    as_of = [str(d) for d in _as_of_dates(options)]
    summary = SynthSummary(
        str(out), str(truth) if truth else None, {k: w.rows for k, w in writers.items()}, as_of, counts.to_dict()
    )
    if truth is not None:
        (truth / FAULTS_FILE).write_text(json.dumps(counts.to_dict(), indent=2) + "\n")
        manifest = {
            "options": {**asdict(options), "extract_date": options.extract_date.isoformat()},
            **({"structure": str(structure)} if structure != Structure.DEFAULT else {}),
            **({"order": str(order)} if order != Order.PERSON else {}),
            "format": fmt,
            "as_of_dates": as_of,
            "rows": summary.rows,
        }
        (truth / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return summary


def _as_of_dates(options: SynthOptions):
    import datetime as dt

    return [dt.date(1970, 1, 1) + dt.timedelta(days=b) for b in options.boundaries()]


def _take(result, c, job, writers, truth_writer, counts, done, options, progress) -> int:
    for name, tbl in result.tables.items():
        writers[name].write(tbl)
    if truth_writer is not None:
        truth_writer.write(result.truth)
    counts.add(c)
    done += job[2].shape[0]
    if progress is not None:
        progress(done, options.patients)
    return done
