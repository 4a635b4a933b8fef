"""Benchmark: what a feature stage on DuckDB could cost at best, against the scan floor (prints figures).

Usage::

    python benchmarks/feature_bounds_benchmark.py W [--as-of 2026-10-01] [--repeats 3]

W is a work directory with linked tables and the feature table at the date (for example the
``W`` of ``benchmarks/monthly_batch_benchmark.py --keep DIR``). On the feature stage's kind of
connection (:func:`riskstrat.duck.connect`, memory kept), it times hand-written SQL, not the
features, in two shapes of the same work:

* **least**: the least any feature stage must do: the people at D; the prescriptions of the
  455 days before D grouped by person and substance with only a maximum and a count, then by
  person; one count per person of every other source; and the real feature table written again
  (zstd, as the stage writes it);
* **fused**: one aggregation per source and person, of about the features' number and kind
  (windowed counts and sums, days since the latest, diagnosis groups, code clusters, dates of
  first diagnosis; the person x substance table with the shared table's six aggregates), joined
  onto the people in person order and written once.

Then the scan floor of ``monthly_batch_benchmark`` (the columns the features read, best of
``--repeats``), so that each shape can be read as times the floor (``docs/performance.md``,
"A fused stage, measured before building it").
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import monthly_batch_benchmark as monthly  # beside this script (run as a script, its folder is on the path)
import pyarrow.parquet as pq

from riskstrat import duck
from riskstrat.workdir import WorkDir

#: BNF prefixes of the fused shape's drug classes (the kind of classes the medicine builders count)
_DRUG_CLASSES = ("0407", "0403", "0401", "0205", "0206", "0601", "0302", "0212", "1001", "0208", "0209", "0204")
_CODE_CLUSTERS = 40  # SNOMED CT codes of the GP events spread over this many clusters
_FIRST_DATES = 15  # clusters whose first date is kept (the condition history's kind)


def _windows(date: str, d: str, prefix: str, days: tuple[int, ...], value: str | None = None) -> str:
    aggs = [f"count(*) FILTER (WHERE {date} >= {d} - INTERVAL {k} DAY) AS {prefix}_n{k}" for k in days]
    if value:
        aggs += [
            f"sum(coalesce({value}, 0)) FILTER (WHERE {date} >= {d} - INTERVAL {k} DAY) AS {prefix}_c{k}" for k in days
        ]
    return ", ".join([*aggs, f"date_diff('day', max({date}), {d}) AS {prefix}_last"])


def least(linked: Path, as_of: dt.date) -> dict[str, str]:
    """The least shape's queries (name -> SQL), each a temporary table."""
    d, t = f"DATE '{as_of}'", lambda name: f"read_parquet('{linked / name}.parquet')"
    return {
        "people": f"SELECT person_key, arg_max(practice_code, registration_start) p FROM {t('gp_registrations')} "
        f"WHERE registration_start <= {d} AND (registration_end IS NULL OR registration_end >= {d}) "
        "GROUP BY person_key",
        "by substance": f"SELECT person_key, substr(bnf_code, 1, 9) s, max(issue_date) last, count(*) n "
        f"FROM {t('gp_medications')} WHERE issue_date < {d} AND issue_date >= {d} - INTERVAL 455 DAY GROUP BY ALL",
        "by person": 'SELECT person_key, count(*) n, sum(n) items FROM "by substance" GROUP BY person_key',
        "admitted care": f"SELECT person_key, count(*) n FROM {t('sus_apc')} WHERE admission_date < {d} GROUP BY ALL",
        "outpatients": f"SELECT person_key, count(*) n FROM {t('sus_op')} WHERE appointment_date < {d} GROUP BY ALL",
        "A&E": f"SELECT person_key, count(*) n FROM {t('sus_ecds')} WHERE arrival_date < {d} GROUP BY ALL",
        "GP events": f"SELECT person_key, count(*) n FROM {t('gp_events')} WHERE event_date < {d} GROUP BY ALL",
    }


