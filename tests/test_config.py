"""Configuration files: column mappings (a user's own column names, no code changes), defaults, and
one-line errors naming the file and the key, for configurations and model specifications."""

from __future__ import annotations

import csv
import shutil

import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from riskstrat.config import DEFAULT_CONFIG, Config, Settings, TableMapping, load_config
from riskstrat.errors import ConfigError, ExitCode
from riskstrat.features import feature_names
from riskstrat.ingest.validate import validate_extracts
from riskstrat.modelling.spec import DEFAULT_SPEC, MODELS_DIR, Calibration, Learner, ModelSpec, load_spec
from riskstrat.privacy.disclosure import DisclosureRules, RateRounding
from riskstrat.schema import TABLES

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


TABLE_NAMES = ", ".join(TABLES)
USES = "training, scoring, direct_care, commissioner"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unknown keys: named with their place, and the keys that are known there
        (
            "colums: {}\n",
            "colums: unknown key; known keys: region, tables, validation, opt_outs, opt_out_policy, disclosure, "
            "mlflow, practice_list, monitoring",
        ),
        ("mlflow:\n  uri: x\n", "mlflow.uri: unknown key; known keys: tracking_uri"),
        ("tables:\n  sus_apc:\n    colums: {}\n", "tables.sus_apc.colums: unknown key; known keys: file, columns"),
        ("disclosure:\n  suppress_max: 3\n", "disclosure.suppress_max: unknown key; known keys: rates"),
        # wrong types
        ("validation:\n  batch_rows: many\n", "validation.batch_rows: must be a whole number (got 'many')"),
        ("opt_out_policy:\n  ndoo: training\n", "opt_out_policy.ndoo: must be a list (got 'training')"),
        ("disclosure: round5\n", "disclosure: must be a mapping of keys to values (got 'round5')"),
        ("mlflow:\n  tracking_uri: 5\n", "mlflow.tracking_uri: must be text (got 5)"),
        ("region: [a, b]\n", "region: must be text (got ['a', 'b'])"),
        # values outside their options (StrEnum) or range
        ("disclosure:\n  rates: round3\n", "disclosure.rates: must be one of round5, midpoint6 (got 'round3')"),
        ("opt_out_policy:\n  type2: [training]\n", "opt_out_policy.type2: must be one of type1, ndoo (got 'type2')"),
        (
            "opt_out_policy:\n  ndoo: [scoring, research]\n",
            f"opt_out_policy.ndoo[1]: must be one of {USES} (got 'research')",
        ),
        ("validation:\n  batch_rows: 0\n", "validation.batch_rows: must be greater than 0 (got 0)"),
        (
            "practice_list:\n  care_register: hide\n",
            "practice_list.care_register: must be one of exclude, include (got 'hide')",
        ),
        (
            "practice_list:\n  import_batch_size: 0\n",
            "practice_list.import_batch_size: must be greater than 0 (got 0)",
        ),
        (
            "validation:\n  practice_drop_warning_share: 1.5\n",
            "validation.practice_drop_warning_share: must be less than or equal to 1 (got 1.5)",
        ),
        # a required key of a section that is given
        ("opt_outs: {}\n", "opt_outs.applied_upstream: required key is missing"),
        ("opt_outs:\n  applied_upstream: ''\n", "opt_outs.applied_upstream: must have at least 1 character (got '')"),
        # the contract: tables and columns that exist
        (
            "tables:\n  sus_xyz: {}\n",
            f"tables.sus_xyz: no such table in the data contract (tables: {TABLE_NAMES}) (got 'sus_xyz')",
        ),
        (
            "validation:\n  expected_empty: [sus_op, sus_xyz]\n",
            f"validation.expected_empty[1]: no such table in the data contract (tables: {TABLE_NAMES}) (got 'sus_xyz')",
        ),
        (
            "tables:\n  sus_op:\n    columns:\n      shoe_size: Shoe\n",
            f"tables.sus_op.columns.shoe_size: no such column in the contract for sus_op "
            f"(columns: {', '.join(TABLES['sus_op'].column_names)}) (got 'Shoe')",
        ),
        (
            "tables:\n  sus_apc:\n    columns:\n      cost: X\n      spell_id: X\n",
            "tables.sus_apc.columns.spell_id: the source column is already mapped to cost (got 'X')",
        ),
        # several problems: the first, and how many more
        (
            "validation:\n  batch_rows: 0\n  expected_empty: sus_op\n  practice_drop_warning_share: 2\n",
            "validation.batch_rows: must be greater than 0 (got 0) (and 2 more problems)",
        ),
        # the file as a whole
        ("- a\n- b\n", "a configuration must be a mapping of keys to values (got ['a', 'b'])"),
        ("just words\n", "a configuration must be a mapping of keys to values (got 'just words')"),
        ("tables: [\n", "cannot read the configuration (while parsing a flow node)"),
    ],
)
def test_a_bad_configuration_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {message}"
    assert exc.value.exit_code == ExitCode.CONFIG


