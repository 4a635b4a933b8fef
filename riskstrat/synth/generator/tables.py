"""Writing: the contract tables of a chunk from its simulated people and events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.schema import TABLES, arrow_schema
from riskstrat.synth import params as P
from riskstrat.synth.generator.options import NEVER, YEAR, day_number

__all__ = ["ChunkResult", "Tables"]


@dataclass
class ChunkResult:
    tables: dict[str, pa.Table]
    truth: pa.Table


class Tables:
    """The tables of a chunk (a part of :class:`~riskstrat.synth.generator.chunk._Chunk`);
    coefficients from :mod:`riskstrat.synth.params`."""

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
        tables["care_register"] = self._care_register()  # its own random stream: the others are as they were
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

    def _care_register(self) -> pa.Table:
        """The practices' care registers (contract v1.1): high-risk people registered on the
        extract date, at their practice then; and, for some who changed practice, a stale entry at
        the practice they left (:data:`riskstrat.synth.params.CARE_REGISTER_TOP_SHARE` and after).
        Drawn from a random stream of its own, so every other table is as it was without it."""
        o = self.o
        rng = np.random.default_rng([o.seed, 3000 + self.chunk])
        truth = self.truth
        last = pc.max(truth["as_of"])
        latest = truth.filter(pc.equal(truth["as_of"], last))
        index = {n: i for i, n in enumerate(self.nhs.tolist())}
        person = np.array([index[n] for n in latest["nhs_number"].to_pylist()], dtype=np.int64)
        risk = latest["true_risk"].to_numpy()
        here = (self.exit[person] > o.end) & (self.death[person] >= o.end)
        person, risk = person[here], risk[here]
        if person.size == 0:
            return self._empty_register()
        top = risk >= np.quantile(risk, 1 - P.CARE_REGISTER_TOP_SHARE)
        chosen = person[top & (rng.random(person.size) < P.CARE_REGISTER_ENTERED)]
        moved = self.transfer_to[chosen] >= 0
        practice = np.where(moved, self.transfer_to[chosen], self.practice[chosen])
        stale = chosen[moved & (rng.random(chosen.size) < P.CARE_REGISTER_STALE_SHARE)]
        names = np.array(list(P.CARE_REGISTER_STATUSES), dtype=object)
        shares = np.array(list(P.CARE_REGISTER_STATUSES.values()))
        who = np.concatenate([chosen, stale])
        status = names[rng.choice(names.size, size=who.size, p=shares / shares.sum())]
        recorded = o.end - 1 - (rng.random(chosen.size) * P.CARE_REGISTER_DAYS).astype(np.int64)
        stale_day = self.transfer_day[stale] - 1 - (rng.random(stale.size) * 180).astype(np.int64)
        recorded = np.concatenate([recorded, stale_day])
        recorded = np.maximum(recorded, np.concatenate([self.reg_start[chosen], self.reg_start[stale]]))
        return pa.table(
            {
                "practice_code": self.r.practice_codes[np.concatenate([practice, self.practice[stale]])],
                "nhs_number": self._nhs(who),
                "status": pa.array(status, pa.string()),
                "recorded_date": self._date(recorded),
            }
        )

    def _empty_register(self) -> pa.Table:
        return arrow_schema(TABLES["care_register"]).empty_table()

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
        lsoa[self.rng.random(person.size) < P.GP_RECORDING.missing_lsoa_share] = None
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
        o, rng, m, G = self.o, self.rng, self.m, P.GP_RECORDING
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
        lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(P.SMOKING.adult_age * YEAR))
        ex_day = lo + (rng.random(m) * np.maximum(last - lo, 1)).astype(np.int64)
        add((self.smoking == 1) & (ex_day < last), ex_day, self.codes.ex_smoker)
        # BMI values, recorded for adults about every three years.
        adult_lo = np.maximum(np.maximum(self.entry, o.start), self.dob + int(G.bmi_adult_age * YEAR))
        span = np.clip(last - adult_lo, 0, None)
        n_bmi = rng.poisson(span / YEAR * G.bmi_per_year)
        bp = np.repeat(np.arange(m), n_bmi)
        bday = adult_lo[bp] + (rng.random(bp.size) * span[bp]).astype(np.int64)
        bmi_mean = G.bmi_mean + G.bmi_deprivation * (self.dep01 - 0.5) + G.bmi_latent * self.latent
        bval = np.round(np.clip(bmi_mean[bp] + G.bmi_sd * rng.standard_normal(bp.size), *G.bmi_range), 1)
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
        G = P.GP_RECORDING
        unit = self.drugs.item_cost[drug] * np.where(acute, 1.0, qty / G.item_quantity)
        cost = np.round(unit * self.rng.uniform(*G.item_cost_range, person.size), 2)
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
        cause = np.full(dead.size, P.DEATH_CAUSE_OTHER, dtype=object)
        for name, code in P.DEATH_CAUSES:
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
        ndoo_start = day_number(P.NDOO_LAUNCH)
        d1 = np.maximum(self.reg_start[p1], day_number(P.TYPE1_EARLIEST))
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
        at_main = self.rng.random(person.size) < P.HOSPITAL.main_provider_share
        return self.r.provider_codes[np.where(at_main, main, other)]

    def _sus_apc(self) -> tuple[pa.Table, tuple[np.ndarray, np.ndarray]]:
        o, rng, H, E = self.o, self.rng, P.HOSPITAL, P.EMERGENCY_SPELLS
        person = self.adm.get("person")
        day = self.adm.get("day")
        dis = self.adm.get("dis")
        n = person.size
        age = (day - self.dob[person]) / YEAR
        active = (self.onset[person] < day[:, None]) & (self.resolved[person] >= day[:, None])
        # Primary diagnosis: a condition-specific reason half the time when the person has one.
        primary = np.where(
            age < H.child_to,
            _pick(rng, P.EMERGENCY_DIAGNOSES_CHILD, n),
            np.where(
                age >= H.older_from,
                _pick(rng, P.EMERGENCY_DIAGNOSES_OLDER, n),
                _pick(rng, P.EMERGENCY_DIAGNOSES_ADULT, n),
            ),
        ).astype(object)
        secondary = [[] for _ in range(n)]
        for i, c in enumerate(P.CONDITIONS):
            has = active[:, i]
            use = has & (rng.random(n) < E.condition_primary * c.log_hazard + E.condition_primary_base)
            primary[use] = _pick(rng, c.icd10_emergency, int(use.sum()))
            for r in np.flatnonzero(has):
                secondary[r].append(c.icd10_secondary[rng.integers(0, len(c.icd10_secondary))])
        n_def = (self.deficit[person] < day[:, None]).sum(1)
        for r in np.flatnonzero(n_def >= E.frailty_secondary_from):
            secondary[r].append(P.FRAILTY_SECONDARY[rng.integers(0, len(P.FRAILTY_SECONDARY))])
        via_ae = rng.random(n) < P.VIA_AE_SHARE
        method = np.where(via_ae, "21", _pick(rng, E.other_methods, n, p=E.other_method_shares))
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
            "cost": np.round(E.cost_base + E.cost_per_day * (dis - day) * rng.uniform(*E.cost_range, n), 2),
            "tfc": np.where(age < H.child_to, "420", np.where(age >= H.older_from, "430", "300")).astype(object),
        }
        elective = self._elective_spells()
        merged = {k: np.concatenate([spells[k], elective[k]]) for k in spells}
        table = self._episodes(merged)
        return table, (elective["person"], elective["admission"])

    def _elective_spells(self) -> dict[str, np.ndarray]:
        o, rng, m, E, M = self.o, self.rng, self.m, P.ELECTIVE_SPELLS, P.MATERNITY
        lo = np.maximum(self.entry, o.start)
        last = self._last_day(np.arange(m))
        span = np.clip(last - lo, 0, None)
        age_now = (o.end - self.dob) / YEAR
        rate = P.ELECTIVE_PER_PERSON * np.interp(age_now, E.ages, E.factors)
        k = rng.poisson(rate * span / YEAR)
        person = np.repeat(np.arange(m), k)
        day = lo[person] + (rng.random(person.size) * span[person]).astype(np.int64)
        age = (day - self.dob[person]) / YEAR
        proc = np.array(P.ELECTIVE_PROCEDURES, dtype=object)
        w = np.array([x[3] for x in P.ELECTIVE_PROCEDURES], dtype=float)
        pick = rng.choice(len(proc), size=person.size, p=w / w.sum())
        bad = (age < proc[pick, 4].astype(float)) | ((proc[pick, 2] == E.women_only_tfc) & (self.sex[person] != "2"))
        pick[bad] = E.fallback
        # Maternity: women of childbearing age.
        mp = np.flatnonzero((self.sex == "2") & (age_now > M.ages[0]) & (age_now < M.ages[1]))
        mk = rng.random(mp.size) < M.per_year * span[mp] / YEAR
        mp = mp[mk]
        mday = lo[mp] + (rng.random(mp.size) * span[mp]).astype(np.int64)
        day_case = rng.random(person.size) < E.day_case_share
        los = np.where(day_case, 0, rng.integers(*E.inpatient_days, person.size))
        mlos = rng.integers(*M.days, mp.size)
        n, nm = person.size, mp.size
        return {
            "person": np.concatenate([person, mp]),
            "admission": np.concatenate([day, mday]),
            "discharge": np.concatenate([day + los, mday + mlos]),
            "method": np.concatenate([_pick(rng, E.methods, n, p=E.method_shares), np.full(nm, "31")]),
            "classification": np.concatenate([np.where(day_case, "2", "1"), np.full(nm, "1")]),
            "primary": np.concatenate([proc[pick, 0].astype(str), np.full(nm, "O800")]),
            "secondary": np.full(n + nm, None, dtype=object),
            "procedure": np.concatenate([proc[pick, 1], np.full(nm, None, dtype=object)]),
            "destination": np.full(n + nm, "19", dtype=object),
            "cost": np.round(
                np.concatenate(
                    [
                        np.where(day_case, E.cost_day_case, E.cost_inpatient) * rng.uniform(*E.cost_range, n),
                        M.cost * rng.uniform(*M.cost_range, nm),
                    ]
                ),
                2,
            ),
            "tfc": np.concatenate([proc[pick, 2], np.full(nm, "501", dtype=object)]),
        }

    def _episodes(self, s: dict[str, np.ndarray]) -> pa.Table:
        """Split spells into consultant episodes: longer emergency stays often change consultant."""
        o, rng, C = self.o, self.rng, P.EPISODES
        n = s["person"].size
        los = s["discharge"] - s["admission"]
        emergency = np.char.startswith(s["method"].astype(str), "2")
        second = (los >= C.second_from) & emergency & (rng.random(n) < C.second_share)
        n_ep = 1 + second + ((los >= C.third_from) & emergency & (rng.random(n) < C.third_share))
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
        second_tfc = _pick(rng, C.later_tfcs, rep.size)
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
        rng, A = self.rng, P.AE_RECORDING
        ap, ad = self.adm_via_ae
        np_, nd = self.ae.get("person"), self.ae.get("day")
        keep = nd < self._last_day(np_)
        np_, nd = np_[keep], nd[keep]
        person = np.concatenate([ap, np_])
        day = np.concatenate([ad, nd])
        admitted = np.concatenate([np.ones(ap.size, bool), np.zeros(np_.size, bool)])
        n = person.size
        age = (day - self.dob[person]) / YEAR
        amb_p = np.where(admitted, A.ambulance_admitted, np.interp(age, A.ambulance_ages, A.ambulance_shares))
        ambulance = rng.random(n) < amb_p
        dept = np.where(admitted, "01", _pick(rng, A.departments, n, p=A.department_shares))
        complaint = np.where(rng.random(n) < A.complaint_share, _pick(rng, P.AE_COMPLAINTS, n), None)
        falls = (age >= A.falls_from) & (rng.random(n) < A.falls_share)
        complaint = np.where(falls, self.codes.falls[rng.integers(0, self.codes.falls.size, n)], complaint)
        unit = np.where(dept == "03", A.cost_type3, np.where(admitted, A.cost_admitted, A.cost_other))
        cost = np.round(unit * rng.uniform(*A.cost_range, n), 2)
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
        o, rng, m, O = self.o, self.rng, self.m, P.OUTPATIENTS
        lo = np.maximum(self.entry, o.start)
        last = self._last_day(np.arange(m))
        span = np.clip(last - lo, 0, None)
        age_now = (o.end - self.dob) / YEAR
        n_cond = (self.onset < o.end).sum(1)
        rate = np.interp(age_now, O.ages, O.rates) * (1 + O.per_condition * n_cond)
        adm_p, adm_d = self.adm.get("person"), self.adm.get("day")
        follow = np.concatenate([adm_p, elective[0]])
        follow_d = np.concatenate([adm_d, elective[1]])
        target_total = O.total_factor * P.OP_PER_PERSON * span.sum() / YEAR
        rate *= max(target_total - follow.size, 0) / max((rate * span / YEAR).sum(), 1e-9)
        k = rng.poisson(rate * span / YEAR)
        person = np.repeat(np.arange(m), k)
        day = lo[person] + (rng.random(person.size) * span[person]).astype(np.int64)
        fday = follow_d + rng.integers(*O.follow_up_days, follow.size)
        person = np.concatenate([person, follow])
        day = np.concatenate([day, fday])
        keep = day < last[person]
        person, day = person[keep], day[keep]
        n = person.size
        age = (day - self.dob[person]) / YEAR
        tfc = _pick(rng, P.OP_GENERAL_TFC, n).astype(object)
        for i, c in enumerate(P.CONDITIONS):
            has = (self.onset[person, i] < day) & (rng.random(n) < O.condition_clinic_share)
            if c.op_tfc:
                tfc[has] = _pick(rng, c.op_tfc, int(has.sum()))
        tfc[age < P.HOSPITAL.child_to] = P.PAEDIATRIC_TFC
        first = _pick(rng, O.first_attendance, n, p=O.first_attendance_shares)
        young = (age > O.dna_young_ages[0]) & (age < O.dna_young_ages[1])
        dna_p = (
            O.dna_factor
            * P.OP_DNA_SHARE
            * (O.dna_base + O.dna_deprivation * self.dep01[person])
            * np.where(young, O.dna_young_factor, O.dna_other_factor)
        )
        draw = rng.random(n)
        status = _pick(rng, O.attended, n, p=O.attended_shares)
        for code, upto in reversed(O.not_seen):  # the first threshold a draw falls under wins
            status = np.where(draw < dna_p + upto, code, status)
        status = np.where(draw < dna_p, "3", status)
        return self._op_table(rng, person, day, tfc, first, status, O.tariff)

    def _op_table(self, rng, person, day, tfc, first, status, tariff: tuple[float, float]) -> pa.Table:
        """The ``sus_op`` rows of appointments already drawn: costs (``tariff``: first and
        follow-up attendances, pounds, x uniform in ``OUTPATIENTS.cost_range``) and referral sources
        drawn here, sorted by person."""
        n = person.size
        attended = (status == "5") | (status == "6")
        new = np.isin(first, ("1", "3"))
        O = P.OUTPATIENTS
        cost = np.where(attended, np.where(new, tariff[0], tariff[1]) * rng.uniform(*O.cost_range, n), 0)
        referral = np.where(new, _pick(rng, O.referral_sources, n, p=O.referral_source_shares), None)
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
