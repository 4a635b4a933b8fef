"""Naming the stage under way, and turning running out of memory or disk into one line.

Stages run inside :func:`stage` (or are decorated with :func:`named_stage`); when an
exception leaves a stage it is tagged with that stage's name (the innermost one), so the CLI
can say where the machine ran out of what, and which setting to change, instead of printing a
traceback (:func:`as_resource_error`).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import inspect
import os
from collections.abc import Iterator

from riskstrat.duck import MEMORY_LIMIT
from riskstrat.errors import ResourceError

__all__ = ["as_resource_error", "named_stage", "stage"]

_STAGE_ATTRIBUTE = "riskstrat_stage"
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("riskstrat_stage", default=None)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the stage under way, for :func:`as_resource_error`."""
    token = _STAGE.set(name)
    try:
        yield
    except BaseException as exc:
        if not hasattr(exc, _STAGE_ATTRIBUTE):  # the innermost stage names it
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, _STAGE_ATTRIBUTE, name)
        raise
    finally:
        _STAGE.reset(token)


def named_stage(name: str):
    """Decorator: run a stage function inside :func:`stage`, named ``name`` and, when the
    function takes one, its ``as_of`` date (e.g. "features at 2026-10-01")."""

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            as_of = signature.bind_partial(*args, **kwargs).arguments.get("as_of")
            with stage(f"{name} at {as_of}" if as_of else name):
                return fn(*args, **kwargs)

        return inner

    return wrap


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):  # Python's, and pyarrow's ArrowMemoryError
        return True
    text = str(exc)
    return type(exc).__name__ == "OutOfMemoryException" or "std::bad_alloc" in text or "Out of Memory Error" in text


def _is_out_of_disk(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(exc)


def as_resource_error(exc: BaseException) -> ResourceError | None:
    """One line for running out of memory or disk in the stage under way; None for anything else."""
    where = getattr(exc, _STAGE_ATTRIBUTE, None) or _STAGE.get() or "riskstrat"
    if _is_out_of_memory(exc):
        limit = os.environ.get("RISKSTRAT_DUCKDB_MEMORY", MEMORY_LIMIT)
        return ResourceError(
            f"{where}: out of memory (DuckDB memory limit {limit}, {_total_memory()} on this machine): "
            "set RISKSTRAT_DUCKDB_MEMORY higher (e.g. 8GB) or free memory, then run again; finished stages are kept"
        )
    if _is_out_of_disk(exc):
        return ResourceError(
            f"{where}: no space left on the disk ({getattr(exc, 'filename', None) or 'the work directory'}): "
            "free space or use a work directory on a larger disk, then run again; finished stages are kept"
        )
    return None


def _total_memory() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "unknown memory"
    return f"{pages * size / 2**30:.0f} GB"
