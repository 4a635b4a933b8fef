"""Feature builders: one family per source, registered with the features they declare.

Every builder has one signature, ``builder(sources, as_of) -> ibis table``: it receives
sources already cut at the as-of date (:func:`riskstrat.features.asof.cut`, applied once,
centrally) and returns one row per person it has records for, keyed by ``pseudonym``. The
assembler left-joins every builder onto the population at ``D`` and fills each feature's
declared default for people with no records. Builders are registered objects, never looked
up by building names from strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BUILDERS",
    "DAYS_SINCE_NONE",
    "SHARED",
    "Builder",
    "Dtype",
    "Feature",
    "Reason",
    "ReasonKind",
    "RowReason",
    "Shared",
    "all_features",
    "count_reason",
    "feature_named",
    "in_the_last",
    "listed",
    "plural",
    "register",
    "shared",
    "trend_reason",
]

#: "days since the last ..." for people with no such record before D (longer than any history
#: held): the one "never" value of every days-since feature, never a reason in itself
DAYS_SINCE_NONE = 9999

#: A feature's value in plain words: a template, or a function of the value for the few
#: reasons whose words depend on it. Template fields: ``{n}`` the value rounded to a whole
#: number, ``{v}`` the value as is (a float, e.g. ``{v:.1f}``), ``{s}`` "s" unless ``n`` is 1,
#: ``{ies}`` "y" when ``n`` is 1 else "ies".
Reason = str | Callable[[float], str]


class ReasonKind(StrEnum):
    """What a reason is to the clinician reading it.

    ``actionable``: something the practice could act on now (a prescribing-safety alert,
    polypharmacy to review, frequent A&E attendance, a discharge to follow up, a condition not
    under control); ``background``: what the person is or has been (age, deprivation, long-term
    conditions, past hospital use, frailty), which explains the risk but is not itself a task.
    """

    ACTIONABLE = "actionable"
    BACKGROUND = "background"


@dataclass(frozen=True)
class RowReason:
    """A reason whose words need more of the person's features than the one it explains: ``words``
    is called with the value and a mapping of the features named in ``reads`` (a register count
    names the registers). :func:`riskstrat.scoring.reason_inputs` tells scoring which columns to
    read for it; ``fallback`` is the template used when they are not at hand."""

    reads: tuple[str, ...]
    words: Callable[[float, Mapping[str, float]], str]
    fallback: str

    def __call__(self, value: float, row: Mapping[str, float] | None = None) -> str:
        if row is None or any(name not in row for name in self.reads):
            n = round(value)
            return self.fallback.format(n=n, v=value, s=plural(n))
        return self.words(value, row)


def listed(items: list[str]) -> str:
    """Items as a clinician writes them: "diabetes, COPD and heart failure"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


#: a look-back window in days -> the same window in words
_WINDOW_WORDS = {
    30: "the last month",
    90: "the last 3 months",
    180: "the last 6 months",
    182: "the last 6 months",
    365: "the last year",
    730: "the last 2 years",
    1095: "the last 3 years",
    1826: "the last 5 years",
}


def in_the_last(days: int) -> str:
    """A look-back window in words: ``in_the_last(365) == "the last year"``."""
    return _WINDOW_WORDS[days]


def plural(n: int) -> str:
    """The plural ending: "s" unless ``n`` is 1."""
    return "" if n == 1 else "s"


def count_reason(counted: str, days: int) -> str:
    """The reason template of a count over a window: ``counted`` holds ``{s}`` where the
    plural goes, e.g. ``count_reason("emergency admission{s}", 365)``."""
    return f"{{n}} {counted} in {in_the_last(days)}"


def trend_reason(what: str) -> Callable[[float], str]:
    """The reason of a 6-month trend (recent half-year minus the one before) of ``what``."""

    def words(v: float) -> str:
        n = round(v)
        direction = "rising" if n > 0 else "falling" if n < 0 else "steady"
        return f"{what} {direction} ({n:+d} in the last 6 months against the 6 before)"

    return words


class Dtype(StrEnum):
    INT = "int64"
    FLOAT = "float64"
    STRING = "string"


@dataclass(frozen=True)
class Feature:
    """One column of the feature table, documented in the data dictionary."""

    name: str
    definition: str
    window: str  # e.g. "365 days before D", "all history before D", "on D"
    default: int | float | str | None  # value for people with no records
    dtype: Dtype = Dtype.INT
    reason: Reason | RowReason | None = None  # the value in plain words (None: the definition and the value)
    kind: ReasonKind = ReasonKind.BACKGROUND  # what the reason is to a clinician (declared once, here)

    def describe(self, value: float, row: Mapping[str, float] | None = None) -> str:
        """This feature's ``value`` in plain words, for a clinician reading a practice list;
        ``row``: the person's other features, for a :class:`RowReason`."""
        v = float(value)
        n = round(v)
        if self.reason is None:
            return f"{self.definition}: {n if v == n else round(v, 2)}"
        if isinstance(self.reason, RowReason):
            return self.reason(v, row)
        if callable(self.reason):
            return self.reason(v)
        return self.reason.format(n=n, v=v, s=plural(n), ies="y" if n == 1 else "ies")


@dataclass(frozen=True)
class Builder:
    name: str
    sources: tuple[str, ...]
    features: tuple[Feature, ...]
    build: Callable

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


BUILDERS: list[Builder] = []


def register(name: str, sources: tuple[str, ...], features: list[Feature]) -> Callable[[Callable], Builder]:
    """Decorator: register ``fn`` as the builder ``name`` of ``features`` from ``sources``."""

    def wrap(fn: Callable) -> Builder:
        if any(b.name == name for b in BUILDERS):
            raise ValueError(f"builder {name} registered twice")
        b = Builder(name, sources, tuple(features), fn)
        BUILDERS.append(b)
        return b

    return wrap


def all_features() -> list[tuple[Builder, Feature]]:
    return [(b, f) for b in BUILDERS for f in b.features]


def feature_named(name: str) -> Feature | None:
    """The registered feature ``name`` (None when no builder declares it)."""
    return next((f for b in BUILDERS for f in b.features if f.name == name), None)


@dataclass(frozen=True)
class Shared:
    """An intermediate table that several builders read, from sources cut at D.

    Called as ``shared(sources, as_of)``: the table already built for this cut
    (``sources.shared[name]``) when there is one, else its expression. The DuckDB feature stage
    writes each shared table once per date before the builders run, so that, for example, the
    prescriptions of the last 15 months are grouped by person and substance once rather than
    once by each of three builders; on Spark and in the spec tests the expression is inlined.
    """

    name: str
    build: Callable

    def __call__(self, src, as_of):
        done = src.shared.get(self.name)
        return done if done is not None else self.build(src, as_of)


SHARED: list[Shared] = []


def shared(name: str) -> Callable[[Callable], Shared]:
    """Decorator: register ``fn(sources, as_of) -> table`` as the shared table ``name``."""

    def wrap(fn: Callable) -> Shared:
        if any(s.name == name for s in SHARED):
            raise ValueError(f"shared table {name} registered twice")
        s = Shared(name, fn)
        SHARED.append(s)
        return s

    return wrap
