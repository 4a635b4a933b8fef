"""riskstrat: population risk stratification for the NHS.

SUS+ and GP extracts (data contract v1) are validated, pseudonymised and linked, turned
into as-of features, and used to train, score and explain emergency-admission risk models;
outputs go to GP practices (their own patients, for direct care) and to commissioners
(pseudonymised, with small-number suppression).
"""

import os

__version__ = "0.1.0"

#: the environment variable with which a user chooses Arrow's memory pool (Arrow's own name)
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def _use_system_memory_pool() -> None:
    """Arrow's buffers from the C library's allocator rather than Arrow's default, mimalloc.

    Measured on the 2-core benchmark machine (pyarrow 25): the 1.3-million-person feature table
    took 13 s to read with ``pq.read_table`` and 7 s to turn into pandas with mimalloc, against
    about 1 s and 0.5 s with the system allocator or jemalloc (``docs/performance.md``). The
    system allocator is on every platform. A user who sets ``ARROW_DEFAULT_MEMORY_POOL`` keeps
    their choice."""
    if ARROW_POOL_ENV in os.environ:
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


_use_system_memory_pool()
