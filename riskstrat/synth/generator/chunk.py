"""One chunk of people simulated over the whole period, with its own random stream."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from riskstrat.synth.generator.activity import Activity
from riskstrat.synth.generator.conditions import Conditions, _Codes
from riskstrat.synth.generator.medicines import Medicines, _Drugs
from riskstrat.synth.generator.options import SynthOptions
from riskstrat.synth.generator.population import People
from riskstrat.synth.generator.region import Region
from riskstrat.synth.generator.tables import ChunkResult, Tables

__all__ = ["simulate_chunk"]


def simulate_chunk(
    opts: SynthOptions, region: Region, nhs_numbers: np.ndarray, chunk: int, spell_offset: int
) -> ChunkResult:
    """Simulate one chunk of people over the whole period; returns contract tables."""
    return _Chunk(opts, region, nhs_numbers, chunk, spell_offset).run()


class _Chunk(People, Conditions, Medicines, Activity, Tables):
    """A chunk: its people, conditions and medicines, then the yearly simulation, then the tables
    (:meth:`run`; the alternative structure, ``alt.py``, overrides the steps it models differently)."""

    def __init__(self, opts: SynthOptions, region: Region, nhs: np.ndarray, chunk: int, spell_offset: int):
        self.o, self.r, self.nhs = opts, region, nhs
        self.m = nhs.shape[0]
        self.rng = np.random.default_rng([opts.seed, 1000 + chunk])
        self.chunk = chunk
        self.spell_offset = spell_offset
        self.nhs_arrow = pa.array(nhs, pa.string())
        self.drugs = _Drugs.load()
        self.codes = _Codes.load()

    def run(self) -> ChunkResult:
        self._people()
        self._conditions()
        self._medicines()
        self._simulate()
        return self._tables(self._gp_events, self._sus_op)
