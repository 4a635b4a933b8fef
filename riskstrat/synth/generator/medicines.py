"""Medicines: courses started by conditions and age, issued as repeat and acute items."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from riskstrat import codelists
from riskstrat.synth import params as P
from riskstrat.synth.generator.options import YEAR

__all__ = ["Medicines"]


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


class Medicines:
    """Medicines of a chunk's people (a part of :class:`~riskstrat.synth.generator.chunk._Chunk`)."""

    def _medicines(self) -> None:
        o, rng, m, d = self.o, self.rng, self.m, self.drugs
        persons, groups, starts, stops = [], [], [], []

        def course(mask: np.ndarray, group: str, start: np.ndarray, stop: np.ndarray) -> None:
            idx = np.flatnonzero(mask & (start < stop))
            persons.append(idx)
            groups.append(np.full(idx.size, group, dtype=object))
            starts.append(start[idx])
            stops.append(stop[idx])

        R = P.PRESCRIBING
        first = np.maximum(self.entry, o.start - rng.integers(0, R.first_issue_days, m))
        for i, c in enumerate(P.CONDITIONS):
            onset = self.onset[:, i]
            has = onset < o.end
            for group, prob in c.drugs:
                take = has & (rng.random(m) < prob)
                start = np.maximum(onset + rng.integers(0, R.condition_start_days, m), first)
                course(take, group, start, np.minimum(self.resolved[:, i], o.end))
        end = np.full(m, o.end)
        old = (o.end - self.dob) / YEAR
        cvd = (
            self.onset[:, [P.CONDITION_INDEX[k] for k in ("chd", "stroke", "diabetes", "hypertension")]] < o.end
        ).any(1)
        for a in P.AGE_COURSES:
            share = 0
            for age, s in reversed(tuple(zip(a.from_ages, a.shares, strict=True))):
                share = np.where(old >= age, s, share)
            take = rng.random(m) < share
            if a.without_cvd:
                take = ~cvd & take
            start = self.dob + int(a.start_age * YEAR)
            if a.start_spread_days:
                start = start + rng.integers(0, a.start_spread_days, m)
            course(take, a.group, np.maximum(first, start), end)
        defi = {name: j for j, (name, _, _) in enumerate(P.EFI_DEFICITS)}
        for dc in P.DEFICIT_COURSES:
            onset = self.deficit[:, defi[dc.deficit]]
            course(
                (onset < o.end) & (rng.random(m) < dc.share), dc.group, np.maximum(first, onset + dc.start_days), end
            )
        course(rng.random(m) < R.antiepileptic_share, "antiepileptic", first, end)
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
        interval = np.where(rng.random(person.size) < R.long_interval_share, R.long_interval, R.interval)
        n = np.maximum(0, -(-(stop - start) // interval))
        rep = np.repeat(np.arange(person.size), n)
        step = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n)
        day = start[rep] + step * interval[rep]
        regular = (day >= o.start) & (day < o.end)
        rp, rd, rday, rint = person[rep][regular], drug[rep][regular], day[regular], interval[rep][regular]
        # Acute items: more with age and multimorbidity.
        n_cond = (self.onset < o.end).sum(1)
        years_reg = (o.end - np.maximum(self.entry, o.start)) / YEAR
        lam = (
            R.acute_per_year + R.acute_per_condition * n_cond + R.acute_older * (old >= R.acute_older_age)
        ) * years_reg
        k = rng.poisson(lam)
        ap = np.repeat(np.arange(m), k)
        aday = np.maximum(self.entry, o.start)[ap] + (
            rng.random(ap.size) * (o.end - np.maximum(self.entry, o.start))[ap]
        ).astype(np.int64)
        acute_groups = R.acute_groups
        ag = rng.choice(len(acute_groups), size=ap.size, p=list(R.acute_shares))
        copd_asthma = (self.onset[:, [P.CONDITION_INDEX["copd"], P.CONDITION_INDEX["asthma"]]] < o.end).any(1)
        steroid = acute_groups.index("oral_corticosteroid")
        ag[(copd_asthma[ap]) & (rng.random(ap.size) < R.respiratory_steroid_share)] = steroid  # courses
        adrug = np.empty(ap.size, dtype=np.int64)
        for gi, g in enumerate(acute_groups):
            sel = np.flatnonzero(ag == gi)
            adrug[sel] = rng.choice(d.by_group[g], size=sel.size)
        self.med_person = np.concatenate([rp, ap])
        self.med_drug = np.concatenate([rd, adrug])
        self.med_day = np.concatenate([rday, aday])
        self.med_qty = np.concatenate([rint.astype(float), rng.choice(list(R.acute_quantities), size=ap.size)])
        self.med_acute = np.concatenate([np.zeros(rp.size, bool), np.ones(ap.size, bool)])

    def _polypharmacy(self, t0: int) -> np.ndarray:
        """Distinct BNF chemical substances issued in [t0 - 182, t0), per person."""
        sel = (self.med_day >= t0 - 182) & (self.med_day < t0)
        pairs = np.unique(self.med_person[sel] * 1000 + self.drugs.substance[self.med_drug[sel]])
        return np.bincount(pairs // 1000, minlength=self.m)
