"""A synthetic NHS population in data contract v1, with the true risk of every person.

The population is simulated in yearly steps ending on the extract date ``E``; step ``k``
starts on the as-of date ``B_k = E - 365 * (years - k)``. At each ``B_k`` every person's
hazard of an emergency admission over ``[B_k, B_k + 365)`` is a fixed function of what
their record shows strictly before ``B_k`` (age, sex, deprivation, coded conditions and
frailty deficits, care home, smoking, prior emergency admissions and A&E attendances,
distinct medicines in the last 6 months), with interactions; admissions are drawn from it.
So the written true probability (``truth/true_risk.parquet``) is the best any model of the
extracts could do: the ceiling against which riskstrat's models are judged.

People are simulated in independent chunks (default 100,000), each with its own random
stream derived from the seed, so memory stays bounded and output is reproducible.
Every NHS number is synthetic (:func:`riskstrat.privacy.nhs_number.synthetic_nhs_numbers`).

The generator is split by concern, one module each: :mod:`.options` (what to generate),
:mod:`.region` (practices, PCNs, LSOAs), :mod:`.population` (people), :mod:`.conditions`,
:mod:`.medicines`, :mod:`.activity` (the yearly simulation and the true risk) and
:mod:`.tables` (writing the contract tables); :mod:`.chunk` puts them together. Every
coefficient lives in :mod:`riskstrat.synth.params`.
"""

from __future__ import annotations

from riskstrat.synth.generator.activity import _Events
from riskstrat.synth.generator.chunk import _Chunk, simulate_chunk
from riskstrat.synth.generator.options import DEFAULT_EXTRACT_DATE, NEVER, YEAR, SynthOptions, day_number
from riskstrat.synth.generator.region import Region
from riskstrat.synth.generator.tables import ChunkResult, _drop_duplicates, _pick

__all__ = [
    "DEFAULT_EXTRACT_DATE",
    "NEVER",
    "YEAR",
    "ChunkResult",
    "Region",
    "SynthOptions",
    "_Chunk",
    "_Events",
    "_drop_duplicates",
    "_pick",
    "day_number",
    "simulate_chunk",
]
