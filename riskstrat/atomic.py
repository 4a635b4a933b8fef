"""Files that are either absent, the old complete version or the new complete version.

Every output riskstrat writes goes first to a partial path beside it (``.<name>.partial``)
and is renamed into place only when complete, so a run that stops part-way never leaves a
half-written table, report or vault where a reader would take it for a whole one. This is
the one place that rule is written: :func:`replacing` for writers that need a path (Parquet
writers, Spark), :func:`write_private` for small identifiable files (owner-only, 0600).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PRIVATE_FILE_MODE", "move_into_place", "partial_path", "replacing", "write_private"]

#: permissions of a file that holds NHS numbers or keys: the owner may read and write it, no one else
PRIVATE_FILE_MODE = 0o600


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is complete: ``.<name>.partial`` beside it."""
    return path.with_name(f".{path.name}.partial")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def move_into_place(partial: Path, path: Path) -> None:
    """Rename the complete ``partial`` onto ``path`` (a file, or a directory of parts as
    Spark writes a table; a directory at ``path`` is removed first, as a rename cannot
    replace a non-empty one)."""
    if partial.is_dir() and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(partial, path)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """The partial path to write ``path`` to; moved onto ``path`` when the block finishes.

    A partial left by an earlier run that stopped is removed first; if the block raises,
    the partial is removed and ``path`` is left as it was.
    """
    partial = partial_path(path)
    _remove(partial)
    try:
        yield partial
    except BaseException:
        _remove(partial)
        raise
    move_into_place(partial, path)


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8, newlines as given) to ``path``, readable by the owner only
    (:data:`PRIVATE_FILE_MODE`), synced to disk before it is renamed into place."""
    partial = partial_path(path)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(partial, PRIVATE_FILE_MODE)  # an older partial may have had wider permissions
    os.replace(partial, path)
