"""A Parquet writer that encodes and writes on a thread of its own.

Arrow's Parquet writer releases Python's global interpreter lock while it encodes, compresses
and writes a table (C++), so a stage that prepares batches in Python and Arrow (validating,
looking up pseudonyms, filtering) can prepare the next batch on one core while the last is
written on the other. At 2,000,000 people the pseudonymisation stage spends about as long
writing (the staged copy and the pseudonymised tables) as preparing: overlapping them is the
largest single saving left on a two-core machine (``docs/performance.md``).

Hand-written, in a few lines, because neither pyarrow nor the standard library offers it: a
bounded queue (one table waiting while one is written, so memory holds at most three batches)
and one thread. A failure of the write (a full disk, say) is raised in the caller's thread at
its next write or at the close, as the same exception, so the stage's one-line error messages
(:mod:`riskstrat.stages.resources`) still apply.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["BackgroundWriter"]

_DONE = object()


class BackgroundWriter:
    """:class:`pyarrow.parquet.ParquetWriter` (same arguments), writing on a thread.

    ``write_table`` returns once the table is queued; ``close`` (or leaving the ``with``
    block) waits for every queued table to be written and raises the first error of the writes.
    """

    def __init__(self, where: str | Path, schema: pa.Schema, **options) -> None:
        self._writer = pq.ParquetWriter(where, schema, **options)
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="parquet writer", daemon=True)
        self._thread.start()

    @property
    def schema(self) -> pa.Schema:
        return self._writer.schema

    def _drain(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:  # after a failure, later tables are dropped: the caller raises it
                try:
                    self._writer.write_table(*item)
                except BaseException as exc:  # handed to the caller's thread as it is
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
        self._raise()
        self._queue.put((table, row_group_size))

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.write_table(pa.Table.from_batches([batch]))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_DONE)
        self._thread.join()
        try:
            self._writer.close()
        finally:
            self._raise()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
            return
        try:  # already failing: finish the thread and the file, keep the first error
            self.close()
        except BaseException:  # the error being raised already says what went wrong
            pass
