"""Errors that riskstrat reports to its user as one clear line (never a traceback)."""

from __future__ import annotations

__all__ = ["ConfigError", "ContractError", "ResourceError", "RiskstratError"]


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
