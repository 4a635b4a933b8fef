"""Long-term conditions, eFI deficits, care home and smoking: onset days from age curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit, ndtr

from riskstrat import codelists
from riskstrat.synth import params as P
from riskstrat.synth.generator.options import NEVER, YEAR

__all__ = ["Conditions"]


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


def _onset_days(u: np.ndarray, cap: float, a50: float, scale: float, dob: np.ndarray, min_age: float) -> np.ndarray:
    """Day of onset where the uniform draw ``u`` falls under the age curve, else NEVER."""
    hit = u < cap
    ratio = np.clip(u / cap, 1e-9, 1 - 1e-9)
    age = np.maximum(a50 + scale * logit(ratio), min_age)
    return np.where(hit, dob + (age * YEAR).astype(np.int64), NEVER)


class Conditions:
    """Conditions of a chunk's people (a part of :class:`~riskstrat.synth.generator.chunk._Chunk`)."""

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
        F, S = P.FRAILTY_ONSET, P.SMOKING
        noise = np.sqrt(1 - F.loading**2)
        for j, (_, a50, cap) in enumerate(P.EFI_DEFICITS):
            score = F.loading * self.latent + noise * rng.standard_normal(m) + dep_shift
            self.deficit[:, j] = _onset_days(ndtr(-score), cap, a50, P.EFI_SCALE, self.dob, F.deficit_min_age)
        dementia = self.onset[:, P.CONDITION_INDEX["dementia"]] < NEVER
        u = ndtr(-(F.loading * self.latent + noise * rng.standard_normal(m)))
        u = u * np.where(dementia, F.care_home_dementia, 1.0)
        self.carehome = _onset_days(
            u, F.care_home_cap, F.care_home_a50, F.care_home_scale, self.dob, F.care_home_min_age
        )
        # Smoking status (adults), fixed for the period; recorded 1-3 times while registered.
        age_now = (o.end - self.dob) / YEAR
        adult = age_now >= S.adult_age
        p_cur = np.where(adult, S.current * (S.current_base + S.current_deprivation * self.dep01), 0)
        p_ex = np.where(adult, S.ex * np.clip(S.ex_base + age_now / S.ex_age_scale, 0, S.ex_cap), 0)
        draw = rng.random(m)
        self.smoking = np.where(draw < p_cur, 2, np.where(draw < p_cur + p_ex, 1, 0))  # 2 current, 1 ex
