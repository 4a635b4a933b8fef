"""The monthly batch benchmark's extracts in date order (``--order date``): the same rows, sorted
by each table's first date, as a hospital's or a GP system's monthly deliveries are."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskstrat.schema import TABLES

from .conftest import benchmark


def _canonical(table: pa.Table) -> list[dict]:
    return table.sort_by([(c, "ascending") for c in table.column_names]).to_pylist()


def test_date_ordered_extracts_hold_the_same_rows_sorted_by_date(clean_population, tmp_path):
    extracts, _ = clean_population
    out = tmp_path / "by-date"
    benchmark("monthly_batch_benchmark").date_ordered(extracts, out)

    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in extracts.glob("*.parquet"))
    sorted_tables = {"gp_events": "event_date", "gp_medications": "issue_date", "sus_apc": "admission_date"}
    for path in sorted(extracts.glob("*.parquet")):
        before, after = pq.read_table(path), pq.read_table(out / path.name)
        assert after.schema.names == before.schema.names, path.name
        assert _canonical(after) == _canonical(before), path.name  # not a row lost, added or changed
        if path.stem in sorted_tables:
            dates = after[sorted_tables[path.stem]].combine_chunks()
            assert pc.all(pc.less_equal(dates[:-1], dates[1:])).as_py(), path.name
            # the synthetic extracts hold each person's rows together, not in date order
            original = before[sorted_tables[path.stem]].combine_chunks()
            assert not pc.all(pc.less_equal(original[:-1], original[1:])).as_py(), path.name
    # reference tables, which name no one, are linked as they are, not rewritten
    assert "ref_practices" in TABLES
    assert os.path.samefile(out / "ref_practices.parquet", extracts / "ref_practices.parquet")
    assert not os.path.samefile(out / "gp_events.parquet", extracts / "gp_events.parquet")
    assert not (out / ".spill").exists()
