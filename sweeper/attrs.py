"""Names of the trial attributes sweeper writes, in a module light enough for any command."""

from __future__ import annotations

__all__ = [
    "CONFIG_OVERRIDES_ATTR",
    "FAIL_REASON_ATTR",
    "HOST_ATTR",
    "INTERRUPTED_ATTR",
    "OOM_RETRIES_ATTR",
    "OVER_BUDGET_ATTR",
    "POSTPROCESS_OF_ATTR",
    "RESUMED_FROM_ATTR",
    "RESUME_REFUSED_ATTR",
    "VERIFY_OF_ATTR",
    "WORKER_ID_ATTR",
]

# A trial's results (metrics, epochs, device, throughput) are sweeper.trial_result.TrialResult;
# these are the attributes about how it ran.

HOST_ATTR = "host"
"""The host of the worker that runs (or last ran) the trial."""

WORKER_ID_ATTR = "worker_id"
"""That worker's fleet-wide id (sweeper.worker.worker_identity)."""

OOM_RETRIES_ATTR = "oom_retries"
"""How often the trial ran out of memory and went on with half the batch."""

RESUMED_FROM_ATTR = "resumed_from_epoch"
"""On a retry: the epoch of the checkpoint it resumed from."""

RESUME_REFUSED_ATTR = "resume_refused"
"""A checkpoint the trial found and did not resume (another config's), and why."""

FAIL_REASON_ATTR = "fail_reason"
"""Why a trial failed (non-finite loss, out of memory at batch 1, bad data, reaped)."""

INTERRUPTED_ATTR = "interrupted"
"""Set on a trial stopped by a signal; the worker re-queues it to resume elsewhere."""

OVER_BUDGET_ATTR = "over_budget"
"""Set on a trial started after the budget was spent elsewhere: given back, never trained."""

VERIFY_OF_ATTR = "sweeper.verify_of"
"""Study attribute of a verify study: the name of the sweep it verifies."""

POSTPROCESS_OF_ATTR = "sweeper.postprocess_of"
"""Study attribute of a post-processing search: ``{"study": ..., "trial": N}``, what it tunes."""

CONFIG_OVERRIDES_ATTR = "config_overrides"
"""On an enqueued trial: dotted TrainConfig paths set on top of its parameters (the seed or
fold of a ``sweeper verify`` re-run)."""
