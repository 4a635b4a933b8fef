"""A synthetic NHS population in data contract v1, with the true risk of every person.

The population is simulated in yearly steps ending on the extract date ``E``; step ``k``
starts on the as-of date ``B_k = E - 365 * (years - k)``. At each ``B_k`` every person's
hazard of an emergency admission over ``[B_k, B_k + 365)`` is a fixed function of what
their record shows strictly before ``B_k`` (age, sex, deprivation, coded conditions and
frailty deficits, care home, smoking, prior emergency admissions and A&E attendances,
distinct medicines in the last 6 months), with interactions; admissions are drawn from it.
So the written true probability (``truth/true_risk.parquet``) is the best any model of the
extracts could do: the ceiling against which riskstrat's models are judged.

People are simulated in independent chunks (default 100,000), each with its own random
stream derived from the seed, so memory stays bounded and output is reproducible.
Every NHS number is synthetic (:func:`riskstrat.privacy.nhs_number.synthetic_nhs_numbers`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from scipy.special import expit, logit, ndtr

from riskstrat import codelists
from riskstrat.schema import TABLES, arrow_schema
from riskstrat.synth import params as P

__all__ = ["DEFAULT_EXTRACT_DATE", "ChunkResult", "Region", "SynthOptions", "simulate_chunk"]

DEFAULT_EXTRACT_DATE = dt.date(2026, 10, 1)
_EPOCH = dt.date(1970, 1, 1)
YEAR = 365.25
NEVER = np.int64(10**7)  # a day number far beyond any extract


def day_number(d: dt.date) -> int:
    return (d - _EPOCH).days


@dataclass(frozen=True)
class SynthOptions:
    """What to generate. ``patients`` counts everyone who appears in the extracts over
    the ``years`` simulated (about 75% of them are registered on the extract date)."""

    patients: int = 10_000
    seed: int = 42
    years: int = 7
    extract_date: dt.date = DEFAULT_EXTRACT_DATE
    fault_rate: float = 0.0
    chunk_size: int = 100_000
    practices: int | None = None  # default: about 8,000 registered people per practice

    @property
    def end(self) -> int:
        return day_number(self.extract_date)

    @property
    def start(self) -> int:
        return self.end - 365 * self.years

    def boundaries(self) -> list[int]:
        """As-of day numbers B_0 … B_years (the last is the extract date)."""
        return [self.start + 365 * k for k in range(self.years + 1)]


@dataclass
class Region:
    """The commissioning region: practices in PCNs under one sub-ICB, LSOAs, providers."""

    practice_codes: np.ndarray
    practice_names: np.ndarray
    pcn_of_practice: np.ndarray
    pcn_codes: np.ndarray
    practice_weights: np.ndarray
    practice_lsoas: list[np.ndarray]
    lsoa_codes: np.ndarray
    lsoa_deciles: np.ndarray
    provider_codes: np.ndarray
    sub_icb: str = "99X"

    @classmethod
    def build(cls, patients: int, seed: int, practices: int | None = None) -> Region:
        rng = np.random.default_rng([seed, 7])
        registered = 0.70 * patients
        n_practices = practices or max(1, round(registered / P.PEOPLE_PER_PRACTICE))
        n_pcns = max(1, round(n_practices / P.PRACTICES_PER_PCN))
        sizes = rng.lognormal(0, 0.35, n_practices)
        weights = sizes / sizes.sum()
        practice_codes = np.array([f"Y{90000 + i:05d}" for i in range(n_practices)])
        pcn_codes = np.array([f"U{90000 + i:05d}" for i in range(n_pcns)])
        pcn_of_practice = np.sort(rng.integers(0, n_pcns, n_practices))
        pcn_of_practice[:n_pcns] = np.arange(n_pcns)  # every PCN has a practice
        n_lsoa = max(10, round(registered / P.PEOPLE_PER_LSOA))
        lsoa_codes = np.array([f"E01{900000 + i:06d}" for i in range(n_lsoa)])
        # Deprivation clusters geographically: each practice draws LSOAs near its own decile.
        lsoa_deciles = rng.integers(1, 11, n_lsoa)
        practice_decile = rng.integers(1, 11, n_practices)
        practice_lsoas = []
        for p in range(n_practices):
            near = np.flatnonzero(np.abs(lsoa_deciles - practice_decile[p]) <= 2)
            k = max(3, round(weights[p] * n_lsoa * 1.5))
            practice_lsoas.append(rng.choice(near, size=min(k, near.size), replace=False))
        return cls(
            practice_codes=practice_codes,
            practice_names=np.array([f"Synthetic Practice {i + 1}" for i in range(n_practices)]),
            pcn_of_practice=pcn_of_practice,
            pcn_codes=pcn_codes,
            practice_weights=weights,
            practice_lsoas=practice_lsoas,
            lsoa_codes=lsoa_codes,
            lsoa_deciles=lsoa_deciles,
            provider_codes=np.array([f"R9{chr(65 + i)}" for i in range(P.N_PROVIDERS)]),
        )

    def ref_practices(self) -> pa.Table:
        pcn = self.pcn_of_practice
        return pa.table(
            {
                "practice_code": self.practice_codes,
                "practice_name": self.practice_names,
                "pcn_code": self.pcn_codes[pcn],
                "pcn_name": np.array([f"Synthetic PCN {i + 1}" for i in pcn]),
                "sub_icb_code": np.full(pcn.shape, self.sub_icb),
            },
            schema=arrow_schema(TABLES["ref_practices"]),
        )

    def ref_lsoa(self) -> pa.Table:
        return pa.table(
            {"lsoa_code": self.lsoa_codes, "imd_decile": self.lsoa_deciles.astype(np.int64)},
            schema=arrow_schema(TABLES["ref_lsoa"]),
        )


@dataclass
class _Drugs:
    codes: np.ndarray
    groups: np.ndarray
    substance: np.ndarray  # index of the BNF chemical substance (first 9 characters)
    item_cost: np.ndarray  # synthetic pounds per item (params.ITEM_COST)
    codes_arrow: pa.Array
    by_group: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls) -> _Drugs:
        rows = codelists.codelist("bnf/bnf_presentations.csv")
        codes = np.array([r["code"] for r in rows])
        groups = np.array([r["drug_group"] for r in rows])
        _, substance = np.unique(np.array([c[:9] for c in codes]), return_inverse=True)
        by_group = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
        cost = np.array([P.ITEM_COST[g] for g in groups])
        return cls(codes, groups, substance, cost, pa.array(codes), by_group)


@dataclass
class _Codes:
    """SNOMED CT codes the generator records, from the shared code lists."""

    condition: list[np.ndarray]
    resolved: list[np.ndarray | None]
    deficit: list[np.ndarray]
    carehome: np.ndarray
    current_smoker: np.ndarray
    ex_smoker: np.ndarray
    bmi: np.ndarray
    falls: np.ndarray

    @classmethod
    def load(cls) -> _Codes:
        def arr(path: str, **where: str) -> np.ndarray:
            out = np.array(codelists.codes(path, **where))
            if out.size == 0:
                raise AssertionError(f"empty code list {path} {where}")
            return out

        efi = "efi/efi_deficits_gm_sde.csv"
        clusters = [arr(c.cluster) for c in P.CONDITIONS]
        everything = np.concatenate(clusters)

        def own(i: int) -> np.ndarray:  # codes on no other condition's list
            others = np.concatenate([c for j, c in enumerate(clusters) if j != i])
            return clusters[i][~np.isin(clusters[i], others)]

        def not_condition(codes: np.ndarray) -> np.ndarray:
            return codes[~np.isin(codes, everything)]

        return cls(
            condition=[own(i) for i in range(len(clusters))],
            resolved=[arr(c.resolved_cluster) if c.resolved_cluster else None for c in P.CONDITIONS],
            deficit=[not_condition(arr(efi, deficit_id=d, terminology="snomed")) for d, _, _ in P.EFI_DEFICITS],
            carehome=arr("snomed/nhsd-primary-care-domain-refsets-carehome_cod.csv"),
            current_smoker=arr("snomed/nhsd-primary-care-domain-refsets-lsmok_cod.csv"),
            ex_smoker=arr("snomed/nhsd-primary-care-domain-refsets-exsmok_cod.csv"),
            bmi=arr("snomed/nhsd-primary-care-domain-refsets-bmival_cod.csv"),
            falls=arr("snomed/nhsd-primary-care-domain-refsets-falls_cod.csv"),
        )


def _condition_caps() -> np.ndarray:
    """Lifetime cap of each condition's age curve, so prevalence meets its target."""
    ages = np.arange(0, 100) + 0.5
    weights = np.repeat(P.AGE_BAND_PERCENT / 5, 5)
    caps = []
    for c in P.CONDITIONS:
        curve = expit((ages - c.a50) / c.scale)
        w = np.where(ages >= 18, weights, 0) if c.adults_only else weights
        target = c.target * (w.sum() / weights.sum()) if c.adults_only else c.target
        if c.name == "depression":  # the target is a share of adults
            target = c.target * (weights[18:].sum() / weights.sum())
        # Deaths remove the sick: aim above the target among the living (factor measured).
        caps.append(min(0.98, c.survival_adjust * target * weights.sum() / (weights * curve).sum()))
    return np.array(caps)


