"""The Parquet writer on a thread of its own (riskstrat/background.py): same file, errors raised in the caller."""

from __future__ import annotations

import errno

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.background import BackgroundWriter

SCHEMA = pa.schema([("n", pa.int64()), ("code", pa.string())])


def _table(start: int, rows: int) -> pa.Table:
    return pa.table({"n": range(start, start + rows), "code": [f"c{i % 13}" for i in range(rows)]}, schema=SCHEMA)


def test_writes_every_table_in_order_with_the_options_given(tmp_path):
    path = tmp_path / "out.parquet"
    with BackgroundWriter(path, SCHEMA, compression="zstd", write_statistics=["n"]) as writer:
        for k in range(6):
            writer.write_table(_table(k * 1000, 1000), row_group_size=400)
    out = pq.ParquetFile(path)
    assert out.read()["n"].to_pylist() == list(range(6000))  # every row, in the order written
    assert out.metadata.num_row_groups == 6 * 3  # 400 + 400 + 200 per table
    column = out.metadata.row_group(0).column(0)
    assert column.compression == "ZSTD" and column.statistics.max == 399
    assert not out.metadata.row_group(0).column(1).is_stats_set  # statistics only where asked


def test_a_failed_write_is_raised_in_the_callers_thread():
    class FullDisk:
        """A file that runs out of space after its first few kilobytes."""

        def __init__(self):
            self.written, self.closed = 0, False

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

        def flush(self):
            pass

        def close(self):
            self.closed = True

        def tell(self):
            return self.written

    sink = FullDisk()
    with pytest.raises(OSError) as caught, BackgroundWriter(sink, SCHEMA, compression="none") as writer:
        for k in range(50):
            writer.write_table(_table(k * 10_000, 10_000))
    assert caught.value.errno == errno.ENOSPC  # the same error, so the stage's one-line message names it


def test_a_table_of_the_wrong_schema_fails_at_close_at_the_latest(tmp_path):
    writer = BackgroundWriter(tmp_path / "bad.parquet", SCHEMA)
    writer.write_table(pa.table({"other": [1, 2]}))
    with pytest.raises(ValueError, match="schema"):
        writer.close()
    writer.close()  # closing twice is harmless
