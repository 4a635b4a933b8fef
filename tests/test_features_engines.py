"""One synthetic population: DuckDB and Spark agree; features never see the future."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskstrat.features import BUILDERS, data_dictionary, feature_names, feature_table
from riskstrat.features.engine import load_sources
from riskstrat.labels import labels
from riskstrat.schema import PERSON_KEY
from riskstrat.stages.features import _aligned, _build_in_parts, _rows_of
from riskstrat.workdir import WorkDir

from .conftest import REPO
from .featurekit import backend


def _features(engine: str, directory, as_of: dt.date) -> pa.Table:
    con = backend(engine)
    return con.to_pyarrow(feature_table(load_sources(con, directory), as_of))


def test_duckdb_and_spark_build_identical_features_and_labels(pseudonymised):
    directory = WorkDir(pseudonymised).linked
    for as_of in (dt.date(2024, 10, 1), dt.date(2026, 10, 1)):
        a, b = _features("duckdb", directory, as_of), _features("spark", directory, as_of)
        assert a.num_rows > 1500 and a.column_names == ["pseudonym", *feature_names()]
        assert a.schema == b.schema
        for name in a.column_names:
            assert a[name].equals(b[name]), name
        # the features are not trivially constant
        assert pc.sum(a["emergency_admissions_365d"]).as_py() > 50
        assert pc.max(a["charlson_index"]).as_py() >= 3
        # the history features are exercised: the extracts hold 5+ years before both dates
        assert pc.sum(a["emergency_admissions_1826d"]).as_py() > pc.sum(a["emergency_admissions_730d"]).as_py()
        assert pc.sum(a["op_dna_1826d"]).as_py() > pc.sum(a["op_dna_365d"]).as_py() > 0
        assert pc.min(a["hospital_activity_trend_182d"]).as_py() < 0 < pc.max(a["hospital_activity_trend_182d"]).as_py()
        assert (
            pc.max(a["years_since_diabetes_diagnosis"]).as_py() > 5 and pc.sum(a["conditions_diagnosed_365d"]).as_py()
        )
        assert pc.sum(a["new_medicines_90d"]).as_py() > 0 and pc.max(a["prescribing_safety_indicators"]).as_py() >= 2
        assert pc.sum(a["nsaid_with_ckd"]).as_py() > 0 and pc.sum(a["falls_risk_medicines_65plus"]).as_py() > 0
    con_d, con_s = backend("duckdb"), backend("spark")
    la = con_d.to_pyarrow(labels(load_sources(con_d, directory), dt.date(2024, 10, 1)))
    lb = con_s.to_pyarrow(labels(load_sources(con_s, directory), dt.date(2024, 10, 1)))
    assert la.equals(lb) and 0.04 < pc.mean(la["label"]).as_py() < 0.12


def cut_extract(src_dir, out_dir, d: dt.date) -> None:
    """An extract as taken on D, written independently of riskstrat's own cut (data-contract.md):
    records dated on or after D removed (registrations only when they start after D); discharge,
    episode-end and registration-end dates on or after D blanked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    date_of = {
        "gp_events": "event_date",
        "gp_medications": "issue_date",
        "sus_apc": "admission_date",
        "sus_op": "appointment_date",
        "sus_ecds": "arrival_date",
        "deaths": "date_of_death",
        "gp_registrations": "registration_start",
    }
    blank = {"sus_apc": ("discharge_date", "episode_end"), "gp_registrations": ("registration_end",)}
    limit = pa.scalar(d, pa.date32())
    for path in src_dir.glob("*.parquet"):
        t = pq.read_table(path)
        name = path.stem
        if name in date_of:
            col = t[date_of[name]]
            keep = pc.less_equal(col, limit) if name == "gp_registrations" else pc.less(col, limit)
            t = t.filter(keep)
        for c in blank.get(name, ()):
            idx = t.column_names.index(c)
            v = t[c]
            t = t.set_column(idx, c, pc.if_else(pc.greater_equal(v, limit), pa.scalar(None, v.type), v))
        pq.write_table(t, out_dir / path.name)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(min_value=0, max_value=6 * 365))
