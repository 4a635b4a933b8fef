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


def _choose_memory_pool() -> None:
    """Arrow's buffers from jemalloc (or, where pyarrow is built without it, the C library's
    allocator) rather than Arrow's default, mimalloc.

    Measured on the 2-core benchmark machine (pyarrow 25): the 1.3-million-person feature table
    took 13 s to read with ``pq.read_table`` and 7 s to turn into pandas with mimalloc, against
    about 1 s and 0.5 s with jemalloc or the system allocator. Over the whole monthly run at
    2 million people, jemalloc gave 631 s and 6.35 GB at peak against 676 s and 7.02 GB with the
    system allocator (``docs/performance.md``). A user who sets ``ARROW_DEFAULT_MEMORY_POOL``
    keeps their choice."""
    if ARROW_POOL_ENV in os.environ:
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc (Windows)
        pa.set_memory_pool(pa.system_memory_pool())


_choose_memory_pool()