def fused(linked: Path, as_of: dt.date) -> dict[str, str]:
    """The fused shape's queries (name -> SQL), each a temporary table; ``people`` first."""
    d, t = f"DATE '{as_of}'", lambda name: f"read_parquet('{linked / name}.parquet')"
    in_window = f"issue_date < {d} AND issue_date >= {d} - INTERVAL 455 DAY"
    half, year = f"{d} - INTERVAL 182 DAY", f"{d} - INTERVAL 365 DAY"
    meds = [f"sum(y) FILTER (WHERE s LIKE '{c}%') AS m{i}" for i, c in enumerate(_DRUG_CLASSES)]
    meds += [
        f"max(CASE WHEN s LIKE '{c}%' AND last <= 90 THEN 1 ELSE 0 END) AS f{i}" for i, c in enumerate(_DRUG_CLASSES)
    ]
    meds += [
        "count(*) FILTER (WHERE last <= 90) current",
        "count(*) FILTER (WHERE last <= 90 AND first <= 90) new",
        "sum(c) cost",
        "sum(h) half_year",
        "sum(hb) half_year_before",
        "count(DISTINCT substr(s, 1, 4)) sections",
        "count(*) FILTER (WHERE last <= 182) polypharmacy",
    ]
    gp = [f"max(CASE WHEN cluster = {i} THEN 1 ELSE 0 END) g{i}" for i in range(_CODE_CLUSTERS)]
    gp += [f"date_diff('day', min(event_date) FILTER (WHERE cluster = {i}), {d}) first{i}" for i in range(_FIRST_DATES)]
    gp += [
        "arg_max(value, event_date) FILTER (WHERE cluster = 3) latest_value",
        f"count(*) FILTER (WHERE cluster = 5 AND event_date >= {year}) in_year",
    ]
    groups = ", ".join(f"count(*) FILTER (WHERE dx LIKE '{c}%') dx_{c}" for c in "ABCDEFGHIJKLMNOPQRS")
    return {
        "people": least(linked, as_of)["people"],
        "by substance": f"SELECT person_key, substr(bnf_code, 1, 9) s, date_diff('day', max(issue_date), {d}) last, "
        f"date_diff('day', min(issue_date), {d}) first, count(*) FILTER (WHERE issue_date >= {half}) h, "
        f"count(*) FILTER (WHERE issue_date < {half} AND issue_date >= {d} - INTERVAL 364 DAY) hb, "
        f"count(*) FILTER (WHERE issue_date >= {year}) y, "
        f"sum(coalesce(actual_cost, 0)) FILTER (WHERE issue_date >= {year}) c "
        f"FROM {t('gp_medications')} WHERE {in_window} GROUP BY ALL",
        "by person": f'SELECT person_key, {", ".join(meds)} FROM "by substance" GROUP BY person_key',
        "admitted care": f"WITH spells AS (SELECT person_key, spell_id, min(admission_date) a, max(discharge_date) e, "
        f"any_value(admission_method) m, sum(coalesce(cost, 0)) cost, any_value(primary_diagnosis) dx "
        f"FROM {t('sus_apc')} WHERE admission_date < {d} AND episode_start < {d} GROUP BY ALL) "
        f"SELECT person_key, {_windows('a', d, 'apc', (30, 90, 182, 365, 730, 1095, 1826), 'cost')}, {groups}, "
        f"count(*) FILTER (WHERE m LIKE '2%') emergency, avg(date_diff('day', a, coalesce(e, {d}))) stay "
        f"FROM spells GROUP BY person_key",
        "outpatients": f"SELECT person_key, "
        f"{_windows('appointment_date', d, 'op', (30, 90, 182, 365, 730, 1095), 'cost')}, "
        f"count(*) FILTER (WHERE attendance_status = '3') dna FROM {t('sus_op')} "
        f"WHERE appointment_date < {d} GROUP BY person_key",
        "A&E": f"SELECT person_key, {_windows('arrival_date', d, 'ae', (30, 90, 182, 365, 730, 1095), 'cost')}, "
        f"count(*) FILTER (WHERE ambulance_arrival) ambulance, count(*) FILTER (WHERE admitted) admitted "
        f"FROM {t('sus_ecds')} WHERE arrival_date < {d} GROUP BY person_key",
        "codes": f"SELECT snomed_code code, (hash(snomed_code) % {_CODE_CLUSTERS})::INT cluster "
        f"FROM (SELECT DISTINCT snomed_code FROM {t('gp_events')})",
        "GP events": f"SELECT person_key, {', '.join(gp)} FROM {t('gp_events')} e JOIN codes "
        f"ON e.snomed_code = codes.code WHERE event_date < {d} GROUP BY person_key",
    }


