"""DuckDB connections with bounded memory, spilling to a directory of our choosing.

DuckDB otherwise takes up to 80% of the machine's memory and spills to a temporary
directory it picks; riskstrat sets both so that identifiable data spill only inside the
identifiable zone and a 2-million-person region fits a 2-core, 24 GB machine alongside
everything else.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

__all__ = ["MEMORY_ENV", "MEMORY_LIMIT", "connect", "memory_in_force", "quiet"]

#: Default DuckDB memory limit; override with RISKSTRAT_DUCKDB_MEMORY (e.g. "8GB").
MEMORY_LIMIT = "4GB"
#: the environment variable that overrides :data:`MEMORY_LIMIT`
MEMORY_ENV = "RISKSTRAT_DUCKDB_MEMORY"


def memory_in_force() -> str:
    """The DuckDB memory limit in force: ``RISKSTRAT_DUCKDB_MEMORY`` or :data:`MEMORY_LIMIT`."""
    return os.environ.get(MEMORY_ENV, MEMORY_LIMIT)


def quiet(con) -> None:
    """No progress bar (in a Jupyter kernel without ipywidgets DuckDB refuses the setting: fine)."""
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass


def connect(
    spill_dir: Path | None = None,
    memory_limit: str | None = None,
    keep_order: bool = True,
    keep_memory: bool = False,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection: memory limit, spill directory, no progress bar.

    ``keep_order=False`` lets DuckDB return rows in any order unless a query asks for one
    (ORDER BY), so it can stream and spill aggregates and joins instead of holding them to
    keep the input's order: for queries that sort their own output.

    ``keep_memory=True``: the memory DuckDB's buffer pool has used is kept for the connection's
    next queries, not handed back to the system after each one (first touching fresh memory cost
    up to half of a feature query's time on the benchmark machine: ``docs/performance.md``); never
    more than the limit above. Only for a connection that runs many large queries and is closed
    as soon as they are done: DuckDB then reserves about 20 GB of address space for as long as
    the connection is open (whatever the limit), which the kernel counts against the machine's
    memory, so that a process holding a few such connections cannot start another process
    (``fork``: "Cannot allocate memory"); a machine that does not overcommit memory
    (``vm.overcommit_memory = 2``) would count the whole reservation (not tried).
    """
    con = duckdb.connect()
    quiet(con)
    limit = memory_limit or memory_in_force()
    con.execute(f"SET memory_limit = '{limit}'")
    if keep_memory:
        con.execute(f"SET block_allocator_memory = '{limit}'")
    con.execute(f"SET threads = {max(1, min(os.cpu_count() or 1, 4))}")
    if not keep_order:
        con.execute("SET preserve_insertion_order = false")
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute("SET temp_directory = '" + spill_dir.as_posix().replace("'", "''") + "'")
    return con