def test_no_leakage_full_and_cut_extracts_give_identical_features(pseudonymised, tmp_path_factory, offset):
    d = dt.date(2020, 10, 1) + dt.timedelta(days=offset)
    full = WorkDir(pseudonymised).linked
    cut_dir = tmp_path_factory.mktemp("cut")
    cut_extract(full, cut_dir, d)
    a, b = _features("duckdb", full, d), _features("duckdb", cut_dir, d)
    assert a.num_rows > 1000
    assert a.equals(b), d


def test_no_leakage_on_spark(pseudonymised, tmp_path):
    d = dt.date(2025, 3, 17)
    cut_extract(WorkDir(pseudonymised).linked, tmp_path / "cut", d)
    assert _features("spark", WorkDir(pseudonymised).linked, d).equals(_features("spark", tmp_path / "cut", d))


def test_features_command_writes_the_table(pseudonymised):
    result = subprocess.run(
        [sys.executable, "-m", "riskstrat", "features", "--workdir", str(pseudonymised), "--as-of", "2025-10-01"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    t = pq.read_table(WorkDir(pseudonymised).features(dt.date(2025, 10, 1)))
    assert t.column_names[0] == "pseudonym" and t.num_rows > 1500
    assert t["pseudonym"].to_pylist() == sorted(t["pseudonym"].to_pylist())
    # every feature in its declared type (counts that are sums stay integers), in registry order
    from riskstrat.features import all_features

    declared = {"int64": "int64", "float64": "double", "string": "string"}
    assert t.column_names[1:] == [f.name for _, f in all_features()]
    assert {f.name: str(f.type) for f in t.schema if f.name != "pseudonym"} == {
        f.name: declared[str(f.dtype)] for _, f in all_features()
    }
    assert len(set(t["pseudonym"].to_pylist())) == t.num_rows  # one row per person


def test_the_stage_built_in_parts_equals_the_one_query_table(pseudonymised, tmp_path):
    """The DuckDB stage (one builder at a time, put in the population's order by person key, or
    by pseudonym where the tables carry no person keys) gives the table of the one ibis query
    :func:`feature_table`, its left joins and defaults included."""
    d = dt.date(2024, 10, 1)
    one_query = _features("duckdb", WorkDir(pseudonymised).linked, d)
    _build_in_parts(WorkDir(pseudonymised), d, tmp_path / "keyed.parquet")
    assert pq.read_table(tmp_path / "keyed.parquet").equals(one_query)
    # tables pseudonymised at source or on Spark: no person keys, people known by their pseudonyms
    unkeyed = WorkDir(tmp_path / "W")
    unkeyed.linked.mkdir(parents=True)
    for path in WorkDir(pseudonymised).linked.glob("*.parquet"):
        t = pq.read_table(path)
        pq.write_table(t.drop_columns([PERSON_KEY]) if PERSON_KEY in t.column_names else t, unkeyed.linked / path.name)
    _build_in_parts(unkeyed, d, tmp_path / "unkeyed.parquet")
    assert pq.read_table(tmp_path / "unkeyed.parquet").equals(one_query)
    assert one_query.num_rows > 1500 and pc.sum(one_query["emergency_admissions_365d"]).as_py() > 50


def test_rows_of_finds_each_person_once_by_key_or_pseudonym():
    for keys, found in [
        (pa.array([2, 5, 7, 9], pa.int32()), pa.array([9, 4, 2, 11, 7], pa.int32())),
        (pa.array(["b", "e", "g", "i"]), pa.array(["i", "d", "b", "k", "g"])),
    ]:
        assert _rows_of(keys, found).tolist() == [2, -1, 4, 0]  # 5 / "e" has no row; 4, 11 are not people
        twice = pa.concat_arrays([found, found.slice(2, 1)])  # 2 / "b" found twice
        assert _rows_of(keys, twice) is None
    assert _rows_of(pa.array([3], pa.int32()), pa.array([], pa.int32())).tolist() == [-1]
    assert np.array_equal(_rows_of(pa.array([0, 1], pa.int64()), pa.array([1, 0], pa.int64())), [1, 0])


def test_aligned_puts_a_part_in_the_people_order_with_defaults():
    demographics = next(b for b in BUILDERS if b.name == "demographics")  # numbers and text
    keys = pa.array([3, 5, 8], pa.int32())
    values = {
        "age_years": pa.array([70, 41, 99], pa.int64()),
        "sex": pa.array(["F", "M", "U"]),
        "imd_decile": pa.array([2, 9, 4], pa.int64()),
        "ethnicity_group": pa.array(["White", "Asian", "Black"]),
        "practice_code": pa.array(["A81001", "B82002", "C83003"]),
        "pcn_code": pa.array(["U1", "U2", "U3"]),
        "years_registered": pa.array([1.5, 20.25, 3.0]),
    }
    raw = pa.table({"pseudonym": pa.array([8, 3, 6], pa.int32()), **values})  # 6 is not a person of keys
    scratch = np.full((8, len(keys)), 7.0)
    out = _aligned(raw, keys, demographics, scratch)
    assert out.column_names == demographics.feature_names
    defaults = {f.name: f.default for f in demographics.features}
    for name, v in values.items():
        assert out[name].to_pylist() == [v[1].as_py(), defaults[name], v[0].as_py()], name
    assert out.schema.field("years_registered").type == pa.float64() and out["age_years"].type == pa.int64()
    empty = _aligned(raw.slice(0, 0), keys, demographics, scratch)  # a builder with no records at all
    assert all(empty[name].to_pylist() == [defaults[name]] * 3 for name in values)


def test_features_command_without_pseudonymised_tables_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "riskstrat", "features", "--workdir", str(tmp_path), "--as-of", "2025-10-01"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "run 'riskstrat pseudonymise' first" in result.stderr


def test_data_dictionary_is_current():
    assert (REPO / "docs" / "features.md").read_text() == data_dictionary(), "regenerate docs/features.md"


_ADDRESS_SPACE = """
import datetime as dt, json, sys
from pathlib import Path
from riskstrat import duck
from riskstrat.stages.features import _build_in_parts
from riskstrat.workdir import WorkDir

def reserved_mb():
    return int(next(x for x in open("/proc/self/status") if x.startswith("VmData")).split()[1]) // 1024

before = reserved_mb()
_build_in_parts(WorkDir(Path(sys.argv[1])), dt.date(2024, 10, 1), Path(sys.argv[2]))
built = reserved_mb()
plain = duck.connect()
after_plain = reserved_mb()
kept = duck.connect(keep_memory=True)
after_kept = reserved_mb()
setting = "SELECT current_setting('block_allocator_memory')"
print(json.dumps({"build": built - before, "plain": after_plain - built, "kept": after_kept - after_plain,
                  "plain_setting": plain.execute(setting).fetchone()[0],
                  "kept_setting": kept.execute(setting).fetchone()[0]}))
"""


def test_only_the_feature_stage_keeps_duckdbs_memory_and_it_lets_it_go(pseudonymised, tmp_path):
    """A connection that keeps its buffer pool's memory reserves about 20 GB of address space
    (``riskstrat.duck.connect``): with every connection doing so, the suite's process could not
    start Spark or worker processes ("Cannot allocate memory"). Connections do not keep it unless
    asked, and the feature stage, which asks, closes its connection when the builders are done."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the process's address space from Linux's /proc")
    run = subprocess.run(
        [sys.executable, "-c", _ADDRESS_SPACE, str(pseudonymised), str(tmp_path / "features.parquet")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    grown = json.loads(run.stdout.strip().splitlines()[-1])
    assert grown["plain_setting"] == "0 bytes"
    assert grown["kept_setting"] != "0 bytes"
    assert grown["kept"] > 4096, grown  # the reservation is there to be seen while a connection keeps memory
    assert grown["plain"] < 1024, grown
    assert grown["build"] < 2048, grown  # the stage's connection is closed, its reservation gone
    assert pq.read_metadata(tmp_path / "features.parquet").num_rows > 0