def _timed(con, queries: dict[str, str]) -> dict[str, float]:
    times = {}
    for name, sql in queries.items():
        started = time.perf_counter()
        con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}')
        times[name] = time.perf_counter() - started
    return times


def run_least(linked: Path, features: Path, as_of: dt.date, out: Path) -> dict[str, float]:
    con = duck.connect(keep_order=False, keep_memory=True)  # as the feature stage's connection
    try:
        times = _timed(con, least(linked, as_of))
    finally:
        con.close()
    table = pq.read_table(features)
    started = time.perf_counter()
    pq.write_table(table, out, compression="zstd", row_group_size=100_000)
    times["the feature table written"] = time.perf_counter() - started
    return times


def run_fused(linked: Path, as_of: dt.date, out: Path) -> dict[str, float]:
    con = duck.connect(keep_order=False, keep_memory=True)
    try:
        queries = fused(linked, as_of)
        times = _timed(con, queries)
        parts = [n for n in queries if n not in ("people", "by substance", "codes")]
        columns = ", ".join(f'"{n}".* EXCLUDE (person_key)' for n in parts)
        joins = " ".join(f'LEFT JOIN "{n}" USING (person_key)' for n in parts)
        started = time.perf_counter()
        con.execute(
            f"COPY (SELECT people.*, {columns} FROM people {joins} ORDER BY person_key) TO '{out}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        times["joined and written"] = time.perf_counter() - started
    finally:
        con.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 10, 1))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    wd = WorkDir(args.workdir)
    features = wd.features(args.as_of)
    if not features.exists():
        raise SystemExit(f"{features}: no feature table at {args.as_of}: run 'riskstrat run' on {args.workdir} first")
    read = monthly.columns_read(wd.linked, args.as_of)
    with tempfile.TemporaryDirectory(dir=wd.pseudonymised) as tmp:
        rounds = []
        for _ in range(args.repeats):  # in turns, as the floor is taken
            rounds.append(
                (
                    run_least(wd.linked, features, args.as_of, Path(tmp) / "least.parquet"),
                    run_fused(wd.linked, args.as_of, Path(tmp) / "fused.parquet"),
                    monthly.scan_floor(wd.linked, read)[0],
                )
            )
    floor = min(r[2] for r in rounds)
    print(
        f"scan floor (the columns the features read): {floor:.1f} s, best of {', '.join(f'{r[2]:.1f}' for r in rounds)}"
    )
    for shape, at in (("least", 0), ("fused", 1)):
        totals = [sum(r[at].values()) for r in rounds]
        ratios = f"{min(totals) / floor:.1f}-{max(totals) / floor:.1f}"
        print(f"\n{shape}: {', '.join(f'{x:.1f}' for x in totals)} s = {ratios} x the floor")
        for name in rounds[0][at]:
            print(f"  {name}: {', '.join(f'{r[at][name]:.2f}' for r in rounds)} s")


if __name__ == "__main__":
    main()
