"""Per-person features as of a date, one definition on DuckDB and on Spark.

:func:`feature_table` cuts the sources at ``D`` once (:func:`~riskstrat.features.asof.cut`),
takes the population at ``D``, runs every registered builder on the cut sources, left-joins
each onto the population and fills each feature's declared default. The data dictionary
(``docs/features.md``) is generated from the same registry (:func:`data_dictionary`).
"""

from __future__ import annotations

import datetime as dt

import ibis

from riskstrat.features import builders as _builders  # noqa: F401 - registers the builders
from riskstrat.features.asof import Sources, cut, population
from riskstrat.features.registry import BUILDERS, DAYS_SINCE_NONE, Builder, Dtype, Feature, all_features

__all__ = [
    "BUILDERS",
    "DAYS_SINCE_NONE",
    "Builder",
    "Feature",
    "assemble",
    "data_dictionary",
    "feature_names",
    "feature_table",
    "filled",
    "part",
]

_IBIS_TYPES = {Dtype.INT: "int64", Dtype.FLOAT: "float64", Dtype.STRING: "string"}


def feature_names() -> list[str]:
    return [f.name for _, f in all_features()]


def _finish(expr: ibis.Value, f: Feature) -> ibis.Value:
    return expr.fill_null(f.default).cast(_IBIS_TYPES[f.dtype]).name(f.name)


def part(cut_src: Sources, as_of: dt.date, builder: Builder) -> ibis.Table:
    """One builder's features for sources already cut at ``as_of``: ``pseudonym`` and its
    features, for the people it has records for (no defaults yet)."""
    return builder.build(cut_src, as_of).select("pseudonym", *builder.feature_names)


def filled(raw_part: ibis.Table, builder: Builder) -> ibis.Table:
    """``builder``'s :func:`part` with its declared defaults filled and declared types, still
    only for the people it has records for (the people without records take the defaults when
    the part is put beside the population: :func:`assemble`, or the DuckDB feature stage)."""
    return raw_part.select("pseudonym", *[_finish(raw_part[f.name], f) for f in builder.features])


def assemble(cut_src: Sources, as_of: dt.date, builders: list[Builder] | None = None) -> ibis.Table:
    """Feature table for sources already cut at ``as_of`` (one row per person at D)."""
    builders = builders or BUILDERS
    out = population(cut_src, as_of).select("pseudonym")
    for b in builders:
        out = out.left_join(part(cut_src, as_of, b), "pseudonym")
    cols = [_finish(out[f.name], f) for b in builders for f in b.features]
    return out.select("pseudonym", *cols).order_by("pseudonym")


def feature_table(src: Sources, as_of: dt.date, builders: list[Builder] | None = None) -> ibis.Table:
    """Features of the population at ``as_of`` from full (uncut) sources."""
    return assemble(cut(src, as_of), as_of, builders)


def data_dictionary(with_kinds: bool = True) -> str:
    """The data dictionary (``docs/features.md``); ``with_kinds=False`` leaves out each reason's
    kind, which changes no feature's value (the feature stage's fingerprint of the definitions)."""
    lines = [
        "# Feature data dictionary (generated from `riskstrat/features`)",
        "",
        "Every feature is computed from records dated strictly before the as-of date D (the cut in",
        "`riskstrat/features/asof.py`), for the population at D, one row per `pseudonym`.",
        "",
    ]
    if with_kinds:
        lines += [
            "The reason kind says what the feature is as a reason on a practice list: *actionable* (something",
            "the practice could act on now) or *background* (`riskstrat/features/registry.py:ReasonKind`).",
            "",
        ]
    kind_head, kind_rule = (" reason kind |", "---|") if with_kinds else ("", "")
    lines += [
        f"| feature | builder | source | definition | window | default | type |{kind_head}",
        f"|---|---|---|---|---|---|---|{kind_rule}",
    ]
    for b, f in all_features():
        kind = f" {f.kind} |" if with_kinds else ""
        lines.append(
            f"| `{f.name}` | {b.name} | {', '.join(b.sources)} | {f.definition} | {f.window} | "
            f"{f.default!r} | {f.dtype} |{kind}"
        )
    return "\n".join(lines) + "\n"
