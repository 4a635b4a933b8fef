"""The alternative synthetic structure (``--structure alt``): valid, reproducible, with an exact truth."""

from __future__ import annotations

import json
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from riskstrat.cli import main
from riskstrat.config import Config
from riskstrat.ingest.validate import validate_extracts
from riskstrat.schema import EMERGENCY_ADMISSION_METHODS
from riskstrat.synth import SynthOptions, generate
from riskstrat.synth import alt_params as A
from riskstrat.synth.alt import (
    RiskState,
    _AltChunk,
    ae_log_rate,
    death_log_hazard,
    dna_log_odds,
    first_admission_probability,
    log_hazard,
)
from riskstrat.synth.generator import Region

OPTS = SynthOptions(patients=12_000, seed=21, chunk_size=6_000)


@pytest.fixture(scope="module")
def alt_population(tmp_path_factory):
    base = tmp_path_factory.mktemp("alt")
    generate(base / "extracts", OPTS, base / "truth", workers=1, structure="alt")
    return base / "extracts", base / "truth"


def _outcomes(extracts, truth) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """as-of date -> (true risk, admitted in [D, D + 365)), for every D with a full year after it."""
    em = ",".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
    con = duckdb.connect()
    sql = f"SELECT DISTINCT as_of FROM '{truth}/true_risk.parquet' ORDER BY 1"
    dates = [str(r[0]) for r in con.execute(sql).fetchall()]
    out = {}
    for d in dates[:-1]:
        rows = con.execute(
            f"""
            WITH t AS (SELECT * FROM '{truth}/true_risk.parquet' WHERE as_of = DATE '{d}'),
            em AS (SELECT DISTINCT nhs_number FROM '{extracts}/sus_apc.parquet'
                   WHERE admission_method IN ({em})
                     AND admission_date >= DATE '{d}' AND admission_date < DATE '{d}' + INTERVAL 365 DAY)
            SELECT t.true_risk, (em.nhs_number IS NOT NULL)::INT AS y FROM t LEFT JOIN em USING (nhs_number)
            """
        ).fetchnumpy()
        out[d] = (rows["true_risk"], rows["y"])
    return out


def _auroc(score: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(score)
    pos = y.sum()
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * (y.size - pos)))


def test_alt_population_validates_with_nothing_quarantined(alt_population, tmp_path):
    extracts, truth = alt_population
    report = validate_extracts(extracts, Config(), tmp_path / "q", None)
    assert report.quarantined_rows == 0, {k: dict(v.quarantined) for k, v in report.tables.items()}
    assert all(sum(t.unknown_codes.values()) == 0 for t in report.tables.values())
    assert set(report.tables) == set(json.loads((truth / "manifest.json").read_text())["rows"])
    assert report.tables["sus_apc"].rows_read > 5_000
    assert json.loads((truth / "manifest.json").read_text())["structure"] == "alt"
    # truth never goes into the extracts directory
    assert sorted(p.name for p in extracts.iterdir()) == sorted(f"{t}.parquet" for t in report.tables)
    assert not (extracts / "true_risk.parquet").exists()


def test_truth_is_calibrated_by_decile_and_the_ceiling_is_real_world_like(alt_population):
    extracts, truth = alt_population
    outcomes = _outcomes(extracts, truth)
    assert len(outcomes) == 7
    aucs = []
    for d, (risk, y) in list(outcomes.items())[1::2]:  # three as-of dates
        assert 7_000 < risk.size < 10_000, d
        assert abs(risk.mean() - A.EMERGENCY_SHARE) < 1e-3  # the intercept is set for the population at D
        # expected = observed overall and within each decile of true risk (binomial error)
        assert abs(y.sum() - risk.sum()) < 3.5 * np.sqrt((risk * (1 - risk)).sum()), d
        order = np.argsort(risk)
        z = []
        for part in np.array_split(order, 10):
            r, o = risk[part], y[part]
            z.append((o.sum() - r.sum()) / np.sqrt((r * (1 - r)).sum()))
        assert max(abs(v) for v in z) < 3.5, (d, np.round(z, 2))
        assert sum(v * v for v in z) < 30, (d, np.round(z, 2))  # chi-square, 10 df: p ~ 0.001
        aucs.append(_auroc(risk, y))
    assert all(0.74 < a < 0.86 for a in aucs), aucs


def test_first_admission_is_drawn_from_the_stated_hazard():
    # Monte Carlo of the competing monthly hazards against the closed form.
    rng = np.random.default_rng(0)
    h = np.tile(rng.uniform(0, 0.03, 12), (200_000, 1))
    x = np.tile(rng.uniform(0, 0.01, 12), (200_000, 1))
    cum = np.cumsum(h + x, axis=1)
    draw = rng.exponential(1.0, h.shape[0])
    event = draw < cum[:, -1]
    month = np.argmax(cum > draw[:, None], axis=1)
    rows = np.arange(h.shape[0])
    admitted = event & (rng.random(h.shape[0]) < h[rows, month] / (h + x)[rows, month])
    p = first_admission_probability(h[:1], x[:1])[0]
    assert abs(admitted.mean() - p) < 4 * np.sqrt(p * (1 - p) / h.shape[0])
    assert p < -np.expm1(-h[0].sum())  # deaths and moves compete with admission


