"""The opt-out policy: which patient objections exclude a person from which uses.

Two kinds of objection arrive in ``opt_outs``: ``type1`` (recorded at the GP practice:
no identifiable data to leave the practice for purposes beyond the patient's direct care)
and ``ndoo`` (the national data opt-out: no use of confidential patient information for
research and planning). The policy maps each to the uses it excludes a person from:

* ``training`` — model development (a secondary use),
* ``scoring`` — the monthly population risk scores,
* ``direct_care`` — practice risk lists, for the patient's own clinicians,
* ``commissioner`` — pseudonymised cohort tables and aggregates for commissioners.

The default excludes both kinds from everything (the data sharing agreements say objections
are upheld, and type 2 objections — now the national data opt-out — are applied before
identifiable data leaves the DSCRO). ``docs/privacy.md`` explains the NHS rules that may
justify a narrower policy. A person excluded from every use is removed before
pseudonymisation; a person excluded from some uses stays, flagged per use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DEFAULT_POLICY", "UNREADABLE", "OptOutPolicy", "OptOutType", "Use", "exclusions"]

#: the type given to an objection whose row could not be read in full but whose NHS number
#: could: it excludes the person from every use
UNREADABLE = "unreadable"


class Use(StrEnum):
    TRAINING = "training"
    SCORING = "scoring"
    DIRECT_CARE = "direct_care"
    COMMISSIONER = "commissioner"


class OptOutType(StrEnum):
    TYPE1 = "type1"
    NDOO = "ndoo"


@dataclass(frozen=True)
class OptOutPolicy:
    """For each objection type, the uses it excludes a person from."""

    excludes: dict[OptOutType, frozenset[Use]] = field(default_factory=lambda: {t: frozenset(Use) for t in OptOutType})

    def uses_excluded(self, types: set[str]) -> frozenset[Use]:
        """The uses ``types`` of objection exclude a person from; an objection of a type the
        policy does not know (e.g. a row that could not be read: :data:`UNREADABLE`) excludes
        from every use: objections fail closed."""
        out: set[Use] = set()
        for t in types:
            known = t in {k.value for k in OptOutType}
            out |= self.excludes.get(OptOutType(t), frozenset()) if known else frozenset(Use)
        return frozenset(out)

    def to_dict(self) -> dict[str, list[str]]:
        return {t.value: sorted(u.value for u in uses) for t, uses in self.excludes.items()}


DEFAULT_POLICY = OptOutPolicy()


def exclusions(identifiers: pa.Array, types: pa.Array, policy: OptOutPolicy) -> pa.Table:
    """Per person (identifier), the uses their objections exclude them from.

    Returns a table ``identifier``, one boolean column per :class:`Use`, and ``all_uses``
    (excluded from every use: removed before pseudonymisation).
    """
    tbl = pa.table({"identifier": identifiers, "opt_out_type": types})
    grouped = tbl.group_by("identifier").aggregate([("opt_out_type", "distinct")])
    ids = grouped["identifier"]
    kinds = grouped["opt_out_type_distinct"].to_pylist()
    cols: dict[str, pa.Array] = {"identifier": ids}
    excluded = [policy.uses_excluded(set(k)) for k in kinds]
    for use in Use:
        cols[use.value] = pa.array([use in e for e in excluded], pa.bool_())
    cols["all_uses"] = pa.array([e == frozenset(Use) for e in excluded], pa.bool_())
    out = pa.table(cols)
    any_use = pc.or_(pc.or_(out["training"], out["scoring"]), pc.or_(out["direct_care"], out["commissioner"]))
    return out.filter(any_use)
