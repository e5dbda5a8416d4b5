"""Names of the trial attributes sweeper writes, in a module light enough for any command."""

from __future__ import annotations

__all__ = ["CONFIG_OVERRIDES_ATTR", "FAIL_REASON_ATTR", "INTERRUPTED_ATTR", "OVER_BUDGET_ATTR"]

FAIL_REASON_ATTR = "fail_reason"
"""Why a trial failed (non-finite loss, out of memory at batch 1, bad data, reaped)."""

INTERRUPTED_ATTR = "interrupted"
"""Set on a trial stopped by a signal; the worker re-queues it to resume elsewhere."""

OVER_BUDGET_ATTR = "over_budget"
"""Set on a trial started after the budget was spent elsewhere: given back, never trained."""

CONFIG_OVERRIDES_ATTR = "config_overrides"
"""On an enqueued trial: dotted TrainConfig paths set on top of its parameters (the seed or
fold of a ``sweeper verify`` re-run)."""