def test_medicine_condition_interactions_raise_the_hazard():
    s = RiskState.baseline(8, age=72)
    ckd, hf = A.CONDITION_INDEX["ckd"], A.CONDITION_INDEX["hf"]
    # 0 none, 1 NSAID, 2 CKD, 3 NSAID + CKD
    s.nsaid[[1, 3]] = True
    s.ltc[[2, 3], ckd] = True
    eta = log_hazard(s)
    assert eta[3] - eta[2] > eta[1] - eta[0] + 0.5  # NSAID harms far more with CKD
    # triple whammy: ACE inhibitor or ARB + diuretic + NSAID, beyond the three alone
    t = RiskState.baseline(2, age=72)
    t.acei_arb[:] = t.diuretic[:] = True
    t.nsaid[1] = True
    one = RiskState.baseline(2, age=72)
    one.nsaid[1] = True
    assert (log_hazard(t)[1] - log_hazard(t)[0]) - (log_hazard(one)[1] - log_hazard(one)[0]) == pytest.approx(
        A.TRIPLE_WHAMMY
    )
    # NSAID with heart failure
    u = RiskState.baseline(2, age=72)
    u.ltc[:, hf] = True
    u.nsaid[1] = True
    assert log_hazard(u)[1] - log_hazard(u)[0] > 0.6
    # anticoagulant: harmful at 85+, not at 70; a PPI removes the GI-bleed effect
    for age, expected in ((88, A.ANTICOAGULANT_85 + A.NO_GASTROPROTECTION), (70, A.NO_GASTROPROTECTION)):
        v = RiskState.baseline(3, age=age)
        v.anticoagulant[1:] = True
        v.ppi[2] = True
        eta = log_hazard(v)
        assert eta[1] - eta[0] == pytest.approx(expected)
        assert eta[2] - eta[0] == pytest.approx(expected - A.NO_GASTROPROTECTION)
    # opioids: a higher dose and a longer course each raise the hazard
    w = RiskState.baseline(4, age=60)
    w.opioid_mme[1:] = [20, 90, 90]
    w.opioid_months[1:] = [1, 1, 24]
    eta = log_hazard(w)
    assert eta[0] < eta[1] < eta[2] < eta[3]
    # falls-risk medicines matter in older people, not at 40
    for age, harmful in ((82, True), (40, False)):
        f = RiskState.baseline(2, age=age)
        f.falls_risk_medicines[1] = 2
        assert bool(log_hazard(f)[1] - log_hazard(f)[0] > 0.3) == harmful


def test_hidden_traits_drive_risk_and_urgent_care_use():
    s = RiskState.baseline(3, age=55)
    s.propensity[:] = [-1.0, 0.0, 1.0]
    for f in (log_hazard, ae_log_rate):
        assert np.all(np.diff(f(s)) > 0.3), f.__name__  # more A&E use and more admissions
    assert np.all(np.diff(dna_log_odds(s.propensity, s.dep, s.age)) > 0.3)  # and more missed appointments
    s = RiskState.baseline(3, age=80)
    s.frailty[:] = [0.3, 1.0, 3.0]
    for f in (log_hazard, death_log_hazard, ae_log_rate):
        assert np.all(np.diff(f(s)) > 0.1), f.__name__


def test_propensity_and_frailty_show_in_the_simulated_record():
    """In a simulated chunk, the hidden propensity raises observed A&E use and admissions."""
    opts = replace(OPTS, patients=6_000)
    region = Region.build(opts.patients, opts.seed)
    nhs = np.array([f"999{i:07d}" for i in range(opts.patients)])
    ch = _AltChunk(opts, region, nhs, 0, 0)
    ch.run()
    m = ch.m
    ae = np.bincount(ch.ae.get("person"), minlength=m)
    adm = np.bincount(ch.adm.get("person"), minlength=m)
    high, low = ch.propensity > 1, ch.propensity < -1
    assert ae[high].mean() > 2.5 * ae[low].mean()
    assert adm[high].mean() > 1.6 * adm[low].mean()
    # frailty jumps after each emergency admission
    jp = ch.jumps.get("person")
    assert np.array_equal(np.sort(jp), np.sort(ch.adm.get("person")))
    assert (ch.jumps.get("size", float) > 0).all()


def test_same_seed_same_files(tmp_path):
    opts = SynthOptions(patients=1_500, seed=5, chunk_size=1_000)
    for name in ("a", "b"):
        generate(tmp_path / name, opts, tmp_path / f"{name}_truth", workers=1, structure="alt")
    for f in (tmp_path / "a").iterdir():
        assert pq.read_table(f).equals(pq.read_table(tmp_path / "b" / f.name)), f.name
    assert pq.read_table(tmp_path / "a_truth" / "true_risk.parquet").equals(
        pq.read_table(tmp_path / "b_truth" / "true_risk.parquet")
    )
    # and a different structure from the default on the same seed
    generate(tmp_path / "d", opts, workers=1)
    assert not pq.read_table(tmp_path / "d" / "sus_apc.parquet").equals(
        pq.read_table(tmp_path / "a" / "sus_apc.parquet")
    )


def test_cli_alt_with_faults_and_csv(tmp_path):
    out, truth = tmp_path / "x", tmp_path / "t"
    args = ["synth", "--out", str(out), "--truth", str(truth), "--patients", "2000", "--seed", "3"]
    result = CliRunner().invoke(main, [*args, "--structure", "alt", "--faults", "0.003", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert (out / "sus_apc.csv").exists()
    injected = json.loads((truth / "faults.json").read_text())
    report = validate_extracts(out, Config(), tmp_path / "q", None)
    for table, rep in report.tables.items():
        assert dict(rep.quarantined) == injected["quarantined"].get(table, {}), table
    assert "alt" in CliRunner().invoke(main, ["synth", "--help"]).output
