"""Errors that riskstrat reports to its user as one clear line (never a traceback)."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import inspect
import os
from collections.abc import Iterator

__all__ = [
    "DUCKDB_MEMORY_LIMIT",
    "ConfigError",
    "ContractError",
    "ResourceError",
    "RiskstratError",
    "as_resource_error",
    "stage",
]

#: DuckDB's memory limit unless RISKSTRAT_DUCKDB_MEMORY says otherwise (read by riskstrat.duck).
DUCKDB_MEMORY_LIMIT = "4GB"


class RiskstratError(Exception):
    """A problem with the user's input or set-up; the CLI prints it as one line, exit 1."""


class ContractError(RiskstratError):
    """An extract cannot be read as data contract v1 (missing table or column, wrong type,
    unreadable file). Names the file and the problem."""


class ConfigError(RiskstratError):
    """A configuration file is missing, malformed or names something that does not exist."""


class ResourceError(RiskstratError):
    """The machine ran out of something (memory, disk) during a named stage; says which
    setting to change. Finished stages are kept."""


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
        limit = os.environ.get("RISKSTRAT_DUCKDB_MEMORY", DUCKDB_MEMORY_LIMIT)
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
