"""Errors that riskstrat reports to its user as one clear line (never a traceback).

Each class of failure has its own exit code (:class:`ExitCode`), so a batch scheduler can
tell bad data from a missing key or a busy work directory without reading the message; the
table is in ``docs/cli.md``.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BusyError",
    "ConfigError",
    "ContractError",
    "ExitCode",
    "KeyMissingError",
    "ResourceError",
    "RiskstratError",
]


class ExitCode(IntEnum):
    """The exit status of the ``riskstrat`` command, one per class of failure."""

    OK = 0
    #: bad input: an extract breaks data contract v1 (missing table or column, unreadable file:
    #: ``spec/interface.md`` fixes 1 for validate), or another problem with the input or set-up
    #: that no other code names (a path, a missing stage)
    INPUT = 1
    #: the command line itself: an unknown option, a bad option value (click's own code)
    USAGE = 2
    #: a configuration file or model specification is missing, malformed or names nothing real
    CONFIG = 4
    #: a pseudonymisation or vault key is missing, unreadable, too short or not the right key
    KEY = 5
    #: the machine ran out of memory or disk, or a place cannot be written
    RESOURCE = 6
    #: another riskstrat run holds the work directory
    BUSY = 7
    #: a bug in riskstrat (EX_SOFTWARE of sysexits.h)
    INTERNAL = 70
    #: stopped with Ctrl-C (128 + SIGINT)
    INTERRUPTED = 130


class RiskstratError(Exception):
    """A problem with the user's input or set-up; the CLI prints it as one line and exits
    with the class's ``exit_code``."""

    exit_code: ExitCode = ExitCode.INPUT


class ContractError(RiskstratError):
    """An extract cannot be read as data contract v1 (missing table or column, wrong type,
    unreadable file). Names the file and the problem."""

    exit_code = ExitCode.INPUT


class ConfigError(RiskstratError):
    """A configuration file is missing, malformed or names something that does not exist."""

    exit_code = ExitCode.CONFIG


class KeyMissingError(RiskstratError):
    """A key is missing, unreadable or too short, or data cannot be opened with the key given
    (the message never contains the key)."""

    exit_code = ExitCode.KEY


class ResourceError(RiskstratError):
    """The machine ran out of something (memory, disk) during a named stage, or a place
    cannot be written; says which setting to change. Finished stages are kept."""

    exit_code = ExitCode.RESOURCE


class BusyError(RiskstratError):
    """Another process holds what this one needs (the work directory's lock)."""

    exit_code = ExitCode.BUSY
