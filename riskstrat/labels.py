"""Outcome labels: defined here, once.

For the population at the as-of date ``D`` (``riskstrat.features.asof.population``):

* ``emergency_admission`` (the default): 1 when the person has a spell with an emergency
  admission method (21-25, 2A-2D, 28) and ``admission_date`` in ``[D, D + horizon)``.
* ``emergency_admission_or_death``: 1 when that happens, or the person dies in
  ``[D, D + horizon)``.

People who die inside the window keep their row: for ``emergency_admission`` a death
without an emergency admission first is a 0 (death is a competing event, not censoring:
the model answers "will this person be admitted as an emergency in the next year", and
the dead will not be); for ``emergency_admission_or_death`` it is a 1. People who move
away keep their row too; activity after they leave may be missing from the extracts. The
horizon is 365 days unless a model specification says otherwise. Labels look only at
records dated on or after ``D``; features only at records before it.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import ibis

from riskstrat.features.asof import Sources, cut, population
from riskstrat.schema import EMERGENCY_ADMISSION_METHODS

__all__ = ["DEFAULT_HORIZON_DAYS", "Outcome", "data_end", "data_start", "labels"]

DEFAULT_HORIZON_DAYS = 365


class Outcome(StrEnum):
    EMERGENCY_ADMISSION = "emergency_admission"
    EMERGENCY_ADMISSION_OR_DEATH = "emergency_admission_or_death"


def labels(
    src: Sources,
    as_of: dt.date,
    outcome: Outcome | str = Outcome.EMERGENCY_ADMISSION,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> ibis.Table:
    """``pseudonym``, ``label`` (0/1) and ``died_in_window`` (0/1) for the population at ``as_of``.

    ``src`` are the full (uncut) sources.
    """
    outcome = Outcome(outcome)
    d = ibis.date(as_of)
    end = ibis.date(as_of + dt.timedelta(days=horizon_days))
    pop = population(cut(src, as_of), as_of).select("pseudonym")
    apc = src.sus_apc
    admitted = (
        apc.filter(
            apc.admission_method.isin(EMERGENCY_ADMISSION_METHODS)
            & (apc.admission_date >= d)
            & (apc.admission_date < end)
        )
        .select("pseudonym")
        .distinct()
        .mutate(_adm=ibis.literal(1, "int64"))
    )
    deaths = src.deaths
    died = deaths.filter((deaths.date_of_death >= d) & (deaths.date_of_death < end))
    died = died.select("pseudonym").distinct().mutate(_died=ibis.literal(1, "int64"))
    t = pop.left_join(admitted, "pseudonym").left_join(died, "pseudonym")
    adm, dead = t._adm.fill_null(0), t._died.fill_null(0)
    label = adm if outcome is Outcome.EMERGENCY_ADMISSION else ibis.greatest(adm, dead)
    return t.select("pseudonym", label=label.cast("int64"), died_in_window=dead.cast("int64")).order_by("pseudonym")


def data_end(src: Sources) -> dt.date | None:
    """The last day the hospital extracts cover (latest admission, appointment or arrival)."""
    latest = [
        src.sus_apc.admission_date.max().to_pyarrow().as_py(),
        src.sus_op.appointment_date.max().to_pyarrow().as_py(),
        src.sus_ecds.arrival_date.max().to_pyarrow().as_py(),
    ]
    latest = [x for x in latest if x is not None]
    return max(latest) if latest else None


def data_start(src: Sources) -> dt.date | None:
    """The first day the hospital extracts cover (earliest admission, appointment or arrival)."""
    earliest = [
        src.sus_apc.admission_date.min().to_pyarrow().as_py(),
        src.sus_op.appointment_date.min().to_pyarrow().as_py(),
        src.sus_ecds.arrival_date.min().to_pyarrow().as_py(),
    ]
    earliest = [x for x in earliest if x is not None]
    return min(earliest) if earliest else None
