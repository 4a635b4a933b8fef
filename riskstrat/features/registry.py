"""Feature builders: one family per source, registered with the features they declare.

Every builder has one signature, ``builder(sources, as_of) -> ibis table``: it receives
sources already cut at the as-of date (:func:`riskstrat.features.asof.cut`, applied once,
centrally) and returns one row per person it has records for, keyed by ``pseudonym``. The
assembler left-joins every builder onto the population at ``D`` and fills each feature's
declared default for people with no records. Builders are registered objects, never looked
up by building names from strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BUILDERS", "Builder", "Dtype", "Feature", "all_features", "register"]


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
