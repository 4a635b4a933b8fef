"""Measure a (synthetic) extracts directory against England-like targets.

Figures are computed from the extract files alone, with DuckDB, the way an analyst would,
so they check the generator from the outside: the population at ``D`` follows the data
contract's time rules, and activity is counted over ``[D, D + 365)``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from riskstrat import codelists
from riskstrat.duck import connect
from riskstrat.schema import EMERGENCY_ADMISSION_METHODS
from riskstrat.synth import params as P

__all__ = ["TARGETS", "measure"]

#: target value and relative tolerance (or absolute, for shares given as (lo, hi)).
TARGETS: dict[str, tuple[float, float]] = {
    "prevalence_hypertension": (0.14, 0.15),
    "prevalence_diabetes": (0.075, 0.15),
    "prevalence_asthma": (0.065, 0.15),
    "prevalence_depression_adults": (0.12, 0.15),
    "prevalence_ckd": (0.04, 0.2),
    "prevalence_chd": (0.03, 0.2),
    "prevalence_cancer": (0.035, 0.2),
    "prevalence_af": (0.02, 0.2),
    "prevalence_copd": (0.02, 0.2),
    "prevalence_stroke": (0.018, 0.2),
    "prevalence_hf": (0.01, 0.25),
    "prevalence_dementia": (0.008, 0.25),
    "prevalence_smi": (0.01, 0.25),
    "deaths_per_person_year": (0.009, 0.2),
    "opt_out_type1": (0.03, 0.15),
    "opt_out_ndoo": (0.05, 0.15),
    "items_per_person_year": (21.0, 0.15),
    "op_per_person_year": (1.6, 0.15),
    "op_dna_share": (0.07, 0.2),
    "ae_per_person_year": (0.46, 0.15),
    "share_with_emergency_admission": (0.075, 0.1),
    "emergency_admissions_per_1000": (109.0, 0.12),
    "share_with_emergency_admission_80_plus": (0.33, 0.2),
    "registered_per_practice": (8000.0, 0.2),
}


def _src(extracts: Path, table: str) -> str:
    for ext, fn in (("parquet", "read_parquet"), ("csv", "read_csv_auto")):
        p = extracts / f"{table}.{ext}"
        if p.exists():
            return f"{fn}('{p.as_posix()}')"
    raise FileNotFoundError(f"{extracts}: no {table}")


def measure(extracts: Path, as_of: dt.date) -> dict[str, float]:
    """Realism figures of ``extracts`` for the population at ``as_of`` and the year after."""
    con = connect()
    d = f"DATE '{as_of.isoformat()}'"
    d1 = f"DATE '{(as_of + dt.timedelta(days=365)).isoformat()}'"
    con.execute(
        f"""
        CREATE TEMP TABLE pop AS
        SELECT r.nhs_number, any_value(r.date_of_birth) AS dob, any_value(r.sex) AS sex,
               any_value(r.practice_code) AS practice_code
        FROM {_src(extracts, "gp_registrations")} r
        JOIN {_src(extracts, "ref_practices")} p USING (practice_code)
        LEFT JOIN {_src(extracts, "deaths")} x USING (nhs_number)
        WHERE r.registration_start <= {d} AND (r.registration_end IS NULL OR r.registration_end >= {d})
          AND (x.date_of_death IS NULL OR x.date_of_death >= {d})
        GROUP BY r.nhs_number
        """
    )
    out: dict[str, float] = {}
    n = con.execute("SELECT count(*) FROM pop").fetchone()[0]
    out["population"] = float(n)
    out["registered_per_practice"] = n / con.execute("SELECT count(DISTINCT practice_code) FROM pop").fetchone()[0]
    adults = con.execute(f"SELECT count(*) FROM pop WHERE dob <= {d} - INTERVAL 18 YEAR").fetchone()[0]
    # Prevalence: a diagnosis code before D, not followed by a later resolved code.
    adults_only = f"AND pop.dob <= {d} - INTERVAL 18 YEAR"
    for c in P.CONDITIONS:
        codes = codelists.codes(c.cluster)
        con.execute("CREATE OR REPLACE TEMP TABLE dx AS SELECT unnest($1::VARCHAR[]) AS code", [codes])
        res = codelists.codes(c.resolved_cluster) if c.resolved_cluster else []
        con.execute("CREATE OR REPLACE TEMP TABLE rx AS SELECT unnest($1::VARCHAR[]) AS code", [res or ["-"]])
        k = con.execute(
            f"""
            WITH ev AS (SELECT * FROM {_src(extracts, "gp_events")} WHERE event_date < {d}),
            last_dx AS (SELECT nhs_number, max(event_date) AS t FROM ev JOIN dx ON ev.snomed_code = dx.code GROUP BY 1),
            last_rx AS (SELECT nhs_number, max(event_date) AS t FROM ev JOIN rx ON ev.snomed_code = rx.code GROUP BY 1)
            SELECT count(*) FROM pop JOIN last_dx USING (nhs_number) LEFT JOIN last_rx r USING (nhs_number)
            WHERE (r.t IS NULL OR r.t < last_dx.t) {adults_only if c.adults_only else ""}
            """
        ).fetchone()[0]
        key = "prevalence_depression_adults" if c.name == "depression" else f"prevalence_{c.name}"
        out[key] = k / (adults if c.name == "depression" else n)
    em = "(" + ",".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS) + ")"
    row = con.execute(
        f"""
        WITH spells AS (
            SELECT nhs_number, spell_id FROM {_src(extracts, "sus_apc")}
            WHERE admission_method IN {em} AND admission_date >= {d} AND admission_date < {d1}
            GROUP BY ALL),
        per AS (SELECT nhs_number, count(*) AS k FROM spells GROUP BY 1)
        SELECT count(per.nhs_number) / count(*), coalesce(sum(per.k), 0) / count(*) * 1000,
               count(per.nhs_number) FILTER (WHERE pop.dob <= {d} - INTERVAL 80 YEAR)
                 / count(*) FILTER (WHERE pop.dob <= {d} - INTERVAL 80 YEAR)
        FROM pop LEFT JOIN per USING (nhs_number)
        """
    ).fetchone()
    out["share_with_emergency_admission"], out["emergency_admissions_per_1000"] = row[0], row[1]
    out["share_with_emergency_admission_80_plus"] = row[2]

    def per_person(table: str, date_col: str, where: str = "TRUE") -> float:
        k = con.execute(
            f"SELECT count(*) FROM {_src(extracts, table)} t JOIN pop USING (nhs_number) "
            f"WHERE {date_col} >= {d} AND {date_col} < {d1} AND {where}"
        ).fetchone()[0]
        return k / n

    out["items_per_person_year"] = per_person("gp_medications", "issue_date")
    out["op_per_person_year"] = per_person("sus_op", "appointment_date")
    out["op_dna_share"] = (
        per_person("sus_op", "appointment_date", "attendance_status = '3'") / out["op_per_person_year"]
    )
    out["ae_per_person_year"] = per_person("sus_ecds", "arrival_date")
    out["elective_spells_per_person_year"] = con.execute(
        f"SELECT count(DISTINCT spell_id) / {n} FROM {_src(extracts, 'sus_apc')} JOIN pop USING (nhs_number) "
        f"WHERE admission_method IN ('11','12','13') AND admission_date >= {d} AND admission_date < {d1}"
    ).fetchone()[0]
    out["deaths_per_person_year"] = con.execute(
        f"SELECT count(*) / {n} FROM {_src(extracts, 'deaths')} JOIN pop USING (nhs_number) "
        f"WHERE date_of_death >= {d} AND date_of_death < {d1}"
    ).fetchone()[0]
    total = con.execute(f"SELECT count(DISTINCT nhs_number) FROM {_src(extracts, 'gp_registrations')}").fetchone()[0]
    for kind in ("type1", "ndoo"):
        out[f"opt_out_{kind}"] = con.execute(
            f"SELECT count(DISTINCT nhs_number) / {total} FROM {_src(extracts, 'opt_outs')} "
            f"WHERE opt_out_type = '{kind}'"
        ).fetchone()[0]
    out["opt_out_both"] = con.execute(
        f"SELECT count(*) / {total} FROM (SELECT nhs_number FROM {_src(extracts, 'opt_outs')} "
        "GROUP BY 1 HAVING count(DISTINCT opt_out_type) = 2)"
    ).fetchone()[0]
    ages = con.execute(
        f"SELECT least(floor(date_diff('year', dob, {d}) / 5), 19)::INT AS band, count(*) / {n} "
        "FROM pop GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for band, share in ages:
        out[f"age_band_{band * 5:02d}"] = share
    out["female_share_85_plus"] = con.execute(
        f"SELECT avg((sex = '2')::INT) FROM pop WHERE dob <= {d} - INTERVAL 85 YEAR"
    ).fetchone()[0]
    con.close()
    return out
