"""Running a stage in a process of its own, whose memory goes back to the machine when it ends.

Pseudonymisation streams a quarter of a billion rows through Arrow in batches of a million, and
every batch's buffers (a million 64-character pseudonyms are 64 MB) are freed before the next
batch asks for the same again. With Arrow's own jemalloc setting those pages go back to the
machine at once and come back as fresh pages, one page fault each: at 2,000,000 people × 7 years
in date order, 21.5 million faults and 100 s of system time in a 327 s stage. Told to keep freed
memory (:data:`KEEP_ARROW_MEMORY`), jemalloc reuses the pages: 2.5 million faults, 43 s of system
time and 263 s. But kept memory stays with the process, and in ``riskstrat run`` every later stage
would carry Arrow's high-water mark: the whole run's peak rose from 6.2 to 8.5 GB
(``docs/performance.md``). jemalloc reads its setting once, when it starts, so it cannot be
turned on for one stage of a process: the stage gets a process of its own, started with the
setting, and its memory, kept or not, is the machine's again when the stage ends. The identifiable
extracts are also never in the main process's memory.

:func:`in_own_process` runs a stage function that way, as if it were called here: the same
arguments (keys included, passed through a pipe to the child, never through its environment or
a file), its progress shown here, its result returned, its exception raised here (with the
child's traceback as a note, for ``--verbose``), and the child's memory counted in the stage's
peak (:func:`riskstrat.stages.clock.attached`).

Written by hand, on :mod:`subprocess` and a :mod:`multiprocessing` pipe: ``multiprocessing``'s own
processes (and :class:`concurrent.futures.ProcessPoolExecutor`) start by importing the caller's
main script again, which runs a script without an ``if __name__ == "__main__"`` guard a second
time, inside the child; they also cannot pass a callback (the progress) while a call runs.
The child here is a new interpreter that imports only riskstrat, on the caller's import path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any

from riskstrat.errors import ResourceError
from riskstrat.stages.clock import attached
from riskstrat.stages.resources import stage as named

__all__ = ["JEMALLOC_CONF_ENV", "KEEP_ARROW_MEMORY", "in_own_process"]

#: the environment variable that configures the jemalloc inside pyarrow (read once, when it starts)
JEMALLOC_CONF_ENV = "JE_ARROW_MALLOC_CONF"
#: jemalloc (inside pyarrow) keeps the memory Arrow frees, for Arrow's next buffers
KEEP_ARROW_MEMORY = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
_POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def in_own_process(stage: str, function: Callable[..., Any], *args, progress=None, **kwargs) -> Any:
    """``function(*args, progress=..., **kwargs)`` in a new process (see the module docstring).

    ``stage`` names the stage for a one-line error when the process is killed (by the kernel's
    out-of-memory killer, say) instead of ending. ``progress``, when given, is called here with
    what the function passes to its own ``progress``. A user's own ``JE_ARROW_MALLOC_CONF`` is
    kept."""
    ours, theirs = Pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    env.setdefault(JEMALLOC_CONF_ENV, KEEP_ARROW_MEMORY)
    child = subprocess.Popen(
        [sys.executable, "-c", f"from {__name__} import _serve; _serve({theirs.fileno()}, {os.getpid()})"],
        pass_fds=[theirs.fileno()],
        env=env,
    )
    theirs.close()
    try:
        with attached(child.pid), named(stage):
            ours.send((function, args, kwargs, progress is not None))
            return _wait(child, ours, progress, stage)
    finally:
        if child.poll() is None:  # interrupted here (Ctrl-C), or a failure here: the child stops too
            child.terminate()
        child.wait()
        ours.close()


def _wait(child: subprocess.Popen, conn: Connection, progress, stage: str) -> Any:
    while True:
        if not conn.poll(_POLL_SECONDS):
            if child.poll() is not None and not conn.poll():
                raise _ended(child.returncode, stage)
            continue
        try:
            kind, value = conn.recv()
        except EOFError:  # the child ended while sending
            child.wait()
            raise _ended(child.returncode, stage) from None
        if kind == "progress":
            progress(*value)
        elif kind == "result":
            return value
        else:
            raise value


def _ended(code: int, stage: str) -> BaseException:
    """The error for a child that ended without a result."""
    if code == -signal.SIGKILL:
        return ResourceError(
            f"{stage}: the stage's process was killed by the system (signal 9), as Linux does when the "
            "machine runs out of memory: free memory (close other programs) or use a larger machine, "
            "then run again; finished stages are kept"
        )
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    return RuntimeError(f"{stage}: the stage's process ended without a result ({how})")


def _serve(fd: int, parent: int) -> None:
    """The child: receive the call, make it, send back its result or its exception. It ends
    with its parent: a run killed (by the out-of-memory killer, or ``kill -9``) leaves no stage
    writing into the work directory that the next run takes over."""
    _end_with(parent)
    conn = Connection(fd)
    function, args, kwargs, report_progress = conn.recv()
    if report_progress:
        kwargs = {**kwargs, "progress": lambda *value: conn.send(("progress", value))}
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:  # every failure is the caller's to report, as it is
        conn.send(("error", _portable(exc)))
    else:
        conn.send(("result", result))
    conn.close()


def _end_with(parent: int) -> None:
    """Ask Linux to kill this process when its parent ends (``prctl(PR_SET_PDEATHSIG)``; the
    thread that started it, here always the main one); end now if it already has."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's ``finally`` is all
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` with the child's traceback as a note, as it will arrive in the parent: itself when
    it survives pickling (its attributes too: the stage's name, whether it was audited), else a
    RuntimeError that names it."""
    with contextlib.suppress(Exception):
        exc.add_note("".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        plain = RuntimeError(f"{type(exc).__name__}: {exc}")
        plain.__dict__.update({k: v for k, v in vars(exc).items() if _picklable(v)})
        return plain


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
