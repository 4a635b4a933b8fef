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
from pathlib import Path

from riskstrat.duck import MEMORY_ENV, memory_in_force
from riskstrat.errors import ResourceError, RiskstratError

__all__ = ["as_resource_error", "named_stage", "stage", "usable_directory"]

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
        return ResourceError(
            f"{where}: out of memory (DuckDB memory limit {memory_in_force()}, {_total_memory()} on this machine): "
            f"set {MEMORY_ENV} higher (e.g. 8GB) or free memory, then run again; finished stages are kept"
        )
    if _is_out_of_disk(exc):
        return ResourceError(
            f"{where}: no space left on the disk ({getattr(exc, 'filename', None) or 'the work directory'}): "
            "free space or use a work directory on a larger disk, then run again; finished stages are kept"
        )
    if isinstance(exc, OSError) and exc.errno in _PATH_ERRORS:
        return ResourceError(
            f"{where}: cannot write {exc.filename or 'a file'} ({_PATH_ERRORS[exc.errno]}): "
            "choose a place you can write to, or fix its permissions, then run again"
        )
    return None


_PATH_ERRORS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "a file is in the way",
}


def usable_directory(path: Path, option: str) -> None:
    """Make ``path`` (a folder riskstrat writes to) or say in one line why it cannot be used."""
    if path.exists() and not path.is_dir():
        raise RiskstratError(f"{path}: is a file, not a folder: give {option} a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RiskstratError(f"{path}: a part of the path is a file: give {option} a folder") from None
    except NotADirectoryError:
        raise RiskstratError(f"{path}: a part of the path is a file, not a folder: give {option} a folder") from None
    except PermissionError:
        raise ResourceError(f"{path}: cannot create the folder (permission denied): choose another {option}") from None
    except OSError as exc:
        raise RiskstratError(f"{path}: cannot create the folder ({exc.strerror}): choose another {option}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ResourceError(f"{path}: cannot write there (permission denied): choose another {option}")


def _total_memory() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "unknown memory"
    return f"{pages * size / 2**30:.0f} GB"
