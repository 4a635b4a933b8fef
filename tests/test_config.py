"""Column mappings in configuration: a user's own column names, no code changes."""

from __future__ import annotations

import csv
import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from riskstrat.config import DEFAULT_CONFIG, load_config
from riskstrat.errors import ConfigError
from riskstrat.ingest.validate import validate_extracts

from .conftest import REPO
from .test_validate import TODAY, write_extracts

EXAMPLE = REPO / "configs" / "examples" / "udal-style.yaml"


def test_udal_style_mapping_reads_the_same_rows(tmp_path):
    plain = write_extracts(tmp_path / "plain", {"sus_apc": [{"spell_id": "S2", "cost": ""}]})
    mapped = tmp_path / "mapped"
    shutil.copytree(plain, mapped)
    spec = yaml.safe_load(EXAMPLE.read_text())["tables"]
    for table, entry in spec.items():
        src = mapped / f"{table}.csv"
        rows = list(csv.DictReader(src.open()))
        src.unlink()
        rename = entry["columns"]
        with (mapped / entry["file"]).open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=[rename.get(c, c) for c in rows[0]] + ["Extra_Column"])
            w.writeheader()
            for r in rows:
                w.writerow({**{rename.get(k, k): v for k, v in r.items()}, "Extra_Column": "ignored"})
    a = validate_extracts(plain, load_config(None), tmp_path / "q1", tmp_path / "ok1", today=TODAY)
    b = validate_extracts(mapped, load_config(EXAMPLE), tmp_path / "q2", tmp_path / "ok2", today=TODAY)
    assert {k: v.accepted for k, v in a.tables.items()} == {k: v.accepted for k, v in b.tables.items()}
    assert b.tables["sus_apc"].file == "apcs_episodes.csv"
    for f in (tmp_path / "ok1").glob("*.parquet"):
        assert pq.read_table(f).equals(pq.read_table(tmp_path / "ok2" / f.name)), f.name


def test_default_config_file_matches_embedded_defaults():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.tables == {} and cfg.batch_rows == 1_000_000
    assert cfg.opt_out_policy == load_config(None).opt_out_policy
    assert cfg.opt_out_policy.to_dict() == {
        "type1": ["commissioner", "direct_care", "scoring", "training"],
        "ndoo": ["commissioner", "direct_care", "scoring", "training"],
    }


def test_a_partial_policy_keeps_unnamed_types_at_the_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("opt_out_policy:\n  ndoo: [training, commissioner]\n")
    policy = load_config(path).opt_out_policy
    assert policy.to_dict()["ndoo"] == ["commissioner", "training"]
    assert policy.to_dict()["type1"] == ["commissioner", "direct_care", "scoring", "training"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tables:\n  sus_xyz: {}\n", "tables.sus_xyz: no such table"),
        ("tables:\n  sus_apc:\n    columns:\n      foo: Bar\n", "['foo'] not in the contract"),
        ("tables:\n  sus_apc:\n    columns:\n      cost: X\n      spell_id: X\n", "mapped twice"),
        ("colums: {}\n", "unknown key(s) ['colums']"),
        ("tables: [\n", "cannot read configuration"),
        ("- a\n- b\n", "must be a mapping"),
        ("opt_out_policy:\n  type2: [training]\n", "unknown opt-out type(s) ['type2']"),
        ("opt_out_policy:\n  ndoo: [research]\n", "opt_out_policy.ndoo: unknown use(s) ['research']"),
        ("opt_out_policy:\n  ndoo: training\n", "opt_out_policy.ndoo must be a list of uses"),
        ("mlflow:\n  uri: x\n", "mlflow: expected the key 'tracking_uri'"),
    ],
)
def test_bad_configs_are_named(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert message in str(exc.value) and "c.yaml" in str(exc.value)


def test_mapped_required_column_missing_names_both_names(tmp_path):
    from riskstrat.errors import ContractError

    extracts = write_extracts(tmp_path / "x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tables:\n  sus_op:\n    columns:\n      appointment_date: Appt_Date\n")
    with pytest.raises(ContractError) as exc:
        validate_extracts(extracts, load_config(cfg), tmp_path / "q", None, today=TODAY)
    assert "sus_op.csv: required column Appt_Date (mapped to appointment_date) is missing" in str(exc.value)
