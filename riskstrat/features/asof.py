"""The as-of cut, applied once and centrally: no builder can see the future.

``cut(sources, D)`` turns the full pseudonymised tables into what an extract taken on ``D``
would show (``spec/data-contract.md``, time rules):

* event tables keep records dated strictly before ``D`` (admissions by
  ``admission_date`` — and episodes by ``episode_start`` — appointments by
  ``appointment_date``, attendances by ``arrival_date``, GP events by ``event_date``,
  prescriptions by ``issue_date``, deaths by ``date_of_death``);
* registrations are removed only when they start after ``D``;
* ``discharge_date``, ``episode_end`` and ``registration_end`` on or after ``D`` are blanked:
  a spell or registration open on ``D`` looks open.

The population at ``D``: people registered on ``D`` at a practice of ``ref_practices``
(``registration_start <= D`` and no end, after the cut) and not dead before ``D``; where a
person has two such registrations, the later-starting one gives their practice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import ibis
from ibis.expr.types import Table

__all__ = ["SOURCE_TABLES", "Sources", "cut", "population", "restrict"]

SOURCE_TABLES = (
    "gp_registrations",
    "gp_events",
    "gp_medications",
    "sus_apc",
    "sus_op",
    "sus_ecds",
    "deaths",
    "ref_practices",
    "ref_lsoa",
)


@dataclass(frozen=True)
class Sources:
    """The pseudonymised tables as ibis expressions (on one engine)."""

    gp_registrations: Table
    gp_events: Table
    gp_medications: Table
    sus_apc: Table
    sus_op: Table
    sus_ecds: Table
    deaths: Table
    ref_practices: Table
    ref_lsoa: Table
    #: shared intermediate tables already built from these sources (name -> table; see
    #: :class:`riskstrat.features.registry.Shared`): set only on sources cut at one date
    shared: Mapping[str, Table] = field(default_factory=dict)

    def table(self, name: str) -> Table:
        return getattr(self, name)


def _blank_from(col, d):
    return (col >= d).ifelse(ibis.null(col.type()), col)


def cut(src: Sources, as_of: dt.date) -> Sources:
    """The sources as an extract taken on ``as_of`` would show them."""
    d = ibis.date(as_of)
    reg = src.gp_registrations
    reg = reg.filter(reg.registration_start <= d).mutate(registration_end=_blank_from(reg.registration_end, d))
    apc = src.sus_apc
    apc = apc.filter((apc.admission_date < d) & (apc.episode_start < d)).mutate(
        discharge_date=_blank_from(apc.discharge_date, d), episode_end=_blank_from(apc.episode_end, d)
    )
    return replace(
        src,
        gp_registrations=reg,
        gp_events=src.gp_events.filter(src.gp_events.event_date < d),
        gp_medications=src.gp_medications.filter(src.gp_medications.issue_date < d),
        sus_apc=apc,
        sus_op=src.sus_op.filter(src.sus_op.appointment_date < d),
        sus_ecds=src.sus_ecds.filter(src.sus_ecds.arrival_date < d),
        deaths=src.deaths.filter(src.deaths.date_of_death < d),
    )


def restrict(src: Sources, people: Table) -> Sources:
    """The sources with only the records of the people in ``people`` (a ``pseudonym`` column):
    every table that names people is semi-joined to it, so that each builder aggregates only
    their rows. Features of a person depend only on that person's records, so a person's
    features from restricted sources equal those from the whole sources."""
    kept = {
        name: src.table(name).semi_join(people, "pseudonym")
        for name in SOURCE_TABLES
        if "pseudonym" in src.table(name).columns
    }
    return replace(src, **kept)


def population(cut_src: Sources, as_of: dt.date) -> Table:
    """One row per person in the population at ``as_of``: pseudonym and their registration.

    Expects sources already cut at ``as_of``.
    """
    d = ibis.date(as_of)
    reg = cut_src.gp_registrations
    practices = cut_src.ref_practices.select("practice_code")
    open_ = reg.filter(reg.registration_end.isnull() & (reg.registration_start <= d))
    open_ = open_.semi_join(practices, "practice_code")
    dead = cut_src.deaths.select("pseudonym").distinct()
    alive = open_.anti_join(dead, "pseudonym")
    w = ibis.window(group_by="pseudonym", order_by=[ibis.desc("registration_start"), ibis.desc("practice_code")])
    ranked = alive.mutate(_rank=ibis.row_number().over(w))
    return ranked.filter(ranked._rank == 0).drop("_rank")
