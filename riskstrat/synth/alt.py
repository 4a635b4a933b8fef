"""The alternative synthetic structure (``riskstrat synth --structure alt``).

A second generative model of health and emergency admission, parameterised independently
of the default (``riskstrat/synth/generator/``), so that a model's discrimination can be
judged on more than one structure. It shares only plumbing with the default: the region,
people and registrations, NHS numbers, code pools, the hospital-table writers and fault
injection. What differs is the model of health and risk:

- two **latent traits** never written anywhere: an urgent-care propensity ``U ~ N(0, 1)``
  (A&E use, emergency admissions, early readmission, missed outpatient appointments) and a
  **frailty** that drifts up with age at a person-specific rate and jumps after every
  emergency admission; frailty shows only through eFI deficit codes (noisy thresholds,
  recording lags, practice coding habits), falls, care home codes, weight loss and
  hospital use;
- **medicine x condition interactions** (NSAID with CKD or heart failure, the triple
  whammy, anticoagulants at 85+, opioid dose and duration, antiplatelets or
  anticoagulants without a PPI, falls-risk medicines in older people);
- conditions from a **lifetime-risk model** (log-normal onset ages, sub-additive effects),
  deprivation concentrated in the most deprived deciles, smoking with quit dates, BMI.

Time runs in **monthly steps**. Within the year ``[D, D + 365)`` the hazard of the first
emergency admission is piecewise constant by month and a deterministic function of the
state at ``D`` (traits, their drift, conditions and medicines active at ``D`` with their
known stop dates, the time since the last discharge); deaths and moves out of the region
compete with it the same way. New diagnoses, new medicines and frailty jumps count from
the next as-of date, or only after the first admission. So the probability of at least
one emergency admission is exact::

    P = sum_j  H_j / (H_j + X_j) * (1 - exp(-(H_j + X_j))) * exp(-sum_{i<j} (H_i + X_i))

with ``H_j`` and ``X_j`` the admission and exit hazards integrated over month ``j``; and
the first admission of every year is drawn from exactly that process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.special import expit, ndtr

from riskstrat.synth import alt_params as A
from riskstrat.synth import params as P
from riskstrat.synth.generator import (
    NEVER,
    YEAR,
    ChunkResult,
    Region,
    SynthOptions,
    _Chunk,
    _drop_duplicates,
    _Events,
    _pick,
)

__all__ = [
    "RiskState",
    "ae_log_rate",
    "death_log_hazard",
    "dna_log_odds",
    "first_admission_probability",
    "log_hazard",
    "simulate_alt_chunk",
]

if tuple(c.name for c in A.CONDITIONS) != tuple(c.name for c in P.CONDITIONS):  # pragma: no cover
    raise AssertionError("alt_params.CONDITIONS must follow params.CONDITIONS")

_LTC_EFFECT = np.array([c.admission for c in A.CONDITIONS])
_CI = A.CONDITION_INDEX
_NO_DISCHARGE = np.int64(-(10**7))

# Medicine classes that enter the risk function.
OTHER, NSAID, ACEI_ARB, DIURETIC, ANTICOAGULANT, ANTIPLATELET, PPI, INSULIN, OPIOID, FALLS_RISK = range(10)
# Oral morphine equivalent (mg) per unit of each opioid presentation (UK Faculty of Pain
# Medicine conversion factors: codeine 0.15, tramadol 0.1, oxycodone 1.5, morphine 1).
MME_PER_UNIT = {
    "0407010F0AAADAD": 4.5,
    "0407010F0AAAHAH": 4.5,
    "040702040AAAAAA": 5.0,
    "040702040AAACAC": 10.0,
    "0407020ADAAACAC": 7.5,
    "0407020ADAAAFAF": 15.0,
    "0407020C0AAADAD": 2.25,
    "0407020C0AAAEAE": 4.5,
    "0407020Q0AAAKAK": 10.0,
    "0407020Q0AACNCN": 2.0,  # per ml of 10mg/5ml solution
}


@dataclass
class RiskState:
    """What determines a person's hazards at one moment (arrays of one value per person).

    ``ltc`` is (n, 13) in the order of ``params.CONDITIONS``; ``smoking`` 0 never, 1 ex,
    2 current; ``days_since_discharge`` is +inf without an emergency discharge.
    """

    age: np.ndarray
    male: np.ndarray
    dep: np.ndarray  # 0 least … 1 most deprived
    propensity: np.ndarray
    frailty: np.ndarray
    ltc: np.ndarray
    smoking: np.ndarray
    bmi: np.ndarray
    days_since_discharge: np.ndarray
    nsaid: np.ndarray
    acei_arb: np.ndarray
    diuretic: np.ndarray
    anticoagulant: np.ndarray
    antiplatelet: np.ndarray
    ppi: np.ndarray
    insulin: np.ndarray
    opioid_mme: np.ndarray  # oral morphine equivalent, mg a day
    opioid_months: np.ndarray  # months of continuous opioid use
    falls_risk_medicines: np.ndarray  # count

    @classmethod
    def baseline(cls, n: int, age: float = 70.0) -> RiskState:
        """``n`` identical people of ``age``: no conditions, medicines or history (for tests)."""
        z, f = np.zeros(n), np.zeros(n, bool)
        return cls(
            np.full(n, age), f.copy(), z.copy(), z.copy(), np.full(n, 0.45), np.zeros((n, len(A.CONDITIONS)), bool),
            np.zeros(n, np.int64), np.full(n, 26.0), np.full(n, np.inf), f.copy(), f.copy(), f.copy(), f.copy(),
            f.copy(), f.copy(), f.copy(), z.copy(), z.copy(), np.zeros(n, np.int64),
        )  # fmt: skip


def log_hazard(s: RiskState) -> np.ndarray:
    """Log hazard of an emergency admission, without the yearly intercept."""
    a, ltc = s.age, s.ltc
    old = np.clip((a - 50) / 20, 0, 1)
    eta = np.interp(a, A.AGE_KNOTS, A.AGE_LOG_HAZARD)
    eta = eta + A.MALE_OLDER * s.male * old + A.FEMALE_CHILDBEARING * (~s.male & (a >= 16) & (a < 45))
    eta = eta + A.DEPRIVATION * s.dep**1.5 + A.PROPENSITY_ADMISSION * s.propensity
    eta = eta + A.FRAILTY * np.log1p(s.frailty)
    eta = eta + A.LTC_CEILING * -np.expm1(-(ltc @ _LTC_EFFECT) / A.LTC_CEILING)
    ckd, hf = ltc[:, _CI["ckd"]], ltc[:, _CI["hf"]]
    current = s.smoking == 2
    eta = (
        eta
        + A.COPD_SMOKER * (ltc[:, _CI["copd"]] & current)
        + A.DIABETES_INSULIN * (ltc[:, _CI["diabetes"]] & s.insulin)
    )
    eta = eta + A.ASTHMA_CHILD * (ltc[:, _CI["asthma"]] & (a < 18))
    eta = eta + A.SMOKER_CURRENT * current + A.SMOKER_EX * (s.smoking == 1)
    bmi = np.nan_to_num(s.bmi, nan=25.0)
    eta = eta + A.UNDERWEIGHT * np.clip((20 - bmi) / 4, 0, 2) + A.OBESE * np.clip(bmi - 32, 0, 15)
    eta = eta + A.RECENT_DISCHARGE * np.exp(-np.maximum(s.days_since_discharge, 0) / A.RECENT_DECAY_DAYS)
    nsaid = s.nsaid
    eta = eta + A.NSAID_OLDER * (nsaid & (a >= 65)) + A.NSAID_CKD * (nsaid & ckd) + A.NSAID_HF * (nsaid & hf)
    eta = eta + A.TRIPLE_WHAMMY * (nsaid & s.acei_arb & s.diuretic)
    eta = eta + A.ANTICOAGULANT_85 * (s.anticoagulant & (a >= 85))
    unprotected = (s.antiplatelet | s.anticoagulant) & ~s.ppi
    eta = eta + A.NO_GASTROPROTECTION * unprotected * np.where(a >= 65, 1.0, 0.4)
    on_opioid = s.opioid_mme > 0
    eta = eta + on_opioid * (
        A.OPIOID_DOSE * np.log1p(s.opioid_mme / 30) + A.OPIOID_DURATION * -np.expm1(-s.opioid_months / 6)
    )
    eta = eta + A.FALLS_RISK_MEDICINE * np.minimum(s.falls_risk_medicines, 3) * np.clip((a - 60) / 20, 0, 1.5)
    return eta


def death_log_hazard(s: RiskState) -> np.ndarray:
    """Log hazard of death (without the yearly intercept): Gompertz, frailty, conditions."""
    eta = A.DEATH_AGE * (s.age - 80) + A.DEATH_INFANT * (s.age < 1) + A.DEATH_FRAILTY * np.log1p(s.frailty)
    eta = eta + A.DEATH_PROPENSITY * s.propensity
    for name, beta in A.DEATH_LTC.items():
        eta = eta + beta * s.ltc[:, _CI[name]]
    return eta


def ae_log_rate(s: RiskState) -> np.ndarray:
    """Log rate of A&E attendances not ending in admission (without the yearly scale)."""
    base = np.interp(s.age, [0, 4, 12, 18, 25, 45, 65, 80, 100], [0.7, 0.4, 0.3, 0.55, 0.5, 0.35, 0.35, 0.55, 0.75])
    return (
        np.log(base)
        + A.PROPENSITY_AE * s.propensity
        + 0.35 * s.dep
        + 0.35 * np.log1p(s.frailty)
        + 0.08 * s.ltc.sum(1)
        + 0.4 * np.exp(-np.maximum(s.days_since_discharge, 0) / 30)
    )


def dna_log_odds(propensity: np.ndarray, dep: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Log odds of not attending an outpatient appointment (without the intercept)."""
    return A.PROPENSITY_DNA * propensity + 0.6 * dep + 0.45 * ((age > 16) & (age < 35)) - 0.3 * (age >= 65)