def test_an_unreadable_configuration_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert str(exc.value) == f"{tmp_path / 'nope.yaml'}: configuration not found"
    path = tmp_path / "latin1.yaml"
    path.write_bytes("region: Sk\xe5ne\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: cannot read the configuration ('utf-8' codec can't decode byte 0xe5")
    assert "\n" not in str(exc.value)


def test_sections_written_with_nothing_in_them_mean_their_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "region: north\ntables:\n  sus_op:\nvalidation:\nopt_outs:\nopt_out_policy:\ndisclosure:\nmlflow:\n"
    )
    cfg = load_config(path)
    assert cfg.model_dump() == {
        **Config().model_dump(),
        "region": "north",
        "tables": {"sus_op": TableMapping().model_dump()},
    }
    assert cfg.source == str(path) and Config().source == "embedded defaults"
    assert load_config(tmp_path / "c.yaml").opt_outs_applied_upstream is None
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml").model_dump() == Config().model_dump()


def test_the_flat_names_read_the_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "validation:\n  batch_rows: 10\n  expected_empty: [sus_ecds]\n  practice_drop_warning_share: 0.5\n"
        "opt_outs:\n  applied_upstream: DSCRO\nmlflow:\n  tracking_uri: http://mlflow.internal:5000\n"
        "disclosure:\n  rates: midpoint6\ntables:\n  sus_op:\n    columns:\n      cost: 2021\n"
    )
    cfg = load_config(path)
    assert (cfg.batch_rows, cfg.expected_empty, cfg.practice_drop_warning_share) == (10, {"sus_ecds"}, 0.5)
    assert cfg.opt_outs_applied_upstream == "DSCRO" and cfg.tracking_uri == "http://mlflow.internal:5000"
    assert cfg.disclosure == DisclosureRules(rates=RateRounding.MIDPOINT6)
    assert cfg.mapping("sus_op").source_name("cost") == "2021"  # a numeric column name is a name
    assert cfg.mapping("sus_apc") == TableMapping()
    with pytest.raises(ValidationError):  # frozen: a loaded configuration cannot change
        cfg.region = "elsewhere"


def test_the_default_file_writes_out_every_default():
    """The field defaults are the one source; default.yaml must say the same, key for key
    (opt_outs has no default: it is absent unless objections were applied upstream)."""
    written = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert load_config(DEFAULT_CONFIG).model_dump() == Config().model_dump()
    assert set(written) == set(Config.model_fields) - {"opt_outs"}
    for section in ("validation", "mlflow", "disclosure"):
        assert set(written[section]) == set(Config().model_dump()[section]), section


def test_mapped_required_column_missing_names_both_names(tmp_path):
    from riskstrat.errors import ContractError

    extracts = write_extracts(tmp_path / "x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tables:\n  sus_op:\n    columns:\n      appointment_date: Appt_Date\n")
    with pytest.raises(ContractError) as exc:
        validate_extracts(extracts, load_config(cfg), tmp_path / "q", None, today=TODAY)
    assert "sus_op.csv: required column Appt_Date (mapped to appointment_date) is missing" in str(exc.value)


# ------------------------------------------------------------------ model specifications

LIGHTGBM_PARAMS = (
    "learning_rate, num_leaves, min_child_samples, n_estimators, early_stopping_rounds, subsample, "
    "colsample_bytree, reg_lambda, max_depth, max_shap_work"
)
SPEC_KEYS = (
    "name, description, outcome, horizon_days, population, features, learner, training, calibration, "
    "validation, risk_bands, seed"
)


