"""Names of the trial attributes sweeper writes, in a module light enough for any command."""

from __future__ import annotations

__all__ = [
    "BASELINE_ATTR",
    "CONFIG_OVERRIDES_ATTR",
    "FAIL_REASON_ATTR",
    "HEARTBEAT_ATTR",
    "HOST_ATTR",
    "INTERRUPTED_ATTR",
    "OOM_RETRIES_ATTR",
    "OVER_BUDGET_ATTR",
    "POSTPROCESS_OF_ATTR",
    "PROMOTED_AT_ATTR",
    "PROMOTED_FROM_ATTR",
    "PROMOTE_CHECKPOINT_ATTR",
    "RECORDED_ATTR_PREFIX",
    "RESUMED_FROM_ATTR",
    "RESUME_REFUSED_ATTR",
    "SCHEMA_ATTR",
    "SPEC_ATTR",
    "TRACKING_RUNS_ATTR",
    "TUNED_ATTR",
    "TUNED_ATTR_PREFIX",
    "UUID_ATTR",
    "VERIFY_OF_ATTR",
    "VERIFY_OVERRIDE_KEYS",
    "VERIFY_SOURCE_ATTR",
    "WORKER_ID_ATTR",
]

# A trial's results (metrics, epochs, device, throughput) are sweeper.trial_result.TrialResult;
# these are the attributes about how it ran.

HOST_ATTR = "host"
"""The host of the worker that runs (or last ran) the trial."""

WORKER_ID_ATTR = "worker_id"
"""That worker's fleet-wide id (sweeper.run._worker.worker_identity)."""

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

VERIFY_OVERRIDE_KEYS = ("seed", "data.n_folds", "data.fold")
"""The only keys :data:`CONFIG_OVERRIDES_ATTR` may set: what a verify re-run varies."""


PROMOTED_FROM_ATTR = "promoted_from"
"""On a promoted trial: the number of the pruned trial it continues."""

PROMOTED_AT_ATTR = "promoted_at_epoch"
"""On a promoted trial: the epochs its source had trained (the rest are this trial's)."""

PROMOTE_CHECKPOINT_ATTR = "promote_checkpoint"
"""On a promoted trial: the source's checkpoint folder, relative to the artifacts."""

BASELINE_ATTR = "baseline"
"""Trial user attribute on enqueued baselines: their index in ``spec.baselines``."""

SPEC_ATTR = "sweeper.spec"

SCHEMA_ATTR = "sweeper.schema_version"

UUID_ATTR = "sweeper.uuid"
"""A random id made at create time: a study re-created under the same name gets a new one,
so its checkpoints and logs never mix with the old study's (see :mod:`sweeper.paths`)."""

TUNED_ATTR_PREFIX = "sweeper.postprocess.trial-"

HEARTBEAT_ATTR = "heartbeat_at"
"""Trial user attribute: unix time of the worker's latest heartbeat (see :func:`keep_alive`)."""

VERIFY_SOURCE_ATTR = "verify_source"
"""On a re-run: the number of the sweep's trial whose config it repeats."""

TUNED_ATTR = "sweeper.tuned"
"""Study attribute of a post-processing search: what it found (:class:`TunedPostprocess`)."""

TRACKING_RUNS_ATTR = "tracking_runs"
"""The trial's runs in the spec's trackers, ``{"wandb": id, "mlflow": id, "tensorboard":
folder}``: a retry copies it and continues those runs instead of starting new ones."""

RECORDED_ATTR_PREFIX = "sweeper.test.trial-"
"""Study attribute per trial (``sweeper.test.trial-<N>``): the test or leaderboard scores
``sweeper record-test`` kept for it (:mod:`sweeper.recorded_scores`)."""
