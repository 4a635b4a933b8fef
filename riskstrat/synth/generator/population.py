"""People: age, sex, entry to the region, registration, practice, area, ethnicity, latent health."""

from __future__ import annotations

import numpy as np

from riskstrat.synth import params as P
from riskstrat.synth.generator.options import YEAR

__all__ = ["People"]


def _sample_ages(rng: np.random.Generator, n: int, band_weights: np.ndarray) -> np.ndarray:
    band = rng.choice(band_weights.shape[0], size=n, p=band_weights / band_weights.sum())
    return band * 5 + rng.random(n) * 5


class People:
    """The people of a chunk (a part of :class:`~riskstrat.synth.generator.chunk._Chunk`)."""

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
        entry = np.where(
            mover,
            mover_entry,
            np.where(born_here, self.dob + rng.integers(0, P.PEOPLE.birth_registration_days, m), o.start),
        )
        entry = np.clip(entry, self.dob, o.end - 1)
        kind = np.where(mover, 2, np.where(born_here, 1, 0))
        age_years = (entry - self.dob) / YEAR
        age_days = entry - self.dob
        band = np.minimum(age_years // 5, 19).astype(int)
        female = rng.random(m) < P.FEMALE_SHARE[band]
        self.sex = np.where(female, "2", "1").astype(object)
        self.sex[rng.random(m) < P.PEOPLE.sex_not_known_share] = "0"
        self.male = self.sex == "1"
        self.entry = entry
        # Registration start: initial people registered some years before the period.
        prior = np.minimum(rng.exponential(P.PEOPLE.registered_years_before_mean * YEAR, m).astype(np.int64), age_days)
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
        eth_codes = np.array(P.PEOPLE.ethnic_codes)
        eth_p = np.array(P.PEOPLE.ethnic_percent)
        self.ethnic = eth_codes[rng.choice(eth_codes.size, size=m, p=eth_p / eth_p.sum())].astype(object)
        self.ethnic[rng.random(m) < P.PEOPLE.ethnic_missing_share] = None
        self.latent = rng.standard_normal(m)