def first_admission_probability(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(first event is an admission) for monthly integrated hazards ``h`` (admission) and
    ``x`` (death or moving away), arrays of shape (n, months): exact for piecewise-constant
    hazards."""
    t = h + x
    before = np.exp(-(np.cumsum(t, axis=1) - t))
    share = np.divide(h, t, out=np.zeros_like(h), where=t > 0)
    return (share * -np.expm1(-t) * before).sum(1)


def _bisect(f, target: float, lo: float = -30.0, hi: float = 10.0, steps: int = 45) -> float:
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return (lo + hi) / 2


def _lifetime_probabilities() -> np.ndarray:
    """Lifetime probability of each condition so that prevalence on the pyramid meets its target."""
    ages = np.arange(0, 100) + 0.5
    w = np.repeat(P.AGE_BAND_PERCENT / 5, 5)
    adult_share = w[18:].sum() / w.sum()
    out = []
    for c, d in zip(A.CONDITIONS, P.CONDITIONS, strict=True):
        cdf = np.where(ages >= c.min_age, ndtr(np.log(ages / c.median_age) / c.sigma), 0.0)
        target = d.target * (adult_share if c.name == "depression" else 1.0) * A.SURVIVAL_LIFT.get(c.name, 1.1)
        out.append(min(0.95, target * w.sum() / (w * cdf).sum()))
    return np.array(out)


_LIFETIME = _lifetime_probabilities()


def simulate_alt_chunk(
    opts: SynthOptions, region: Region, nhs_numbers: np.ndarray, chunk: int, spell_offset: int
) -> ChunkResult:
    """Simulate one chunk of people with the alternative structure; returns contract tables."""
    return _AltChunk(opts, region, nhs_numbers, chunk, spell_offset).run()


class _AltChunk(_Chunk):
    """People, registrations and hospital-table writers from the default; health and risk its own."""

    def __init__(self, opts: SynthOptions, region: Region, nhs: np.ndarray, chunk: int, spell_offset: int):
        super().__init__(opts, region, nhs, chunk, spell_offset)
        self.rng = np.random.default_rng([opts.seed, 31_000 + chunk])

    def run(self) -> ChunkResult:
        self._people()
        self._traits()
        self._alt_conditions()
        self._alt_medicines()
        self._alt_simulate()
        self._frailty_records()
        return self._tables(self._alt_gp_events, self._alt_sus_op)

    # ------------------------------------------------------------------ traits
    def _traits(self) -> None:
        o, rng, m = self.o, self.rng, self.m
        self.propensity = rng.standard_normal(m)
        self.frailty_z = rng.standard_normal(m)
        self.f70 = A.FRAILTY_AT_70 * np.exp(
            A.FRAILTY_LOG_SD * self.frailty_z + A.FRAILTY_DEPRIVATION * (self.dep01 - 0.5)
        )
        age_end = (o.end - self.dob) / YEAR
        p_ever = (0.2 + 0.25 * np.clip((age_end - 20) / 50, 0, 1)) * (0.65 + 0.7 * self.dep01)
        p_ever *= np.where(self.male, 1.1, 0.9)
        ever = rng.random(m) < p_ever
        start_age = 14 + rng.gamma(2.0, 1.5, m)
        quit_age = start_age + rng.exponential(15, m)
        self.smoke_start = np.where(ever, self.dob + (start_age * YEAR).astype(np.int64), NEVER)
        self.smoke_quit = np.where(ever, self.dob + (quit_age * YEAR).astype(np.int64), NEVER)
        self.bmi_base = np.clip(
            27.0 + 1.8 * (self.dep01 - 0.5) + 0.5 * self.frailty_z + 4.6 * rng.standard_normal(m), 16, 55
        )
        p_pain = (0.04 + 0.3 * np.clip((age_end - 25) / 55, 0, 1)) * np.exp(0.3 * self.frailty_z + 0.3 * self.dep01)
        pain_age = 25 + rng.random(m) * np.maximum(age_end - 25, 0)
        self.pain_onset = np.where(
            (rng.random(m) < p_pain) & (age_end > 25), self.dob + (pain_age * YEAR).astype(np.int64), NEVER
        )
        coding = np.random.default_rng([o.seed, 31_777]).uniform(0.55, 0.95, self.r.practice_codes.shape[0])
        self.coding = coding[self.practice]

    def _smoking_at(self, t: np.ndarray) -> np.ndarray:
        return np.where(self.smoke_quit <= t, 1, np.where(self.smoke_start <= t, 2, 0))

    def _frailty_base(self, t, person: np.ndarray | slice = slice(None)) -> np.ndarray:
        age = (t - self.dob[person]) / YEAR
        return self.f70[person] * np.exp((age - 70) / A.FRAILTY_SCALE_YEARS)

    def _jump_part(self, t: float, jp: np.ndarray, jd: np.ndarray, js: np.ndarray) -> np.ndarray:
        before = jd < t
        if not before.any():
            return np.zeros(self.m)
        decay = np.exp(-(t - jd[before]) / A.JUMP_DECAY_DAYS)
        w = js[before] * (A.JUMP_PERSISTENT + (1 - A.JUMP_PERSISTENT) * decay)
        return np.bincount(jp[before], weights=w, minlength=self.m)

    def _bmi_at(self, t) -> np.ndarray:
        """True BMI (adults): the person's own level, falling with frailty past 0.8."""
        bmi = self.bmi_base - 3.0 * np.clip(self._frailty_base(t) - 0.8, 0, 3)
        return np.where((t - self.dob) / YEAR >= 18, bmi, np.nan)

    # ------------------------------------------------------------------ conditions
    def _alt_conditions(self) -> None:
        rng, m = self.rng, self.m
        n_c = len(A.CONDITIONS)
        self.onset = np.full((m, n_c), NEVER, dtype=np.int64)
        self.resolved = np.full((m, n_c), NEVER, dtype=np.int64)
        ever = (self.smoke_start < NEVER).astype(float)
        for i, (c, d) in enumerate(zip(A.CONDITIONS, P.CONDITIONS, strict=True)):
            lin = (
                c.frailty * self.frailty_z
                + c.deprivation * (self.dep01 - 0.5)
                + c.male * (self.male - 0.5)
                + c.smoking * ever
                + c.bmi * (self.bmi_base - 27) / 5
            )
            rel = np.exp(lin)
            life = np.minimum(0.95, _LIFETIME[i] * rel / rel.mean())
            has = rng.random(m) < life
            z = -0.35 * self.frailty_z + np.sqrt(1 - 0.35**2) * rng.standard_normal(m)
            age = np.maximum(c.median_age * np.exp(c.sigma * z), c.min_age)
            self.onset[:, i] = np.where(has, self.dob + (age * YEAR).astype(np.int64), NEVER)
            if d.resolved_cluster and c.name in A.RESOLVED_SHARE:
                res = has & (rng.random(m) < A.RESOLVED_SHARE[c.name])
                gap = (rng.uniform(1, 10, m) * YEAR).astype(np.int64)
                self.resolved[:, i] = np.where(res, self.onset[:, i] + gap, NEVER)
        self.coded = self.onset + rng.exponential(A.CODING_LAG_DAYS, (m, n_c)).astype(np.int64)
        # Deficits and care home from frailty alone (refined with jumps after the simulation).
        names = [name for name, _, _ in P.EFI_DEFICITS]
        theta = np.array([A.DEFICIT_THRESHOLD[n] for n in names])
        self.deficit_theta = theta * np.exp(A.DEFICIT_THRESHOLD_SD * rng.standard_normal((m, len(names))))
        dementia = self.onset[:, _CI["dementia"]] < NEVER
        care = A.CAREHOME_THRESHOLD * np.exp(0.3 * rng.standard_normal(m)) * np.where(dementia, 0.7, 1.0)
        self.care_theta = np.where(rng.random(m) < 0.55, care, np.inf)
        self.deficit = self._base_crossing(self.deficit_theta)
        self.carehome = self._base_crossing(self.care_theta[:, None])[:, 0]

    def _base_crossing(self, theta: np.ndarray) -> np.ndarray:
        """Day frailty (without jumps) first exceeds ``theta`` (n, k), from age 35."""
        with np.errstate(divide="ignore"):
            age = 70 + A.FRAILTY_SCALE_YEARS * np.log(theta / self.f70[:, None])
        age = np.maximum(age, 35)
        ok = np.isfinite(age) & (age < 130)
        return np.where(ok, self.dob[:, None] + (np.where(ok, age, 0) * YEAR).astype(np.int64), NEVER)

    # ------------------------------------------------------------------ medicines
    def _alt_medicines(self) -> None:
        o, rng, m, d = self.o, self.rng, self.m, self.drugs
        pools: dict[tuple[str, ...], np.ndarray] = {}
        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("p", "drug", "start", "stop", "units", "acute", "cls", "kind")
        }
        kinds: dict[str, int] = {}

        def pool(prefixes: tuple[str, ...]) -> np.ndarray:
            if prefixes not in pools:
                pools[prefixes] = np.flatnonzero([c.startswith(prefixes) for c in d.codes])
                assert pools[prefixes].size, prefixes
            return pools[prefixes]

        def add(mask, prefixes, start, stop, cls=OTHER, units=1.0, acute=False, kind=None):
            start = np.broadcast_to(start, (m,))
            stop = np.broadcast_to(stop, (m,))
            idx = np.flatnonzero(mask & (start < stop) & (start < o.end))
            cols["p"].append(idx)
            cols["drug"].append(rng.choice(pool(prefixes), size=idx.size))
            cols["start"].append(start[idx])
            cols["stop"].append(stop[idx])
            cols["units"].append(np.broadcast_to(units, (m,))[idx].astype(float))
            cols["acute"].append(np.full(idx.size, acute))
            cols["cls"].append(np.full(idx.size, cls))
            cols["kind"].append(np.full(idx.size, kinds.setdefault(kind or prefixes[0], len(kinds))))

        def lasting(start, mean_years):
            return start + (rng.exponential(mean_years, m) * YEAR).astype(np.int64)

        onset = {c.name: self.onset[:, i] for i, c in enumerate(A.CONDITIONS)}
        resolved = {c.name: self.resolved[:, i] for i, c in enumerate(A.CONDITIONS)}
        age_end = (o.end - self.dob) / YEAR

        def has(name):
            return onset[name] < o.end

        def after(name, mean_days=30.0):
            return onset[name] + rng.exponential(mean_days, m).astype(np.int64)

        def r():
            return rng.random(m)

        never = np.full(m, NEVER)
        acei, arb = ("0205051",), ("0205052",)
        statin = ("0212000",)
        # Hypertension: one RAS blocker (ACE inhibitor or ARB), calcium channel blocker, thiazide.
        u = r()
        s = after("hypertension", 60)
        add(has("hypertension") & (u < 0.45), acei, s, lasting(s, 14), ACEI_ARB, kind="ras")
        add(has("hypertension") & (u >= 0.45) & (u < 0.6), arb, s, lasting(s, 14), ACEI_ARB, kind="ras")
        add(has("hypertension") & (r() < 0.6), ("0206020",), after("hypertension", 200), never)
        add(has("hypertension") & (r() < 0.3), ("0202010",), after("hypertension", 300), never, DIURETIC)
        add(has("hypertension") & (r() < 0.06), ("0205040",), after("hypertension", 500), never)
        add(has("hypertension") & (r() < 0.35), statin, after("hypertension", 200), never, kind="statin")
        # Diabetes
        add(has("diabetes") & (r() < 0.85), ("0601022",), after("diabetes"), never)
        add(has("diabetes") & (r() < 0.25), ("0601021",), after("diabetes", 700), never)
        add(has("diabetes") & (r() < 0.3), ("0601023",), after("diabetes", 900), never)
        add(has("diabetes") & (r() < 0.12), ("060101",), after("diabetes", 1500), never, INSULIN, units=0.5)
        u = r()
        s = after("diabetes", 200)
        add(has("diabetes") & (u < 0.35), acei, s, never, ACEI_ARB, kind="ras")
        add(has("diabetes") & (u >= 0.35) & (u < 0.45), arb, s, never, ACEI_ARB, kind="ras")
        add(has("diabetes") & (r() < 0.7), statin, after("diabetes", 100), never, kind="statin")
        # Respiratory
        for name, p_rel, p_prev in (("asthma", 0.9, 0.55), ("copd", 0.95, 0.8)):
            stop = resolved[name]
            add(has(name) & (r() < p_rel), ("0301011",), after(name, 10), stop, kind="reliever")
            add(has(name) & (r() < p_prev), ("0301020", "0302000"), after(name, 90), stop, kind="preventer")
        # Mental health and dementia
        add(has("depression") & (r() < 0.75), ("0403030",), after("depression"), lasting(onset["depression"], 6))
        add(has("depression") & (r() < 0.08), ("0403040X0",), after("depression"), never, FALLS_RISK)
        add(has("smi") & (r() < 0.85), ("040201",), after("smi"), never, FALLS_RISK, kind="antipsychotic")
        add(has("smi") & (r() < 0.15), ("0402030",), after("smi", 300), never)
        add(has("dementia") & (r() < 0.6), ("0411000",), after("dementia", 60), never)
        s = after("dementia", 700)
        add(has("dementia") & (r() < 0.12), ("040201",), s, lasting(s, 1.5), FALLS_RISK, kind="antipsychotic")
        # Cardiovascular and renal
        u = r()
        s = after("ckd", 100)
        add(has("ckd") & (u < 0.3), acei, s, never, ACEI_ARB, kind="ras")
        add(has("ckd") & (u >= 0.3) & (u < 0.4), arb, s, never, ACEI_ARB, kind="ras")
        add(has("ckd") & (r() < 0.4), statin, after("ckd", 100), never, kind="statin")
        for name, p in (("chd", 0.85), ("stroke", 0.7)):
            add(has(name) & (r() < p), ("0209000",), after(name, 7), never, ANTIPLATELET, kind="antiplatelet")
            add(has(name) & (r() < 0.85), statin, after(name, 7), never, kind="statin")
        add(has("chd") & (r() < 0.5), ("0204000",), after("chd"), never, kind="bb")
        add(has("chd") & (r() < 0.35), ("0206010",), after("chd"), never)
        add(has("chd") & (r() < 0.35), acei, after("chd", 60), never, ACEI_ARB, kind="ras")
        add(has("stroke") & (r() < 0.1), ("0208020",), after("stroke", 14), never, ANTICOAGULANT, kind="anticoag")
        # Anticoagulation in AF is used less at the oldest ages in practice, but still widely.
        add(has("af") & (r() < 0.72), ("0208020",), after("af", 21), never, ANTICOAGULANT, kind="anticoag")
        add(has("af") & (r() < 0.55), ("0204000",), after("af"), never, kind="bb")
        add(has("af") & (r() < 0.08), ("0209000",), after("af"), never, ANTIPLATELET, kind="antiplatelet")
        add(has("hf") & (r() < 0.85), ("020202",), after("hf", 7), never, DIURETIC)
        add(has("hf") & (r() < 0.4), ("0202030",), after("hf", 120), never, DIURETIC)
        add(has("hf") & (r() < 0.7), ("0204000",), after("hf", 30), never, kind="bb")
        u = r()
        s = after("hf", 30)
        add(has("hf") & (u < 0.55), acei, s, never, ACEI_ARB, kind="ras")
        add(has("hf") & (u >= 0.55) & (u < 0.75), arb, s, never, ACEI_ARB, kind="ras")
        # Cancer: hormone treatment, strong opioids later on.
        add(has("cancer") & (r() < 0.25), ("0803041",), after("cancer", 60), lasting(onset["cancer"], 5))
        s = onset["cancer"] + (rng.exponential(2.0, m) * YEAR).astype(np.int64)
        strong = ("0407020AD", "0407020Q0")
        add(has("cancer") & (r() < 0.18), strong, s, lasting(s, 1.5), OPIOID, units=rng.uniform(2, 4, m), kind="opioid")
        # Chronic pain: paracetamol, NSAIDs (less with CKD or heart failure, or when old),
        # opioids (dose in units a day), amitriptyline and gabapentinoids.
        pain = self.pain_onset < o.end
        s = self.pain_onset + rng.exponential(60, m).astype(np.int64)
        add(pain & (r() < 0.5), ("0407010H0AAAM",), s, lasting(s, 6), units=rng.choice([4.0, 8.0], m))
        s = self.pain_onset + rng.exponential(120, m).astype(np.int64)
        renal = (onset["ckd"] < s) | (onset["hf"] < s)
        p_nsaid = 0.28 * np.where(renal, 0.45, 1.0) * np.where((s - self.dob) / YEAR > 75, 0.6, 1.0)
        on_nsaid = pain & (r() < p_nsaid)
        stop = lasting(s, 1.5)
        add(on_nsaid, ("100101",), s, stop, NSAID, units=rng.choice([2.0, 3.0], m), kind="nsaid")
        add(on_nsaid & (r() < 0.45), ("010305",), s, stop, PPI, kind="ppi")
        s = self.pain_onset + (rng.exponential(1.0, m) * YEAR).astype(np.int64)
        weak = ("0407010F0", "0407020C0", "040702040")
        use = pain & (r() < 0.3)
        strong_pain = r() < 0.25
        dur = s + (np.exp(np.log(0.7) + 1.2 * rng.standard_normal(m)) * YEAR).astype(np.int64)
        units_weak = rng.choice([2.0, 4.0, 6.0, 8.0], m, p=[0.25, 0.35, 0.2, 0.2])
        add(use & ~strong_pain, weak, s, dur, OPIOID, units=units_weak, kind="opioid")
        add(use & strong_pain, strong, s, dur, OPIOID, units=rng.uniform(2, 4, m), kind="opioid")
        add(pain & (r() < 0.2), ("0403010B0",), s, lasting(s, 2), FALLS_RISK)
        add(pain & (r() < 0.2), ("0408010AE", "0408010G0"), s, lasting(s, 2), FALLS_RISK, units=2.0)
        # Age-related regular medicines.
        age_at = lambda years: self.dob + int(years * YEAR)  # noqa: E731
        span = lambda: rng.integers(0, 9000, m)  # noqa: E731
        female = ~self.male
        add((age_end >= 50) & (r() < 0.28), ("010305",), age_at(50) + span(), never, PPI, kind="ppi")
        add((age_end >= 30) & (r() < 0.08), ("010305",), age_at(30) + span(), never, PPI, kind="ppi")
        add((age_end >= 70) & (r() < np.where(female, 0.28, 0.14)), ("0906040",), age_at(70) + span() // 3, never)
        add((age_end >= 18) & (r() < np.where(female, 0.07, 0.02)), ("0602010",), age_at(25) + span() * 2, never)
        add(female & (age_end >= 65) & (r() < 0.08), ("0606020",), age_at(65) + span() // 2, never)
        add(self.male & (age_end >= 50) & (r() < 0.04), ("1001040",), age_at(50) + span(), never)
        add((age_end >= 60) & (r() < 0.35), statin, age_at(60) + span() // 2, never, kind="statin")
        add((age_end >= 75) & (r() < 0.04), ("0403040X0",), age_at(75) + span() // 4, never, FALLS_RISK)
        s = age_at(18) + span() * 2
        add((age_end >= 18) & (r() < 0.1), ("0403030",), s, lasting(s, 4))
        add(r() < 0.007, ("0408010A0", "0408010H0", "0408010W0"), self.dob + span() // 2, never)
        # Acute courses: single issues on random days while registered in the period.
        lo = np.maximum(self.entry, o.start)
        years = np.clip(o.end - lo, 0, None) / YEAR
        copd_asthma = has("copd") | has("asthma")
        n_ltc = (self.onset < o.end).sum(1)
        child, adult = age_end < 12, age_end >= 16
        for prefixes, rate, cls, qty, per_day in (
            (("0501",), 0.7 + 0.4 * (age_end >= 65) + 0.8 * has("copd") + 0.15 * n_ltc, OTHER, (15.0, 21.0, 28.0), 3.0),
            (("100101",), adult * np.where(age_end < 80, 0.3, 0.1), NSAID, (21.0, 28.0, 42.0), 3.0),
            (weak, 0.15 * adult, OPIOID, (28.0, 56.0), 4.0),
            (("010305",), 0.25 * adult, PPI, (28.0, 56.0), 1.0),
            (("0603020",), 0.6 * copd_asthma, OTHER, (28.0, 40.0), 6.0),
            (("0407010H0AAAW",), 0.6 * child, OTHER, (100.0, 200.0), 20.0),
            (("0407010H0AAAM",), (0.8 + 0.4 * n_ltc) * adult, OTHER, (32.0, 100.0), 8.0),
        ):
            k = rng.poisson(rate * years)
            ap = np.repeat(np.arange(m), k)
            day = lo[ap] + (rng.random(ap.size) * (o.end - lo[ap])).astype(np.int64)
            q = rng.choice(np.array(qty), size=ap.size)
            cols["p"].append(ap)
            cols["drug"].append(rng.choice(pool(prefixes), size=ap.size))
            cols["start"].append(day)
            cols["stop"].append(day + np.ceil(q / per_day).astype(np.int64))
            cols["units"].append(q)  # the quantity of the single issue
            cols["acute"].append(np.ones(ap.size, bool))
            cols["cls"].append(np.full(ap.size, cls))
            cols["kind"].append(np.full(ap.size, -1))
        g = {k: np.concatenate(v) for k, v in cols.items()}
        # One regimen per person and kind of regular medicine (the earliest); acute items all kept.
        order = np.lexsort((g["start"], g["kind"], g["p"]))
        g = {k: v[order] for k, v in g.items()}
        keep = np.ones(g["p"].size, bool)
        same = (g["p"][1:] == g["p"][:-1]) & (g["kind"][1:] == g["kind"][:-1]) & (g["kind"][1:] >= 0)
        keep[1:] = ~same
        g = {k: v[keep] for k, v in g.items()}
        codes = d.codes[g["drug"]]
        solution = (codes == "0407020Q0AACNCN") & ~g["acute"]
        g["units"] = np.where(solution, g["units"] * 5, g["units"])  # ml a day of a 10mg/5ml solution
        mme = np.array([MME_PER_UNIT.get(c, 0.0) for c in codes])
        interval = np.where(g["acute"], 0, np.where(rng.random(g["p"].size) < 0.12, 56, 28))
        self.reg = {
            "person": g["p"],
            "drug": g["drug"],
            "start": g["start"],
            "stop": g["stop"],
            "cls": g["cls"],
            "mme": np.where(g["acute"], mme * 4.0, mme * g["units"]),
        }
        self._add_gastroprotection()  # some on an antiplatelet or anticoagulant also get a PPI
        self._issue(g, interval)

    def _add_gastroprotection(self) -> None:
        rng, reg = self.rng, self.reg
        anti = np.isin(reg["cls"], (ANTIPLATELET, ANTICOAGULANT))
        ppi_people = np.unique(reg["person"][reg["cls"] == PPI])
        cand = np.flatnonzero(anti & ~np.isin(reg["person"], ppi_people))
        p, first = np.unique(reg["person"][cand], return_index=True)
        cand = cand[first]
        age = (reg["start"][cand] - self.dob[p]) / YEAR
        take = rng.random(p.size) < np.where(age >= 75, 0.55, 0.45)
        cand = cand[take]
        ppi_pool = np.flatnonzero(np.char.startswith(self.drugs.codes.astype(str), "010305"))
        self._ppi_extra = {
            "p": reg["person"][cand],
            "drug": rng.choice(ppi_pool, size=cand.size),
            "start": reg["start"][cand],
            "stop": np.full(cand.size, NEVER),
        }
        for key, val in (("person", "p"), ("drug", "drug"), ("start", "start"), ("stop", "stop")):
            reg[key] = np.concatenate([reg[key], self._ppi_extra[val]])
        reg["cls"] = np.concatenate([reg["cls"], np.full(cand.size, PPI)])
        reg["mme"] = np.concatenate([reg["mme"], np.zeros(cand.size)])

    def _issue(self, g: dict[str, np.ndarray], interval: np.ndarray) -> None:
        """Issue dates: repeats every 28 or 56 days from the start to the stop, single acute issues."""
        o, rng = self.o, self.rng
        e = self._ppi_extra
        person = np.concatenate([g["p"], e["p"]])
        drug = np.concatenate([g["drug"], e["drug"]])
        start = np.concatenate([g["start"], e["start"]])
        stop = np.concatenate([g["stop"], e["stop"]])
        units = np.concatenate([g["units"], np.ones(e["p"].size)])
        acute = np.concatenate([g["acute"], np.zeros(e["p"].size, bool)])
        interval = np.concatenate([interval, np.where(rng.random(e["p"].size) < 0.12, 56, 28)])
        step = np.maximum(interval, 1)
        lo = o.start - step
        first = np.where(start >= lo, start, start + -(-(lo - start) // step) * step)
        last = np.minimum(stop, o.end)
        n = np.where(
            acute, ((start >= o.start) & (start < o.end)).astype(np.int64), np.maximum(0, -(-(last - first) // step))
        )
        rep = np.repeat(np.arange(person.size), n)
        k = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n)
        day = np.where(acute[rep], start[rep], first[rep] + k * step[rep])
        ok = (day >= o.start) & (day < o.end)
        rep, day = rep[ok], day[ok]
        self.med_person = person[rep]
        self.med_drug = drug[rep]
        self.med_day = day
        self.med_qty = np.where(acute[rep], units[rep], units[rep] * interval[rep])
        self.med_acute = acute[rep]

    def _medicine_state(self, start: np.ndarray) -> dict[str, np.ndarray]:
        """Regimens active on each person's start day (their stop dates known)."""
        reg = self.reg
        act = np.flatnonzero((reg["start"] <= start[reg["person"]]) & (reg["stop"] > start[reg["person"]]))
        return {k: v[act] for k, v in reg.items()}

    def _medicines_at(self, t: float, act: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        m = self.m
        on = act["stop"] > t
        p, cls = act["person"][on], act["cls"][on]

        def flag(c):
            return np.bincount(p[cls == c], minlength=m) > 0

        opi = cls == OPIOID
        first = np.full(m, np.inf)
        np.minimum.at(first, p[opi], act["start"][on][opi].astype(float))
        return {
            "nsaid": flag(NSAID),
            "acei_arb": flag(ACEI_ARB),
            "diuretic": flag(DIURETIC),
            "anticoagulant": flag(ANTICOAGULANT),
            "antiplatelet": flag(ANTIPLATELET),
            "ppi": flag(PPI),
            "insulin": flag(INSULIN),
            "opioid_mme": np.bincount(p[opi], weights=act["mme"][on][opi], minlength=m),
            "opioid_months": np.where(np.isfinite(first), (t - first) / 30.44, 0.0),
            "falls_risk_medicines": np.bincount(p[cls == FALLS_RISK], minlength=m),
        }

    # ------------------------------------------------------------------ the monthly simulation
    def _alt_simulate(self) -> None:
        o, rng, m = self.o, self.rng, self.m
        self.exit = np.full(m, NEVER, dtype=np.int64)
        self.death = np.full(m, NEVER, dtype=np.int64)
        self.transfer_day = np.full(m, NEVER, dtype=np.int64)
        self.transfer_to = np.full(m, -1, dtype=np.int64)
        adm, ae, falls, jumps = _Events(), _Events(), _Events(), _Events()
        last_dis = np.full(m, _NO_DISCHARGE, dtype=np.int64)
        truth_parts = []
        for k, t0 in enumerate(o.boundaries()):
            t1 = t0 + 365
            alive = self.death >= t0
            in_pop = (self.reg_start <= t0) & (self.exit > t0) & alive & (self.entry <= t0)
            entrants = (self.entry > t0) & (self.entry < t1) & alive if k < o.years else np.zeros(m, bool)
            at_risk = in_pop | entrants
            start = np.where(entrants, self.entry, t0)
            edges = t0 + np.round(np.arange(13) * 365 / 12).astype(np.int64)
            lo = np.maximum(edges[None, :-1], start[:, None])
            span = np.clip(edges[None, 1:] - lo, 0, None) * at_risk[:, None]
            span_h = np.clip(edges[None, 1:] - np.maximum(lo, last_dis[:, None]), 0, None) * at_risk[:, None]
            ltc = (self.onset < start[:, None]) & (self.resolved >= start[:, None])
            smoking = self._smoking_at(start)
            act = self._medicine_state(start)
            jp, jd, js = jumps.get("person"), jumps.get("day"), jumps.get("size", float)
            lh, ld, la, frail = (np.empty((m, 12)) for _ in range(4))
            fr_meds = np.empty((m, 12))
            for j in range(12):
                t = (edges[j] + edges[j + 1]) / 2
                frail[:, j] = self._frailty_base(t) + self._jump_part(t, jp, jd, js)
                meds = self._medicines_at(t, act)
                since = np.where(last_dis > _NO_DISCHARGE, t - last_dis, np.inf)
                s = RiskState(
                    age=(t - self.dob) / YEAR,
                    male=self.male,
                    dep=self.dep01,
                    propensity=self.propensity,
                    frailty=frail[:, j],
                    ltc=ltc,
                    smoking=smoking,
                    bmi=self._bmi_at(t),
                    days_since_discharge=since,
                    **meds,
                )
                lh[:, j], ld[:, j], la[:, j] = log_hazard(s), death_log_hazard(s), ae_log_rate(s)
                fr_meds[:, j] = meds["falls_risk_medicines"]
            age0 = (start - self.dob) / YEAR
            move = A.MOVE_RATE * np.interp(age0, [0, 18, 22, 35, 50, 65, 100], [0.9, 0.8, 2.4, 1.5, 0.7, 0.5, 0.45])
            xm = move[:, None] * span / 365
            pop = np.flatnonzero(in_pop)
            ed = np.exp(ld) * span / 365
            ed_pop = ed[pop].sum(1)
            delta = _bisect(lambda c, e=ed_pop: (-np.expm1(-np.exp(c) * e)).mean(), A.DEATHS_BEFORE_ADMISSION)
            xd = np.exp(delta) * ed
            x = xd + xm
            eh = np.exp(lh) * span_h / 365
            eh_pop, x_pop = eh[pop], x[pop]
            alpha = _bisect(
                lambda c, e=eh_pop, x_=x_pop: first_admission_probability(np.exp(c) * e, x_).mean(),
                A.EMERGENCY_SHARE,
            )
            h = np.exp(alpha) * eh
            truth_parts.append((pop, np.full(pop.size, t0), first_admission_probability(h[pop], x[pop])))
            if k == o.years:
                break
            # ---- the first event of the year: admission, death or moving away
            tot = h + x
            cum = np.cumsum(tot, axis=1)
            draw = rng.exponential(1.0, m)
            event = at_risk & (draw < cum[:, -1])
            month = np.argmax(cum > draw[:, None], axis=1)
            rows = np.arange(m)
            prev = np.where(month > 0, cum[rows, month - 1], 0.0)
            frac = np.clip((draw - prev) / np.maximum(tot[rows, month], 1e-300), 0, 1 - 1e-9)
            when = lo[rows, month] + frac * span[rows, month]
            u = rng.random(m)
            p_adm = h[rows, month] / np.maximum(tot[rows, month], 1e-300)
            admitted = event & (u < p_adm)
            dies = event & ~admitted & (rng.random(m) < xd[rows, month] / np.maximum(x[rows, month], 1e-300))
            moves = event & ~admitted & ~dies
            day = np.floor(when).astype(np.int64)
            self._die(dies, day)
            self.exit[moves] = np.maximum(day[moves], start[moves] + 1)
            # ---- after the first admission: readmissions, frailty jumps, deaths
            idx = np.flatnonzero(admitted)
            day = np.maximum(day[idx], last_dis[idx])  # not before leaving hospital
            f_idx = frail[idx, month[idx]]
            h_year = h[idx].sum(1)
            mu_day = xd[idx].sum(1) / np.maximum(span[idx].sum(1), 1)
            death_day = np.full(idx.size, NEVER)
            pos = np.arange(idx.size)
            while pos.size:
                p = idx[pos]
                age = (day - self.dob[p]) / YEAR
                n_def = (self.deficit[p] < day[:, None]).sum(1)
                dis = day + self._length_of_stay(age, n_def)
                adm.add(person=p, day=day, dis=dis)
                size = rng.gamma(A.JUMP_SHAPE, A.JUMP_SCALE, p.size) * (1 + 0.3 * f_idx[pos])
                jumps.add(person=p, day=day, size=size)
                last_dis[p] = np.maximum(last_dis[p], dis)
                p_ih = np.clip(0.015 * np.exp(0.05 * (age - 70) + 0.6 * np.log1p(f_idx[pos])), 0, 0.4)
                in_hosp = (rng.random(p.size) < p_ih) & (dis < t1) & (death_day[pos] == NEVER)
                death_day[pos[in_hosp]] = dis[in_hosp]
                q = -np.expm1(-A.DEATH_AFTER_ADMISSION * mu_day[pos] * np.clip(t1 - dis, 0, None))
                later = (rng.random(p.size) < q) & (death_day[pos] == NEVER) & (dis < t1)
                dd = dis + (rng.random(p.size) * np.clip(t1 - dis, 0, None)).astype(np.int64)
                death_day[pos[later]] = dd[later]
                early = rng.random(p.size) < expit(-2.5 + 0.35 * self.propensity[p] + 0.4 * np.log1p(f_idx[pos]))
                late_rate = 1.0 * h_year[pos] / 365 + 1e-6
                gap = np.where(early, 1 + rng.exponential(20, p.size), rng.exponential(1 / late_rate))
                nxt = dis + gap.astype(np.int64)
                ok = (nxt < t1) & (nxt < death_day[pos])
                pos, day = pos[ok], nxt[ok]
            dead = idx[death_day < NEVER]
            mask = np.zeros(m, bool)
            mask[dead] = True
            self._die(mask, self._scatter(dead, death_day[death_day < NEVER]))
            # ---- A&E attendances not ending in admission, and falls
            rate = np.exp(la) * span / 365
            scale = A.AE_PER_PERSON - P.VIA_AE_SHARE * A.SPELLS_PER_PERSON
            rate *= scale / max(rate[pop].sum(1).mean(), 1e-9)
            self._events_in_months(ae, rng.poisson(rate), lo, span)
            fall_rate = A.FALLS_PER_FRAILTY * frail * (1 + 0.4 * fr_meds) * span / 365
            fall_rate *= (lo - self.dob[:, None]) / YEAR >= 60
            self._events_in_months(falls, rng.poisson(fall_rate), lo, span)
            # ---- changing practice within the region
            frac_year = np.clip((t1 - start) / 365, 0, 1)
            stays = at_risk & (self.exit > t1 - 1) & (self.death >= t1)
            tr = stays & (self.transfer_to < 0) & (rng.random(m) < P.TRANSFER_RATE * frac_year)
            tr_day = start + 1 + (rng.random(m) * (t1 - start - 1)).astype(np.int64)
            self.transfer_day[tr] = tr_day[tr]
            n_pr = self.r.practice_codes.shape[0]
            self.transfer_to[tr] = (self.practice[tr] + rng.integers(1, max(n_pr, 2), int(tr.sum()))) % max(n_pr, 1)
        self.transfer_to[self.transfer_day >= self.exit] = -1
        self.transfer_day[self.transfer_to < 0] = NEVER
        self.adm, self.ae, self.falls, self.jumps = adm, ae, falls, jumps
        tp, td, tr_ = (np.concatenate(x) for x in zip(*truth_parts, strict=True))
        self.truth = pa.table(
            {
                "nhs_number": self._nhs(tp),
                "as_of": pa.array(td.astype(np.int32), pa.date32()),
                "true_risk": tr_,
            }
        )

    def _scatter(self, person: np.ndarray, value: np.ndarray) -> np.ndarray:
        out = np.zeros(self.m, np.int64)
        out[person] = value
        return out

    def _die(self, mask: np.ndarray, day: np.ndarray) -> None:
        dies = mask & (day < self.o.end)
        self.death[dies] = day[dies]
        lag = self.rng.integers(0, 31, self.m)
        self.exit[dies] = np.minimum(self.exit[dies], day[dies] + lag[dies] + 1)

    def _events_in_months(self, events: _Events, counts: np.ndarray, lo: np.ndarray, span: np.ndarray) -> None:
        person, month = np.nonzero(counts)
        k = counts[person, month]
        person, month = np.repeat(person, k), np.repeat(month, k)
        day = lo[person, month] + (self.rng.random(person.size) * span[person, month]).astype(np.int64)
        events.add(person=person, day=day)

    # ------------------------------------------------------------------ frailty in the record
    def _frailty_records(self) -> None:
        """Deficit and care home days with the jumps after admissions (checked monthly)."""
        o = self.o
        jp, jd, js = self.jumps.get("person"), self.jumps.get("day"), self.jumps.get("size", float)
        if jp.size == 0:
            return
        people = np.unique(jp)
        theta = np.concatenate([self.deficit_theta[people], self.care_theta[people, None]], axis=1)
        first = np.full(theta.shape, NEVER, dtype=np.int64)
        where = np.searchsorted(people, jp)
        for t in range(int(jd.min()) + 30, o.end + 30, 30):
            before = jd < t
            w = js[before] * (A.JUMP_PERSISTENT + (1 - A.JUMP_PERSISTENT) * np.exp(-(t - jd[before]) / 365))
            f = self._frailty_base(t, people) + np.bincount(where[before], weights=w, minlength=people.size)
            hit = (f[:, None] > theta) & (first == NEVER)
            first[hit] = t - 15
        self.deficit[people] = np.minimum(self.deficit[people], first[:, :-1])
        self.carehome[people] = np.minimum(self.carehome[people], first[:, -1])

    # ------------------------------------------------------------------ GP record
    def _alt_gp_events(self) -> pa.Table:
        o, rng, m = self.o, self.rng, self.m
        persons, days, codes, values = [], [], [], []

        def add(person: np.ndarray, day: np.ndarray, pool: np.ndarray, value: np.ndarray | None = None) -> None:
            persons.append(person)
            days.append(day)
            codes.append(pool[rng.integers(0, pool.size, person.size)])
            values.append(np.full(person.size, np.nan) if value is None else value)

        last = self._last_day(np.arange(m))
        everyone = np.arange(m)
        for i in range(len(A.CONDITIONS)):
            ok = self.coded[:, i] < np.minimum(last, self.resolved[:, i])
            add(everyone[ok], self.coded[ok, i], self.codes.condition[i])
            if self.codes.resolved[i] is not None:
                ok = self.resolved[:, i] < last
                add(everyone[ok], self.resolved[ok, i], self.codes.resolved[i])
        # Frailty deficits: coded with a lag, and only as often as the practice codes them.
        n_d = len(P.EFI_DEFICITS)
        coded = self.deficit + rng.exponential(A.DEFICIT_LAG_DAYS, (m, n_d)).astype(np.int64)
        coded = np.where(rng.random((m, n_d)) < 0.9 * self.coding[:, None], coded, NEVER)
        for j in range(n_d):
            ok = coded[:, j] < last
            add(everyone[ok], coded[ok, j], self.codes.deficit[j])
        care = self.carehome + rng.integers(7, 90, m)
        ok = care < last
        add(everyone[ok], care[ok], self.codes.carehome)
        fp, fd = self.falls.get("person"), self.falls.get("day")
        ok = rng.random(fp.size) < A.FALLS_CODED * self.coding[fp] / 0.75
        add(fp[ok], fd[ok] + rng.integers(0, 21, int(ok.sum())), self.codes.falls)
        # Smoking status, recorded now and then (current or ex; never-smokers are not coded here).
        lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(16 * YEAR))
        span = np.clip(last - lo, 0, None)
        k = 1 + rng.poisson(span / YEAR * 0.3)
        sp = np.repeat(everyone, k)
        sd = lo[sp] + (rng.random(sp.size) * span[sp]).astype(np.int64)
        status = np.where(self.smoke_quit[sp] <= sd, 1, np.where(self.smoke_start[sp] <= sd, 2, 0))
        ok = (status == 2) & (span[sp] > 0)
        add(sp[ok], sd[ok], self.codes.current_smoker)
        ok = (status == 1) & (span[sp] > 0)
        add(sp[ok], sd[ok], self.codes.ex_smoker)
        quit_rec = (self.smoke_quit >= lo) & (self.smoke_quit < last) & (rng.random(m) < 0.5)
        add(everyone[quit_rec], self.smoke_quit[quit_rec], self.codes.ex_smoker)
        # BMI values: the true BMI with measurement noise, more often with diabetes.
        adult_lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(18 * YEAR))
        span = np.clip(last - adult_lo, 0, None)
        diabetic = self.onset[:, _CI["diabetes"]] < o.end
        n_bmi = rng.poisson(span / YEAR * np.where(diabetic, 0.9, 0.3))
        bp = np.repeat(everyone, n_bmi)
        bday = adult_lo[bp] + (rng.random(bp.size) * span[bp]).astype(np.int64)
        age = (bday - self.dob[bp]) / YEAR
        frail = self.f70[bp] * np.exp((age - 70) / A.FRAILTY_SCALE_YEARS)
        true_bmi = self.bmi_base[bp] - 3.0 * np.clip(frail - 0.8, 0, 3)
        add(bp, bday, self.codes.bmi, np.round(np.clip(true_bmi + 0.9 * rng.standard_normal(bp.size), 14, 60), 1))
        person = np.concatenate(persons)
        day = np.concatenate(days)
        keep = (day >= self.dob[person]) & (day < np.minimum(last[person], o.end))
        tbl = pa.table(
            {
                "nhs_number": self._nhs(person[keep]),
                "event_date": self._date(day[keep]),
                "snomed_code": np.concatenate(codes)[keep],
                "value": pa.array(np.concatenate(values)[keep], pa.float64(), from_pandas=True),
            }
        )
        return _drop_duplicates(tbl)

    # ------------------------------------------------------------------ outpatients
    def _alt_sus_op(self, elective: tuple[np.ndarray, np.ndarray]) -> pa.Table:
        o, rng, m = self.o, self.rng, self.m
        lo = np.maximum(self.entry, o.start)
        last = self._last_day(np.arange(m))
        span = np.clip(last - lo, 0, None)
        age_now = (o.end - self.dob) / YEAR
        n_ltc = (self.onset < o.end).sum(1)
        rate = np.interp(age_now, *A.OP_AGE) * (1 + 0.3 * n_ltc) * np.exp(0.3 * np.log1p(self._frailty_base(o.end)))
        adm_p, adm_d = self.adm.get("person"), self.adm.get("day")
        follow_emergency = rng.random(adm_p.size) < 0.6
        follow = np.concatenate([adm_p[follow_emergency], elective[0]])
        follow_d = np.concatenate([adm_d[follow_emergency], elective[1]])
        target = A.OP_TARGET * 1.15 * span.sum() / YEAR
        rate *= max(target - follow.size, 0) / max((rate * span / YEAR).sum(), 1e-9)
        k = rng.poisson(rate * span / YEAR)
        person = np.repeat(np.arange(m), k)
        day = lo[person] + (rng.random(person.size) * span[person]).astype(np.int64)
        person = np.concatenate([person, follow])
        day = np.concatenate([day, follow_d + rng.integers(10, 75, follow.size)])
        keep = day < last[person]
        person, day = person[keep], day[keep]
        n = person.size
        age = (day - self.dob[person]) / YEAR
        tfc = _pick(rng, P.OP_GENERAL_TFC, n).astype(object)
        for i, c in enumerate(P.CONDITIONS):
            has = (self.onset[person, i] < day) & (rng.random(n) < 0.45)
            if c.op_tfc:
                tfc[has] = _pick(rng, c.op_tfc, int(has.sum()))
        tfc[age < 16] = P.PAEDIATRIC_TFC
        first = _pick(rng, ("1", "2", "3", "4"), n, p=(0.35, 0.5, 0.05, 0.10))
        lin = dna_log_odds(self.propensity[person], self.dep01[person], age)
        c = _bisect(lambda a: expit(a + lin).mean() if n else A.OP_DNA, A.OP_DNA, -10, 5, 40)
        dna = rng.random(n) < expit(c + lin)
        draw = rng.random(n)
        other = np.where(
            draw < 0.045,
            "2",
            np.where(draw < 0.095, "4", np.where(draw < 0.1, "7", _pick(rng, ("5", "6"), n, p=(0.9, 0.1)))),
        )
        status = np.where(dna, "3", other)
        return self._op_table(rng, person, day, tfc, first, status, (170, 105))
