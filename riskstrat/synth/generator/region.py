"""The commissioning region: practices in PCNs under one sub-ICB, LSOAs, providers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from riskstrat.schema import TABLES, arrow_schema
from riskstrat.synth import params as P

__all__ = ["Region"]


@dataclass
class Region:
    """The commissioning region: practices in PCNs under one sub-ICB, LSOAs, providers."""

    practice_codes: np.ndarray
    practice_names: np.ndarray
    pcn_of_practice: np.ndarray
    pcn_codes: np.ndarray
    practice_weights: np.ndarray
    practice_lsoas: list[np.ndarray]
    lsoa_codes: np.ndarray
    lsoa_deciles: np.ndarray
    provider_codes: np.ndarray
    sub_icb: str = "99X"

    @classmethod
    def build(cls, patients: int, seed: int, practices: int | None = None) -> Region:
        rng = np.random.default_rng([seed, 7])
        registered = 0.70 * patients
        n_practices = practices or max(1, round(registered / P.PEOPLE_PER_PRACTICE))
        n_pcns = max(1, round(n_practices / P.PRACTICES_PER_PCN))
        sizes = rng.lognormal(0, 0.35, n_practices)
        weights = sizes / sizes.sum()
        practice_codes = np.array([f"Y{90000 + i:05d}" for i in range(n_practices)])
        pcn_codes = np.array([f"U{90000 + i:05d}" for i in range(n_pcns)])
        pcn_of_practice = np.sort(rng.integers(0, n_pcns, n_practices))
        pcn_of_practice[:n_pcns] = np.arange(n_pcns)  # every PCN has a practice
        n_lsoa = max(10, round(registered / P.PEOPLE_PER_LSOA))
        lsoa_codes = np.array([f"E01{900000 + i:06d}" for i in range(n_lsoa)])
        # Deprivation clusters geographically: each practice draws LSOAs near its own decile.
        lsoa_deciles = rng.integers(1, 11, n_lsoa)
        practice_decile = rng.integers(1, 11, n_practices)
        practice_lsoas = []
        for p in range(n_practices):
            near = np.flatnonzero(np.abs(lsoa_deciles - practice_decile[p]) <= 2)
            k = max(3, round(weights[p] * n_lsoa * 1.5))
            practice_lsoas.append(rng.choice(near, size=min(k, near.size), replace=False))
        return cls(
            practice_codes=practice_codes,
            practice_names=np.array([f"Synthetic Practice {i + 1}" for i in range(n_practices)]),
            pcn_of_practice=pcn_of_practice,
            pcn_codes=pcn_codes,
            practice_weights=weights,
            practice_lsoas=practice_lsoas,
            lsoa_codes=lsoa_codes,
            lsoa_deciles=lsoa_deciles,
            provider_codes=np.array([f"R9{chr(65 + i)}" for i in range(P.N_PROVIDERS)]),
        )

    def ref_practices(self) -> pa.Table:
        pcn = self.pcn_of_practice
        return pa.table(
            {
                "practice_code": self.practice_codes,
                "practice_name": self.practice_names,
                "pcn_code": self.pcn_codes[pcn],
                "pcn_name": np.array([f"Synthetic PCN {i + 1}" for i in pcn]),
                "sub_icb_code": np.full(pcn.shape, self.sub_icb),
            },
            schema=arrow_schema(TABLES["ref_practices"]),
        )

    def ref_providers(self) -> pa.Table:
        """The providers' names (contract v1.1): one per provider code the activity uses."""
        return pa.table(
            {
                "provider_code": self.provider_codes,
                "provider_name": np.array([f"Synthetic Hospitals NHS Trust {c[-1]}" for c in self.provider_codes]),
            },
            schema=arrow_schema(TABLES["ref_providers"]),
        )

    def ref_lsoa(self) -> pa.Table:
        return pa.table(
            {"lsoa_code": self.lsoa_codes, "imd_decile": self.lsoa_deciles.astype(np.int64)},
            schema=arrow_schema(TABLES["ref_lsoa"]),
        )
