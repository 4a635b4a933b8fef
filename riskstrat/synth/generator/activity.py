"""The yearly simulation: emergency admissions (the true risk), A&E, deaths, moves and transfers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from riskstrat.synth import params as P
from riskstrat.synth.generator.options import NEVER, YEAR

__all__ = ["Activity"]


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


class Activity:
    """The yearly simulation of a chunk (a part of :class:`~riskstrat.synth.generator.chunk._Chunk`);
    coefficients from :mod:`riskstrat.synth.params`."""

    def _simulate(self) -> None:
        o, rng, m = self.o, self.rng, self.m
        self.exit = np.full(m, NEVER, dtype=np.int64)  # first day no longer registered
        self.death = np.full(m, NEVER, dtype=np.int64)
        self.transfer_day = np.full(m, NEVER, dtype=np.int64)
        self.transfer_to = np.full(m, -1, dtype=np.int64)
        self.smoke_first = np.full(m, NEVER, dtype=np.int64)
        cur = np.flatnonzero(self.smoking == 2)
        lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(P.SMOKING.adult_age * YEAR))[cur]
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