_CAPS = _condition_caps()


def _sample_ages(rng: np.random.Generator, n: int, band_weights: np.ndarray) -> np.ndarray:
    band = rng.choice(band_weights.shape[0], size=n, p=band_weights / band_weights.sum())
    return band * 5 + rng.random(n) * 5


def _onset_days(u: np.ndarray, cap: float, a50: float, scale: float, dob: np.ndarray, min_age: float) -> np.ndarray:
    """Day of onset where the uniform draw ``u`` falls under the age curve, else NEVER."""
    hit = u < cap
    ratio = np.clip(u / cap, 1e-9, 1 - 1e-9)
    age = np.maximum(a50 + scale * logit(ratio), min_age)
    return np.where(hit, dob + (age * YEAR).astype(np.int64), NEVER)


@dataclass
class ChunkResult:
    tables: dict[str, pa.Table]
    truth: pa.Table


class _Events:
    """Growing columns of one event kind (appended per year, concatenated at the end)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.parts.setdefault(k, []).append(np.asarray(v))

    def get(self, key: str, dtype=np.int64) -> np.ndarray:
        parts = self.parts.get(key)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _soft_ceiling(eta: np.ndarray, knee: float = 4.0, slope: float = 0.35) -> np.ndarray:
    """Flatten the log hazard above ``knee`` so the riskiest people stay below certainty."""
    return np.where(eta > knee, knee + slope * (eta - knee), eta)


def _calibrate(eta: np.ndarray, target: float, weights: np.ndarray | None = None) -> float:
    """Intercept a with mean(1 - exp(-exp(a + eta))) == target (bisection)."""
    lo, hi = -30.0, 10.0
    w = np.ones_like(eta) if weights is None else weights
    for _ in range(60):
        mid = (lo + hi) / 2
        mean = np.average(-np.expm1(-np.exp(mid + eta)), weights=w) if eta.size else target
        lo, hi = (mid, hi) if mean < target else (lo, mid)
    return (lo + hi) / 2


def simulate_chunk(
    opts: SynthOptions, region: Region, nhs_numbers: np.ndarray, chunk: int, spell_offset: int
) -> ChunkResult:
    """Simulate one chunk of people over the whole period; returns contract tables."""
    return _Chunk(opts, region, nhs_numbers, chunk, spell_offset).run()


class _Chunk:
    def __init__(self, opts: SynthOptions, region: Region, nhs: np.ndarray, chunk: int, spell_offset: int):
        self.o, self.r, self.nhs = opts, region, nhs
        self.m = nhs.shape[0]
        self.rng = np.random.default_rng([opts.seed, 1000 + chunk])
        self.chunk = chunk
        self.spell_offset = spell_offset
        self.nhs_arrow = pa.array(nhs, pa.string())
        self.drugs = _Drugs.load()
        self.codes = _Codes.load()

    # ------------------------------------------------------------------ people
    def _people(self) -> None:
        o, rng, m = self.o, self.rng, self.m
        # Residents: age on the extract date from the pyramid (those born in the period join
        # at birth). Movers: join on a day in the period, mostly as young adults.
        p_mover = P.IN_MIGRATION_RATE * o.years / (1 + P.IN_MIGRATION_RATE * o.years)
        mover = rng.random(m) < p_mover
        mover_w = P.AGE_BAND_PERCENT * P.MOVER_AGE_ADJUST
        age_end = _sample_ages(rng, m, P.AGE_BAND_PERCENT * P.RESIDENT_AGE_ADJUST)
        dob_resident = o.end - 1 - (age_end * YEAR).astype(np.int64)  # born before the extract date
        mover_entry = o.start + rng.integers(0, o.end - o.start, m)
        age_entry = _sample_ages(rng, m, mover_w)
        self.dob = np.where(mover, mover_entry - (age_entry * YEAR).astype(np.int64), dob_resident)
        born_here = ~mover & (self.dob >= o.start)
        entry = np.where(mover, mover_entry, np.where(born_here, self.dob + rng.integers(0, 43, m), o.start))
        entry = np.clip(entry, self.dob, o.end - 1)
        kind = np.where(mover, 2, np.where(born_here, 1, 0))
        age_years = (entry - self.dob) / YEAR
        age_days = entry - self.dob
        band = np.minimum(age_years // 5, 19).astype(int)
        female = rng.random(m) < P.FEMALE_SHARE[band]
        self.sex = np.where(female, "2", "1").astype(object)
        self.sex[rng.random(m) < 0.0005] = "0"
        self.male = self.sex == "1"
        self.entry = entry
        # Registration start: initial people registered some years before the period.
        prior = np.minimum(rng.exponential(12 * YEAR, m).astype(np.int64), age_days)
        self.reg_start = np.where(kind == 0, entry - prior, entry)
        self.practice = rng.choice(self.r.practice_codes.shape[0], size=m, p=self.r.practice_weights)
        lsoa = np.array([rng.choice(self.r.practice_lsoas[p]) for p in self.practice]) if m < 2000 else None
        if lsoa is None:  # vectorised pick of one LSOA from each person's practice pool
            lsoa = np.empty(m, dtype=np.int64)
            for p in np.unique(self.practice):
                idx = np.flatnonzero(self.practice == p)
                lsoa[idx] = rng.choice(self.r.practice_lsoas[p], size=idx.size)
        self.lsoa = lsoa
        self.decile = self.r.lsoa_deciles[lsoa]
        self.dep01 = (10 - self.decile) / 9  # 1 = most deprived
        eth_codes = np.array(
            ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z", "99"]
        )
        eth_p = np.array([73.5, 0.9, 6.3, 0.8, 0.5, 0.9, 0.8, 3.1, 2.7, 1.1, 1.6, 1.0, 2.5, 0.5, 0.8, 1.6, 1.0, 0.4])
        self.ethnic = eth_codes[rng.choice(eth_codes.size, size=m, p=eth_p / eth_p.sum())].astype(object)
        self.ethnic[rng.random(m) < 0.03] = None
        self.latent = rng.standard_normal(m)

    def _conditions(self) -> None:
        o, rng, m = self.o, self.rng, self.m
        dep_shift = P.DEPRIVATION_SHIFT * (2 * self.dep01 - 1)
        n_c = len(P.CONDITIONS)
        self.onset = np.full((m, n_c), NEVER, dtype=np.int64)
        self.resolved = np.full((m, n_c), NEVER, dtype=np.int64)
        load = P.LATENT_LOADING
        for i, c in enumerate(P.CONDITIONS):
            score = load * self.latent + np.sqrt(1 - load**2) * rng.standard_normal(m) + dep_shift
            u = ndtr(-score)
            rr = np.sqrt(c.male_rr)
            u = np.where(self.male, u / rr, u * rr)
            min_age = 18 if c.adults_only else (1.0 if c.name == "asthma" else 18 if c.name == "depression" else 0.5)
            self.onset[:, i] = _onset_days(u, _CAPS[i], c.a50, c.scale, self.dob, min_age)
            if c.resolved_cluster:
                res = rng.random(m) < c.resolved_share
                gap = (rng.uniform(1, 12, m) * YEAR).astype(np.int64)
                self.resolved[:, i] = np.where(res & (self.onset[:, i] < NEVER), self.onset[:, i] + gap, NEVER)
        n_d = len(P.EFI_DEFICITS)
        self.deficit = np.full((m, n_d), NEVER, dtype=np.int64)
        for j, (_, a50, cap) in enumerate(P.EFI_DEFICITS):
            score = 0.5 * self.latent + np.sqrt(0.75) * rng.standard_normal(m) + dep_shift
            self.deficit[:, j] = _onset_days(ndtr(-score), cap, a50, P.EFI_SCALE, self.dob, 40)
        dementia = self.onset[:, P.CONDITION_INDEX["dementia"]] < NEVER
        u = ndtr(-(0.5 * self.latent + np.sqrt(0.75) * rng.standard_normal(m))) * np.where(dementia, 0.3, 1.0)
        self.carehome = _onset_days(u, 0.3, 91, 4.5, self.dob, 60)
        # Smoking status (adults), fixed for the period; recorded 1-3 times while registered.
        age_now = (o.end - self.dob) / YEAR
        p_cur = np.where(age_now >= 16, 0.13 * (0.55 + 0.9 * self.dep01), 0)
        p_ex = np.where(age_now >= 16, 0.25 * np.clip(0.4 + age_now / 80, 0, 1.4), 0)
        draw = rng.random(m)
        self.smoking = np.where(draw < p_cur, 2, np.where(draw < p_cur + p_ex, 1, 0))  # 2 current, 1 ex

    # ------------------------------------------------------------------ medicines (potential)
    def _medicines(self) -> None:
        o, rng, m, d = self.o, self.rng, self.m, self.drugs
        persons, groups, starts, stops = [], [], [], []

        def course(mask: np.ndarray, group: str, start: np.ndarray, stop: np.ndarray) -> None:
            idx = np.flatnonzero(mask & (start < stop))
            persons.append(idx)
            groups.append(np.full(idx.size, group, dtype=object))
            starts.append(start[idx])
            stops.append(stop[idx])

        first = np.maximum(self.entry, o.start - rng.integers(0, 28, m))
        for i, c in enumerate(P.CONDITIONS):
            onset = self.onset[:, i]
            has = onset < o.end
            for group, prob in c.drugs:
                take = has & (rng.random(m) < prob)
                start = np.maximum(onset + rng.integers(0, 90, m), first)
                course(take, group, start, np.minimum(self.resolved[:, i], o.end))
        age_at = lambda years: self.dob + int(years * YEAR)  # noqa: E731
        end = np.full(m, o.end)
        old = (o.end - self.dob) / YEAR
        course(
            rng.random(m) < np.where(old >= 60, 0.45, np.where(old >= 40, 0.18, np.where(old >= 18, 0.05, 0))),
            "ppi",
            np.maximum(first, age_at(35) + rng.integers(0, 9000, m)),
            end,
        )
        course(rng.random(m) < np.where(old >= 70, 0.35, 0), "other", np.maximum(first, age_at(65)), end)
        course(rng.random(m) < np.where(old >= 65, 0.2, 0), "analgesic_simple", np.maximum(first, age_at(65)), end)
        course(
            rng.random(m) < np.where(old >= 40, 0.08, 0),
            "other",
            np.maximum(first, age_at(40) + rng.integers(0, 9000, m)),
            end,
        )
        course(
            rng.random(m) < np.where(old >= 40, 0.06, 0),
            "antidepressant",
            np.maximum(first, age_at(40) + rng.integers(0, 9000, m)),
            end,
        )
        cvd = (
            self.onset[:, [P.CONDITION_INDEX[k] for k in ("chd", "stroke", "diabetes", "hypertension")]] < o.end
        ).any(1)
        course(
            ~cvd & (rng.random(m) < np.where(old >= 60, 0.4, np.where(old >= 45, 0.12, 0))),
            "statin",
            np.maximum(first, age_at(60) + rng.integers(0, 3000, m)),
            end,
        )
        defi = {name: j for j, (name, _, _) in enumerate(P.EFI_DEFICITS)}
        for deficit, group, prob in (
            ("thyroid-disorders", "thyroid", 0.9),
            ("arthritis", "opioid", 0.2),
            ("arthritis", "analgesic_simple", 0.35),
            ("osteoporosis", "other", 0.5),
            ("anaemia", "other", 0.2),
        ):
            onset = self.deficit[:, defi[deficit]]
            course((onset < o.end) & (rng.random(m) < prob), group, np.maximum(first, onset + 30), end)
        course(rng.random(m) < 0.008, "antiepileptic", first, end)
        person = np.concatenate(persons)
        group = np.concatenate(groups)
        start = np.concatenate(starts)
        stop = np.concatenate(stops)
        drug = np.empty(person.size, dtype=np.int64)
        for g in np.unique(group):
            sel = np.flatnonzero(group == g)
            drug[sel] = rng.choice(d.by_group[g], size=sel.size)
        # One course per person and medicine.
        order = np.lexsort((start, drug, person))
        person, group, start, stop, drug = person[order], group[order], start[order], stop[order], drug[order]
        keep = np.ones(person.size, dtype=bool)
        keep[1:] = (person[1:] != person[:-1]) | (drug[1:] != drug[:-1])
        person, group, start, stop, drug = person[keep], group[keep], start[keep], stop[keep], drug[keep]
        interval = np.where(rng.random(person.size) < 0.1, 56, 28)
        n = np.maximum(0, -(-(stop - start) // interval))
        rep = np.repeat(np.arange(person.size), n)
        step = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n)
        day = start[rep] + step * interval[rep]
        regular = (day >= o.start) & (day < o.end)
        rp, rd, rday, rint = person[rep][regular], drug[rep][regular], day[regular], interval[rep][regular]
        # Acute items: more with age and multimorbidity.
        n_cond = (self.onset < o.end).sum(1)
        years_reg = (o.end - np.maximum(self.entry, o.start)) / YEAR
        lam = (5.5 + 1.0 * n_cond + 2.0 * (old >= 65)) * years_reg
        k = rng.poisson(lam)
        ap = np.repeat(np.arange(m), k)
        aday = np.maximum(self.entry, o.start)[ap] + (
            rng.random(ap.size) * (o.end - np.maximum(self.entry, o.start))[ap]
        ).astype(np.int64)
        acute_groups = ("antibiotic", "analgesic_simple", "nsaid", "opioid", "oral_corticosteroid", "ppi")
        ag = rng.choice(6, size=ap.size, p=[0.45, 0.15, 0.15, 0.1, 0.1, 0.05])
        copd_asthma = (self.onset[:, [P.CONDITION_INDEX["copd"], P.CONDITION_INDEX["asthma"]]] < o.end).any(1)
        ag[(copd_asthma[ap]) & (rng.random(ap.size) < 0.3)] = 4  # oral corticosteroid courses
        adrug = np.empty(ap.size, dtype=np.int64)
        for gi, g in enumerate(acute_groups):
            sel = np.flatnonzero(ag == gi)
            adrug[sel] = rng.choice(d.by_group[g], size=sel.size)
        self.med_person = np.concatenate([rp, ap])
        self.med_drug = np.concatenate([rd, adrug])
        self.med_day = np.concatenate([rday, aday])
        self.med_qty = np.concatenate([rint.astype(float), rng.choice([7.0, 14.0, 21.0, 28.0], size=ap.size)])
        self.med_acute = np.concatenate([np.zeros(rp.size, bool), np.ones(ap.size, bool)])

    def _polypharmacy(self, t0: int) -> np.ndarray:
        """Distinct BNF chemical substances issued in [t0 - 182, t0), per person."""
        sel = (self.med_day >= t0 - 182) & (self.med_day < t0)
        pairs = np.unique(self.med_person[sel] * 1000 + self.drugs.substance[self.med_drug[sel]])
        return np.bincount(pairs // 1000, minlength=self.m)

    # ------------------------------------------------------------------ the yearly simulation
    def _simulate(self) -> None:
        o, rng, m = self.o, self.rng, self.m
        self.exit = np.full(m, NEVER, dtype=np.int64)  # first day no longer registered
        self.death = np.full(m, NEVER, dtype=np.int64)
        self.transfer_day = np.full(m, NEVER, dtype=np.int64)
        self.transfer_to = np.full(m, -1, dtype=np.int64)
        self.smoke_first = np.full(m, NEVER, dtype=np.int64)
        cur = np.flatnonzero(self.smoking == 2)
        lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(16 * YEAR))[cur]
        span = np.maximum(o.end - lo, 1)
        self.smoke_first[cur] = lo + (rng.random(cur.size) * span).astype(np.int64)
        adm = _Events()
        ae = _Events()
        truth_parts = []
        hf, copd, ckd = (P.CONDITION_INDEX[k] for k in ("hf", "copd", "ckd"))
        cancer, dementia = P.CONDITION_INDEX["cancer"], P.CONDITION_INDEX["dementia"]
        beta = np.array([c.log_hazard for c in P.CONDITIONS])
        H, R, AE, D, MOVES = P.ADMISSION, P.READMISSIONS, P.AE_ATTENDANCES, P.DEATH, P.MOVES
        bounds = o.boundaries()
        for k, t0 in enumerate(bounds):
            t1 = t0 + 365
            alive = self.death >= t0
            in_pop = (self.reg_start <= t0) & (self.exit > t0) & alive & (self.entry <= t0)
            entrants = (self.entry > t0) & (self.entry < t1) & alive if k < o.years else np.zeros(m, bool)
            at_risk = in_pop | entrants
            start = np.where(entrants, self.entry, t0)
            age = (start - self.dob) / YEAR
            active = (self.onset < start[:, None]) & (self.resolved >= start[:, None])
            n_cond = active.sum(1)
            n_def = (self.deficit < start[:, None]).sum(1)
            care = self.carehome < start
            a_p, a_d = adm.get("person"), adm.get("day")
            prior1 = np.bincount(a_p[(a_d >= t0 - 365) & (a_d < t0)], minlength=m)
            prior2 = np.bincount(a_p[(a_d >= t0 - 730) & (a_d < t0 - 365)], minlength=m)
            recent = np.bincount(a_p[(a_d >= t0 - 90) & (a_d < t0)], minlength=m) > 0
            e_p, e_d = ae.get("person"), ae.get("day")
            ae1 = np.bincount(e_p[(e_d >= t0 - 365) & (e_d < t0)], minlength=m)
            poly = self._polypharmacy(t0)
            smoker = self.smoke_first < start
            eta = (
                np.where(age < 1, H.infant, 0)
                + np.where((age >= 1) & (age < H.child_to), H.child, 0)
                + H.age_slope * np.clip(age - H.age_knee, 0, None)
                + H.old_age_slope * np.clip(age - H.old_age_knee, 0, None)
                + H.older_male * (self.male & (age > H.older_male_age))
                + H.deprivation * self.dep01
                + active @ beta
                + H.multimorbidity
                * np.clip(n_cond - H.multimorbidity_free, 0, H.multimorbidity_cap)
                * (H.multimorbidity_base + H.multimorbidity_deprivation * self.dep01)  # multimorbidity x deprivation
                + (H.frailty + H.frailty_old * (age >= H.frailty_old_age))
                * np.minimum(n_def, H.frailty_cap)  # frailty matters most when old
                + H.care_home * care
                + (H.prior_admissions + H.prior_admissions_young * (age < H.young_age))
                * np.log1p(np.minimum(prior1, H.prior_cap))  # prior use matters more when younger
                + H.earlier_admissions * np.log1p(np.minimum(prior2, H.prior_cap))
                + H.ae * np.log1p(np.minimum(ae1, H.ae_cap))
                + H.frequent_ae * (ae1 >= H.frequent_ae_from)  # frequent A&E attenders
                + H.medicines * np.minimum(poly, H.medicines_cap)
                + H.polypharmacy * (poly >= H.polypharmacy_from)  # polypharmacy threshold
                + H.recent_admission * recent
                + H.smoker * smoker
                + H.cardio_renal * (active[:, hf] & active[:, ckd])  # cardio-renal interaction
            )
            eta = _soft_ceiling(eta, H.ceiling_knee, H.ceiling_slope)
            alpha = _calibrate(eta[in_pop], P.EMERGENCY_PERSON_SHARE)
            hazard = np.exp(alpha + eta)
            p_year = -np.expm1(-hazard)
            truth_parts.append((np.flatnonzero(in_pop), np.full(int(in_pop.sum()), t0), p_year[in_pop]))
            if k == o.years:
                break
            frac = np.clip((t1 - start) / 365, 0, 1)
            p = np.where(at_risk, -np.expm1(-hazard * frac), 0)
            admitted = rng.random(m) < p
            g = 1 + R.chronic * (active[:, hf] | active[:, copd]) + R.per_deficit * n_def + R.prior * np.log1p(prior1)
            ratio = P.EMERGENCY_SPELLS_PER_PERSON / P.EMERGENCY_PERSON_SHARE - 1
            c = R.spread * ratio * p[in_pop].sum() / max((p * g)[in_pop].sum(), 1e-9)
            extra = rng.poisson(c * g) * admitted
            # First admission uniform over the at-risk part of the year; later ones follow it.
            idx = np.flatnonzero(admitted)
            day = start[idx] + (rng.random(idx.size) * (t1 - start[idx])).astype(np.int64)
            last_dis = np.full(m, -1, dtype=np.int64)
            last_adm = np.full(m, -1, dtype=np.int64)
            rank = 0
            while idx.size:
                los = self._length_of_stay(age[idx], n_def[idx])
                dis = day + los
                adm.add(person=idx, day=day, dis=dis, rank=np.full(idx.size, rank), year=np.full(idx.size, k))
                last_dis[idx], last_adm[idx] = dis, day
                rank += 1
                more = extra[idx] >= rank
                idx, dis = idx[more], dis[more]
                gap = np.where(
                    rng.random(idx.size) < R.soon_share,
                    rng.exponential(R.soon_days, idx.size),
                    rng.exponential(R.later_days, idx.size),
                )
                day = dis + 1 + gap.astype(np.int64)
                ok = day < t1
                idx, day = idx[ok], day[ok]
            # A&E attendances that did not end in admission.
            base_age = np.interp(age, AE.ages, AE.rates)
            lam = (
                base_age
                * (AE.deprivation_base + AE.deprivation * self.dep01)
                * (1 + AE.per_condition * n_cond)
                * (1 + AE.earlier_ae * (ae1 > 0))
            )
            target = P.AE_PER_PERSON - P.VIA_AE_SHARE * P.EMERGENCY_SPELLS_PER_PERSON
            lam *= target / max(lam[in_pop].mean(), 1e-9)
            n_ae = rng.poisson(lam * frac) * at_risk
            ae_p = np.repeat(np.arange(m), n_ae)
            ae_d = start[ae_p] + (rng.random(ae_p.size) * (t1 - start[ae_p])).astype(np.int64)
            ae.add(person=ae_p, day=ae_d, admitted=np.zeros(ae_p.size, bool))
            # Deaths, steeply age-graded; admitted people die more often, some in hospital.
            dz = (
                D.age_slope * age
                + D.infant * (age < 1)
                + D.per_condition * n_cond
                + D.per_deficit * n_def
                + D.heart_failure * active[:, hf]
                + D.cancer * active[:, cancer]
                + D.dementia * active[:, dementia]
                + D.copd * active[:, copd]
                + D.admitted * admitted
            )
            gamma = _calibrate(dz[in_pop], P.DEATH_RATE)
            q = np.where(at_risk, -np.expm1(-np.exp(gamma + dz) * frac), 0)
            dies = rng.random(m) < q
            death_day = start + (rng.random(m) * (t1 - start)).astype(np.int64)
            after_adm = dies & (last_adm >= 0)
            in_hosp = after_adm & (rng.random(m) < D.in_hospital_share) & (last_dis < o.end)
            death_day = np.where(after_adm, np.maximum(death_day, last_adm), death_day)
            death_day = np.where(in_hosp, last_dis, death_day)
            dies &= death_day < o.end
            self.death[dies] = death_day[dies]
            lag = rng.integers(0, D.registration_lag_days, m)
            self.exit[dies] = np.minimum(self.exit[dies], death_day[dies] + lag[dies] + 1)
            # Moving away, and changing practice within the region.
            age_f = np.interp(age, MOVES.ages, MOVES.factors)
            moves = at_risk & ~dies & (rng.random(m) < P.OUT_MIGRATION_RATE * age_f * frac)
            move_day = start + 1 + (rng.random(m) * (t1 - start - 1)).astype(np.int64)
            self.exit[moves] = np.minimum(self.exit[moves], move_day[moves])
            tr = at_risk & ~dies & ~moves & (self.transfer_to < 0) & (rng.random(m) < P.TRANSFER_RATE * frac)
            tr_day = start + 1 + (rng.random(m) * (t1 - start - 1)).astype(np.int64)
            self.transfer_day[tr] = tr_day[tr]
            n_pr = self.r.practice_codes.shape[0]
            self.transfer_to[tr] = (self.practice[tr] + rng.integers(1, max(n_pr, 2), int(tr.sum()))) % max(n_pr, 1)
        self.transfer_to[self.transfer_day >= self.exit] = -1
        self.transfer_day[self.transfer_to < 0] = NEVER
        self.adm, self.ae = adm, ae
        tp, td, tr_ = (np.concatenate(x) for x in zip(*truth_parts, strict=True))
        self.truth = pa.table(
            {
                "nhs_number": self._nhs(tp),
                "as_of": pa.array(td.astype(np.int32), pa.date32()),
                "true_risk": tr_,
            }
        )

    def _length_of_stay(self, age: np.ndarray, n_def: np.ndarray) -> np.ndarray:
        rng, L = self.rng, P.LENGTH_OF_STAY
        zero = rng.random(age.size) < np.clip(
            L.zero_share - L.zero_share_per_year * age, L.zero_share_min, L.zero_share
        )
        mu = np.log(L.median) + L.age_slope * np.clip(age - L.age_knee, 0, None) + L.per_deficit * n_def
        los = np.ceil(np.exp(mu + L.sd * rng.standard_normal(age.size)))
        return np.where(zero, 0, np.minimum(los, L.max_days)).astype(np.int64)

    # ------------------------------------------------------------------ tables
    def run(self) -> ChunkResult:
        self._people()
        self._conditions()
        self._medicines()
        self._simulate()
        return self._tables(self._gp_events, self._sus_op)

    def _tables(self, gp_events, sus_op) -> ChunkResult:
        """Every contract table of the chunk, in a fixed order (the random streams depend on
        it), with the structure's own GP events and outpatients (``sus_op(elective_days)``)."""
        tables = {
            "gp_registrations": self._registrations(),
            "gp_events": gp_events(),
            "gp_medications": self._gp_medications(),
            "deaths": self._deaths(),
            "opt_outs": self._opt_outs(),
        }
        tables["sus_apc"], elective_days = self._sus_apc()
        tables["sus_ecds"] = self._sus_ecds()
        tables["sus_op"] = sus_op(elective_days)
        for name, tbl in tables.items():
            tables[name] = tbl.cast(arrow_schema(TABLES[name]))
        return ChunkResult(tables, self.truth)

    def _nhs(self, person: np.ndarray) -> pa.Array:
        return self.nhs_arrow.take(pa.array(np.asarray(person, dtype=np.int64)))

    def _date(self, days: np.ndarray) -> pa.Array:
        days = np.asarray(days, dtype=np.int64)
        return pa.array(days.astype(np.int32), pa.date32(), mask=days >= NEVER)

    def _last_day(self, person: np.ndarray) -> np.ndarray:
        """First day nothing more is recorded for a person: left, died, or the extract date."""
        return np.minimum(np.minimum(self.exit[person], self.death[person] + 1), self.o.end)

    def _registrations(self) -> pa.Table:
        o = self.o
        people = np.arange(self.m)
        moved = self.transfer_to >= 0
        end_first = np.where(moved, self.transfer_day - 1, self.exit - 1)
        end_first = np.where(end_first >= o.end, NEVER, end_first)
        p2 = people[moved]
        end_second = np.where(self.exit[p2] - 1 >= o.end, NEVER, self.exit[p2] - 1)
        person = np.concatenate([people, p2])
        practice = np.concatenate([self.practice, self.transfer_to[p2]])
        start = np.concatenate([self.reg_start, self.transfer_day[p2]])
        end = np.concatenate([end_first, end_second])
        lsoa = self.r.lsoa_codes[self.lsoa[person]].astype(object)
        lsoa[self.rng.random(person.size) < 0.01] = None
        return pa.table(
            {
                "nhs_number": self._nhs(person),
                "practice_code": self.r.practice_codes[practice],
                "registration_start": self._date(start),
                "registration_end": self._date(end),
                "date_of_birth": self._date(self.dob[person]),
                "sex": self.sex[person].astype(str),
                "ethnic_category": pa.array(self.ethnic[person], pa.string()),
                "lsoa_code": pa.array(lsoa, pa.string()),
            }
        )

    def _gp_events(self) -> pa.Table:
        o, rng, m = self.o, self.rng, self.m
        persons, days, codes, values = [], [], [], []

        def add(mask: np.ndarray, day: np.ndarray, pool: np.ndarray, value: np.ndarray | None = None) -> None:
            idx = np.flatnonzero(mask)
            persons.append(idx)
            days.append(day[idx])
            codes.append(pool[rng.integers(0, pool.size, idx.size)])
            values.append(np.full(idx.size, np.nan) if value is None else value[idx])

        last = self._last_day(np.arange(m))
        for i in range(len(P.CONDITIONS)):
            add(self.onset[:, i] < last, self.onset[:, i], self.codes.condition[i])
            if self.codes.resolved[i] is not None:
                add(self.resolved[:, i] < last, self.resolved[:, i], self.codes.resolved[i])
        for j in range(len(P.EFI_DEFICITS)):
            add(self.deficit[:, j] < last, self.deficit[:, j], self.codes.deficit[j])
        add(self.carehome < last, self.carehome, self.codes.carehome)
        # Smoking records: current smokers first recorded at smoke_first; ex-smokers once.
        add(self.smoke_first < last, self.smoke_first, self.codes.current_smoker)
        lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(16 * YEAR))
        ex_day = lo + (rng.random(m) * np.maximum(last - lo, 1)).astype(np.int64)
        add((self.smoking == 1) & (ex_day < last), ex_day, self.codes.ex_smoker)
        # BMI values, recorded for adults about every three years.
        adult_lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(18 * YEAR))
        span = np.clip(last - adult_lo, 0, None)
        n_bmi = rng.poisson(span / YEAR * 0.35)
        bp = np.repeat(np.arange(m), n_bmi)
        bday = adult_lo[bp] + (rng.random(bp.size) * span[bp]).astype(np.int64)
        bmi_mean = 27.0 + 2.0 * (self.dep01 - 0.5) + 0.8 * self.latent
        bval = np.round(np.clip(bmi_mean[bp] + 4.5 * rng.standard_normal(bp.size), 14, 60), 1)
        persons.append(bp)
        days.append(bday)
        codes.append(self.codes.bmi[rng.integers(0, self.codes.bmi.size, bp.size)])
        values.append(bval)
        person = np.concatenate(persons)
        day = np.concatenate(days)
        keep = (day >= self.dob[person]) & (day < o.end)
        tbl = pa.table(
            {
                "nhs_number": self._nhs(person[keep]),
                "event_date": self._date(day[keep]),
                "snomed_code": np.concatenate(codes)[keep],
                "value": pa.array(np.concatenate(values)[keep], pa.float64(), from_pandas=True),
            }
        )
        return _drop_duplicates(tbl)

    def _gp_medications(self) -> pa.Table:
        keep = self.med_day < self._last_day(self.med_person)
        keep &= self.med_day >= np.maximum(self.entry, self.o.start)[self.med_person]
        person, drug, day, qty = self.med_person[keep], self.med_drug[keep], self.med_day[keep], self.med_qty[keep]
        # At most one item of a medicine per person per day (keeps rows distinct).
        key = (person * 1024 + drug) * 65536 + (day - self.o.start + 1024)
        key, first = np.unique(key, return_index=True)  # sorted by person, drug, day
        person, drug, day, qty, acute = person[first], drug[first], day[first], qty[first], self.med_acute[keep][first]
        unit = self.drugs.item_cost[drug]
        cost = np.round(unit * np.where(acute, 1.0, qty / 28) * self.rng.uniform(0.85, 1.15, person.size), 2)
        return pa.table(
            {
                "nhs_number": self._nhs(person),
                "issue_date": self._date(day),
                "bnf_code": self.drugs.codes_arrow.take(pa.array(drug)),
                "dmd_code": pa.nulls(person.size, pa.string()),
                "quantity": qty,
                "actual_cost": cost,
            }
        )

    def _deaths(self) -> pa.Table:
        dead = np.flatnonzero(self.death < self.o.end)
        cause = np.full(dead.size, "J189", dtype=object)
        for name, code in (
            ("stroke", "I64X"),
            ("chd", "I219"),
            ("copd", "J449"),
            ("dementia", "F03X"),
            ("hf", "I500"),
            ("cancer", "C349"),
        ):
            has = self.onset[dead, P.CONDITION_INDEX[name]] <= self.death[dead]
            cause[has] = code
        return pa.table(
            {
                "nhs_number": self._nhs(dead),
                "date_of_death": self._date(self.death[dead]),
                "underlying_cause": cause.astype(str),
            }
        )

    def _opt_outs(self) -> pa.Table:
        rng, m, o = self.rng, self.m, self.o
        draw = rng.random(m)
        both = draw < P.OPT_OUT_BOTH
        type1 = both | ((draw >= P.OPT_OUT_BOTH) & (draw < P.OPT_OUT_TYPE1))
        ndoo = both | ((draw >= P.OPT_OUT_TYPE1) & (draw < P.OPT_OUT_TYPE1 + P.OPT_OUT_NDOO - P.OPT_OUT_BOTH))
        p1, p2 = np.flatnonzero(type1), np.flatnonzero(ndoo)
        ndoo_start = day_number(dt.date(2018, 5, 25))
        d1 = np.maximum(self.reg_start[p1], day_number(dt.date(2000, 1, 1)))
        d1 = d1 + (rng.random(p1.size) * np.maximum(o.end - d1, 1)).astype(np.int64)
        d2 = ndoo_start + (rng.random(p2.size) * (o.end - ndoo_start)).astype(np.int64)
        person = np.concatenate([p1, p2])
        return pa.table(
            {
                "nhs_number": self._nhs(person),
                "opt_out_type": np.array(["type1"] * p1.size + ["ndoo"] * p2.size, dtype=object).astype(str),
                "recorded_date": self._date(np.minimum(np.concatenate([d1, d2]), o.end - 1)),
            }
        )

    def _provider(self, person: np.ndarray) -> np.ndarray:
        main = self.practice[person] % self.r.provider_codes.size
        other = self.rng.integers(0, self.r.provider_codes.size, person.size)
        return self.r.provider_codes[np.where(self.rng.random(person.size) < 0.85, main, other)]

    def _sus_apc(self) -> tuple[pa.Table, tuple[np.ndarray, np.ndarray]]:
        o, rng = self.o, self.rng
        person = self.adm.get("person")
        day = self.adm.get("day")
        dis = self.adm.get("dis")
        n = person.size
        age = (day - self.dob[person]) / YEAR
        active = (self.onset[person] < day[:, None]) & (self.resolved[person] >= day[:, None])
        # Primary diagnosis: a condition-specific reason half the time when the person has one.
        primary = np.where(
            age < 16,
            _pick(rng, P.EMERGENCY_DIAGNOSES_CHILD, n),
            np.where(age >= 75, _pick(rng, P.EMERGENCY_DIAGNOSES_OLDER, n), _pick(rng, P.EMERGENCY_DIAGNOSES_ADULT, n)),
        ).astype(object)
        secondary = [[] for _ in range(n)]
        for i, c in enumerate(P.CONDITIONS):
            has = active[:, i]
            use = has & (rng.random(n) < 0.5 * c.log_hazard + 0.1)
            primary[use] = _pick(rng, c.icd10_emergency, int(use.sum()))
            for r in np.flatnonzero(has):
                secondary[r].append(c.icd10_secondary[rng.integers(0, len(c.icd10_secondary))])
        n_def = (self.deficit[person] < day[:, None]).sum(1)
        for r in np.flatnonzero(n_def >= 3):
            secondary[r].append(P.FRAILTY_SECONDARY[rng.integers(0, len(P.FRAILTY_SECONDARY))])
        via_ae = rng.random(n) < P.VIA_AE_SHARE
        method = np.where(
            via_ae,
            "21",
            _pick(rng, ("22", "23", "24", "28", "2A", "2B", "2D"), n, p=(0.55, 0.05, 0.1, 0.15, 0.05, 0.05, 0.05)),
        )
        self.adm_via_ae = (person[via_ae], day[via_ae])
        died_here = (self.death[person] == dis) & (dis < o.end)
        dest = np.where(died_here, "79", np.where(self.carehome[person] < day, "54", "19")).astype(object)
        spells = {
            "person": person,
            "admission": day,
            "discharge": dis,
            "method": method,
            "classification": np.full(n, "1"),
            "primary": primary.astype(str),
            "secondary": np.array([";".join(s) if s else None for s in secondary], dtype=object),
            "procedure": np.full(n, None, dtype=object),
            "destination": dest,
            "cost": np.round(1400 + 420 * (dis - day) * rng.uniform(0.7, 1.3, n), 2),
            "tfc": np.where(age < 16, "420", np.where(age >= 75, "430", "300")).astype(object),
        }
        elective = self._elective_spells()
        merged = {k: np.concatenate([spells[k], elective[k]]) for k in spells}
        table = self._episodes(merged)
        return table, (elective["person"], elective["admission"])

    def _elective_spells(self) -> dict[str, np.ndarray]:
        o, rng, m = self.o, self.rng, self.m
        lo = np.maximum(self.entry, o.start)
        last = self._last_day(np.arange(m))
        span = np.clip(last - lo, 0, None)
        age_now = (o.end - self.dob) / YEAR
        rate = P.ELECTIVE_PER_PERSON * np.interp(age_now, [0, 18, 40, 60, 75, 90], [0.3, 0.4, 0.8, 1.4, 2.0, 1.4])
        k = rng.poisson(rate * span / YEAR)
        person = np.repeat(np.arange(m), k)
        day = lo[person] + (rng.random(person.size) * span[person]).astype(np.int64)
        age = (day - self.dob[person]) / YEAR
        proc = np.array(P.ELECTIVE_PROCEDURES, dtype=object)
        w = np.array([x[3] for x in P.ELECTIVE_PROCEDURES], dtype=float)
        pick = rng.choice(len(proc), size=person.size, p=w / w.sum())
        bad = (age < proc[pick, 4].astype(float)) | ((proc[pick, 2] == "502") & (self.sex[person] != "2"))
        pick[bad] = 4  # colonoscopy instead
        # Maternity: women 18-44.
        mp = np.flatnonzero((self.sex == "2") & (age_now > 18) & (age_now < 46))
        mk = rng.random(mp.size) < 0.05 * span[mp] / YEAR
        mp = mp[mk]
        mday = lo[mp] + (rng.random(mp.size) * span[mp]).astype(np.int64)
        day_case = rng.random(person.size) < 0.75
        los = np.where(day_case, 0, rng.integers(1, 6, person.size))
        mlos = rng.integers(0, 4, mp.size)
        n, nm = person.size, mp.size
        return {
            "person": np.concatenate([person, mp]),
            "admission": np.concatenate([day, mday]),
            "discharge": np.concatenate([day + los, mday + mlos]),
            "method": np.concatenate([_pick(rng, ("11", "12", "13"), n, p=(0.6, 0.3, 0.1)), np.full(nm, "31")]),
            "classification": np.concatenate([np.where(day_case, "2", "1"), np.full(nm, "1")]),
            "primary": np.concatenate([proc[pick, 0].astype(str), np.full(nm, "O800")]),
            "secondary": np.full(n + nm, None, dtype=object),
            "procedure": np.concatenate([proc[pick, 1], np.full(nm, None, dtype=object)]),
            "destination": np.full(n + nm, "19", dtype=object),
            "cost": np.round(
                np.concatenate(
                    [np.where(day_case, 950, 4200) * rng.uniform(0.7, 1.3, n), 2600 * rng.uniform(0.8, 1.2, nm)]
                ),
                2,
            ),
            "tfc": np.concatenate([proc[pick, 2], np.full(nm, "501", dtype=object)]),
        }

    def _episodes(self, s: dict[str, np.ndarray]) -> pa.Table:
        """Split spells into consultant episodes: longer emergency stays often change consultant."""
        o, rng = self.o, self.rng
        n = s["person"].size
        los = s["discharge"] - s["admission"]
        emergency = np.char.startswith(s["method"].astype(str), "2")
        n_ep = 1 + ((los >= 3) & emergency & (rng.random(n) < 0.28)) + ((los >= 7) & emergency & (rng.random(n) < 0.08))
        rep = np.repeat(np.arange(n), n_ep)
        ep = np.arange(rep.size) - np.repeat(np.cumsum(n_ep) - n_ep, n_ep)
        cuts = np.floor(los[rep] * ep / n_ep[rep]).astype(np.int64)
        ep_start = s["admission"][rep] + cuts
        nxt = np.floor(los[rep] * (ep + 1) / n_ep[rep]).astype(np.int64)
        ep_end = s["admission"][rep] + nxt
        is_last = ep == n_ep[rep] - 1
        discharge = s["discharge"][rep]
        open_spell = discharge >= o.end
        spell_no = self.spell_offset + np.arange(n)
        second_tfc = _pick(rng, ("320", "340", "430", "300", "100"), rep.size)
        tfc = np.where(ep == 0, s["tfc"][rep], second_tfc)
        later = ep > 0
        primary = s["primary"][rep].astype(object)
        secondary = s["secondary"][rep]
        cost = s["cost"][rep] / n_ep[rep]
        practice = np.where(
            (self.transfer_to[s["person"][rep]] >= 0) & (s["admission"][rep] >= self.transfer_day[s["person"][rep]]),
            self.transfer_to[s["person"][rep]],
            self.practice[s["person"][rep]],
        )
        keep = s["admission"][rep] < o.end
        keep &= ep_start < o.end
        ep_end = np.where(is_last, discharge, ep_end)
        ep_end = np.where(ep_end >= o.end, NEVER, ep_end)
        discharge = np.where(open_spell, NEVER, discharge)
        del later
        dest = np.where(is_last & ~open_spell, s["destination"][rep], None)
        cols = {
            "nhs_number": self._nhs(s["person"][rep]),
            "spell_id": np.array([f"S{x:09X}" for x in spell_no[rep]]),
            "episode_number": (ep + 1).astype(np.int64),
            "provider_code": self._provider(s["person"][rep]),
            "admission_date": self._date(s["admission"][rep]),
            "discharge_date": self._date(discharge),
            "episode_start": self._date(ep_start),
            "episode_end": self._date(ep_end),
            "admission_method": s["method"][rep].astype(str),
            "patient_classification": s["classification"][rep].astype(str),
            "treatment_function_code": tfc.astype(str),
            "primary_diagnosis": primary.astype(str),
            "secondary_diagnoses": pa.array(secondary, pa.string()),
            "primary_procedure": pa.array(s["procedure"][rep], pa.string()),
            "discharge_destination": pa.array(dest, pa.string()),
            "cost": np.round(cost, 2),
            "gp_practice_code": self.r.practice_codes[practice],
        }
        tbl = pa.table(cols).filter(pa.array(keep))
        order = np.lexsort((tbl["episode_number"].to_numpy(), tbl["spell_id"].to_numpy(zero_copy_only=False)))
        return tbl.take(pa.array(order))

    def _sus_ecds(self) -> pa.Table:
        rng = self.rng
        ap, ad = self.adm_via_ae
        np_, nd = self.ae.get("person"), self.ae.get("day")
        keep = nd < self._last_day(np_)
        np_, nd = np_[keep], nd[keep]
        person = np.concatenate([ap, np_])
        day = np.concatenate([ad, nd])
        admitted = np.concatenate([np.ones(ap.size, bool), np.zeros(np_.size, bool)])
        n = person.size
        age = (day - self.dob[person]) / YEAR
        amb_p = np.where(admitted, 0.55, np.interp(age, [0, 40, 75, 100], [0.05, 0.1, 0.35, 0.5]))
        ambulance = rng.random(n) < amb_p
        dept = np.where(admitted, "01", _pick(rng, ("01", "03", "02", "04"), n, p=(0.6, 0.33, 0.04, 0.03)))
        complaint = np.where(rng.random(n) < 0.7, _pick(rng, P.AE_COMPLAINTS, n), None)
        falls = (age >= 65) & (rng.random(n) < 0.25)
        complaint = np.where(falls, self.codes.falls[rng.integers(0, self.codes.falls.size, n)], complaint)
        cost = np.round(np.where(dept == "03", 90, np.where(admitted, 420, 260)) * rng.uniform(0.8, 1.2, n), 2)
        order = np.lexsort((day, person))
        return _drop_duplicates(
            pa.table(
                {
                    "nhs_number": self._nhs(person[order]),
                    "arrival_date": self._date(day[order]),
                    "provider_code": self._provider(person[order]),
                    "department_type": dept[order].astype(str),
                    "ambulance_arrival": ambulance[order],
                    "chief_complaint": pa.array(complaint[order], pa.string()),
                    "diagnosis": pa.nulls(n, pa.string()),
                    "admitted": admitted[order],
                    "cost": cost[order],
                }
            )
        )

    def _sus_op(self, elective: tuple[np.ndarray, np.ndarray]) -> pa.Table:
        o, rng, m = self.o, self.rng, self.m
        lo = np.maximum(self.entry, o.start)
        last = self._last_day(np.arange(m))
        span = np.clip(last - lo, 0, None)
        age_now = (o.end - self.dob) / YEAR
        n_cond = (self.onset < o.end).sum(1)
        rate = np.interp(age_now, [0, 18, 40, 65, 80, 100], [0.6, 0.6, 1.0, 1.8, 2.4, 2.0]) * (1 + 0.25 * n_cond)
        adm_p, adm_d = self.adm.get("person"), self.adm.get("day")
        follow = np.concatenate([adm_p, elective[0]])
        follow_d = np.concatenate([adm_d, elective[1]])
        target_total = 1.08 * P.OP_PER_PERSON * span.sum() / YEAR
        rate *= max(target_total - follow.size, 0) / max((rate * span / YEAR).sum(), 1e-9)
        k = rng.poisson(rate * span / YEAR)
        person = np.repeat(np.arange(m), k)
        day = lo[person] + (rng.random(person.size) * span[person]).astype(np.int64)
        fday = follow_d + rng.integers(14, 90, follow.size)
        person = np.concatenate([person, follow])
        day = np.concatenate([day, fday])
        keep = day < last[person]
        person, day = person[keep], day[keep]
        n = person.size
        age = (day - self.dob[person]) / YEAR
        tfc = _pick(rng, P.OP_GENERAL_TFC, n).astype(object)
        for i, c in enumerate(P.CONDITIONS):
            has = (self.onset[person, i] < day) & (rng.random(n) < 0.5)
            if c.op_tfc:
                tfc[has] = _pick(rng, c.op_tfc, int(has.sum()))
        tfc[age < 16] = P.PAEDIATRIC_TFC
        first = _pick(rng, ("1", "2", "3", "4"), n, p=(0.33, 0.52, 0.05, 0.10))
        dna_p = 1.25 * P.OP_DNA_SHARE * (0.6 + 0.8 * self.dep01[person]) * np.where((age > 16) & (age < 35), 1.4, 0.85)
        draw = rng.random(n)
        status = np.where(
            draw < dna_p,
            "3",
            np.where(
                draw < dna_p + 0.04,
                "2",
                np.where(
                    draw < dna_p + 0.09,
                    "4",
                    np.where(draw < dna_p + 0.095, "7", _pick(rng, ("5", "6"), n, p=(0.9, 0.1))),
                ),
            ),
        )
        return self._op_table(rng, person, day, tfc, first, status, (165, 110))

    def _op_table(self, rng, person, day, tfc, first, status, tariff: tuple[float, float]) -> pa.Table:
        """The ``sus_op`` rows of appointments already drawn: costs (``tariff``: first and
        follow-up attendances, pounds, ±20%) and referral sources drawn here, sorted by person."""
        n = person.size
        attended = (status == "5") | (status == "6")
        new = np.isin(first, ("1", "3"))
        cost = np.where(attended, np.where(new, tariff[0], tariff[1]) * rng.uniform(0.8, 1.2, n), 0)
        referral = np.where(new, _pick(rng, ("03", "05", "11"), n, p=(0.7, 0.2, 0.1)), None)
        order = np.lexsort((day, person))
        return _drop_duplicates(
            pa.table(
                {
                    "nhs_number": self._nhs(person[order]),
                    "appointment_date": self._date(day[order]),
                    "provider_code": self._provider(person[order]),
                    "treatment_function_code": tfc[order].astype(str),
                    "first_attendance": first[order],
                    "attendance_status": status[order],
                    "referral_source": pa.array(referral[order], pa.string()),
                    "cost": np.round(cost[order], 2),
                }
            )
        )


def _pick(rng: np.random.Generator, values: tuple[str, ...], n: int, p: tuple[float, ...] | None = None) -> np.ndarray:
    arr = np.array(values, dtype=object)
    if p is None:
        return arr[rng.integers(0, arr.size, n)]
    return arr[rng.choice(arr.size, size=n, p=np.array(p) / np.sum(p))]


def _drop_duplicates(tbl: pa.Table) -> pa.Table:
    """Remove exact duplicate rows (chance collisions of random dates), keeping order."""
    if tbl.num_rows == 0:
        return tbl
    keyed = tbl.append_column("_i", pa.array(np.arange(tbl.num_rows)))
    firsts = keyed.group_by(tbl.column_names, use_threads=False).aggregate([("_i", "min")])
    keep = np.sort(firsts["_i_min"].to_numpy())
    return tbl.take(pa.array(keep)) if keep.size < tbl.num_rows else tbl