def _spec_file(tmp_path, old: str, new: str):
    text = DEFAULT_SPEC.read_text()
    assert old in text, old
    path = tmp_path / "m.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # unknown keys
        ("seed: 2026", "seed: 2026\nsed: 1", f"sed: unknown key; known keys: {SPEC_KEYS}"),
        (
            "{name: high, top_share: 0.05}",
            "{name: high, share: 0.05}",
            "risk_bands[1].share: unknown key; known keys: name, top_share",
        ),
        ("num_leaves: 31", "leaves: 31", f"learner.params.leaves: must be one of {LIGHTGBM_PARAMS} (got 'leaves')"),
        (
            "logistic: {C: 0.1}",
            "logistic: {C: 0.1, penalty: l1}",
            "learner.logistic.penalty: must be one of C, max_iter (got 'penalty')",
        ),
        # wrong types
        ("horizon_days: 365", "horizon_days: a year", "horizon_days: must be a whole number (got 'a year')"),
        (
            "max_shap_work: 60000 ",
            "max_shap_work: lots ",
            "learner.params.max_shap_work: must be a whole number of at least 1 (got 'lots')",
        ),
        (
            "max_shap_work: 60000 ",
            "max_shap_work: 0 ",
            "learner.params.max_shap_work: must be a whole number of at least 1 (got 0)",
        ),
        ("out_of_time: true", "out_of_time: maybe", "validation.out_of_time: must be true or false (got 'maybe')"),
        (
            "include: all",
            "include: everything",
            "features.include: must be all or a list of features (got 'everything')",
        ),
        ("  as_of_dates: 3", "  as_of_dates: [3]", "training.as_of_dates: must be a whole number (got [3])"),
        # options (StrEnum)
        (
            "outcome: emergency_admission\n",
            "outcome: admission\n",
            "outcome: must be one of emergency_admission, emergency_admission_or_death (got 'admission')",
        ),
        ("calibration: isotonic", "calibration: beta", "calibration: must be one of isotonic, sigmoid (got 'beta')"),
        ("type: lightgbm", "type: forest", "learner.type: must be one of lightgbm, logistic (got 'forest')"),
        (
            "candidates: [lightgbm, logistic]",
            "candidates: [logistic, forest]",
            "learner.candidates[1]: must be one of lightgbm, logistic (got 'forest')",
        ),
        # missing required keys
        ("calibration: isotonic", "", "calibration: required key is missing"),
        ("name: emergency_admission_12m\n", "", "name: required key is missing"),
        # ranges
        ("horizon_days: 365", "horizon_days: 10", "horizon_days: must be greater than or equal to 30 (got 10)"),
        ("as_of_dates: 3", "as_of_dates: 0", "training.as_of_dates: must be greater than or equal to 1 (got 0)"),
        ("max_trials: 20", "max_trials: -1", "learner.search.max_trials: must be greater than or equal to 0 (got -1)"),
        (
            "held_out_practices: 0.0",
            "held_out_practices: 0.5",
            "validation.held_out_practices: must be less than 0.5 (got 0.5)",
        ),
        (
            "{name: high, top_share: 0.05}",
            "{name: high, top_share: 1.5}",
            "risk_bands[1].top_share: must be less than or equal to 1 (got 1.5)",
        ),
        # checks across keys
        (
            "{name: high, top_share: 0.05}",
            "{name: high, top_share: 0.001}",
            "risk_bands[1].top_share: must be above the band before's (0.005) (got 0.001)",
        ),
        (
            "{name: low, top_share: 1.0}",
            "{name: low, top_share: 0.9}",
            "risk_bands[3].top_share: the last band must reach 1.0 (everyone has a band) (got 0.9)",
        ),
        (
            "exclude: [practice_code, pcn_code]",
            "exclude: [practice_code, shoe_size]",
            "features.exclude[1]: not in the feature table (docs/features.md lists them) (got 'shoe_size')",
        ),
        (
            "categorical: [sex, ethnicity_group]",
            "categorical: [sex, practice_code]",
            "features.categorical[1]: must name a chosen feature (in include, not in exclude) (got 'practice_code')",
        ),
        (
            "candidates: [lightgbm, logistic]",
            "candidates: [logistic]",
            "learner.candidates: must include learner.type (lightgbm) (got ['logistic'])",
        ),
    ],
)
def test_a_bad_model_specification_is_one_line_naming_the_file_and_the_key(tmp_path, old, new, message):
    path = _spec_file(tmp_path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_spec(path)
    assert str(exc.value) == f"{path}: {message}"
    assert exc.value.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "a model specification must be a mapping of keys to values (got ['a'])"),
        ("", "a model specification must be a mapping of keys to values (got nothing)"),
        ("name: [\n", "cannot read the model specification (while parsing a flow node)"),
        ("name: x\n", "outcome: required key is missing (and 5 more problems)"),
    ],
)
def test_a_model_specification_that_is_not_one_is_one_line(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_spec(path)
    assert str(exc.value) == f"{path}: {message}"
    with pytest.raises(ConfigError) as exc:
        load_spec(tmp_path / "nope.yaml")
    assert str(exc.value) == f"{tmp_path / 'nope.yaml'}: model specification not found"


def test_keys_left_out_of_a_specification_take_the_documented_defaults(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: minimal\noutcome: emergency_admission\nhorizon_days: 180\nfeatures:\nlearner: {type: logistic}\n"
        "calibration: sigmoid\nrisk_bands: [{name: all, top_share: 1}]\n"
    )
    spec = load_spec(path)
    assert spec.features == tuple(feature_names()) and spec.categorical == ()
    assert (spec.min_age, spec.max_age, spec.seed, spec.description) == (0, None, 0, "")
    assert spec.learner == Learner.LOGISTIC and spec.candidates == (Learner.LOGISTIC,)
    assert (spec.params, spec.logistic_params, spec.search.enabled) == ({}, {}, False)
    assert (spec.stacked_as_of_dates, spec.max_training_people) == (1, 0)
    assert (spec.out_of_time, spec.held_out_practices) == (True, 0.0)
    assert spec.calibration == Calibration.SIGMOID and spec.source == str(path)


def test_the_shipped_specifications_write_out_every_key():
    """Whatever a key left out would mean, the shipped models say it in the file."""

    def keys(model, prefix=""):
        out = set()
        for name, field in model.model_fields.items():
            key = prefix + (field.alias or name)
            out.add(key)
            if isinstance(field.annotation, type) and issubclass(field.annotation, Settings):
                out |= keys(field.annotation, key + ".")
        return out

    def written(mapping, prefix=""):
        out = set()
        for key, value in mapping.items():
            out.add(prefix + key)
            if isinstance(value, dict) and key not in ("params", "logistic"):
                out |= written(value, prefix + key + ".")
        return out

    for path in sorted(MODELS_DIR.glob("*.yaml")):
        assert written(yaml.safe_load(path.read_text())) == keys(ModelSpec), path.name


def test_to_dict_is_plain_values():
    """What is logged to MLflow and hashed: plain str, never the enums (yaml.safe_dump refuses them)."""
    spec = load_spec()
    d = spec.to_dict()
    assert yaml.safe_load(yaml.safe_dump(d)) == d
    assert type(d["learner"]) is str and type(d["outcome"]) is str and type(d["calibration"]) is str
    assert d["candidates"] == ["lightgbm", "logistic"] and type(d["candidates"][0]) is str
    assert d["search"] == {"time_budget_seconds": 90.0, "max_trials": 20, "sample_people": 100000}
    assert d["risk_bands"][0] == {"name": "very high", "top_share": 0.005}
    assert "practice_code" not in d["features"] and d["categorical"] == ["sex", "ethnicity_group"]


def test_monitoring_settings_are_typed_with_one_line_errors(tmp_path):
    from riskstrat.config import ExposureHandling

    assert Config().monitoring.holdout_share == 0 and Config().monitoring.exposure_handling is ExposureHandling.INCLUDE
    path = tmp_path / "c.yaml"
    path.write_text("monitoring:\n  exposure_handling: drop\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert (
        str(exc.value) == f"{path}: monitoring.exposure_handling: must be one of include, exclude, weight (got 'drop')"
    )
    path.write_text("monitoring:\n  holdout_share: 0.7\n")
    with pytest.raises(ConfigError, match=r"monitoring\.holdout_share: must be less than or equal to 0\.5"):
        load_config(path)
    path.write_text("monitoring:\n  holdout_share: 0.05\n  exposure_handling: weight\n")
    assert load_config(path).monitoring.exposure_handling is ExposureHandling.WEIGHT
