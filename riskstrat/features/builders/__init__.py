"""Importing this package registers every builder, in a fixed order."""

from riskstrat.features.builders import (
    ae,
    apc,
    costs,
    demographics,
    gp_events,
    history,
    medications,
    medicine_history,
    op,
)

__all__ = ["ae", "apc", "costs", "demographics", "gp_events", "history", "medications", "medicine_history", "op"]
