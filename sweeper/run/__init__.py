"""Run trials: the worker loop and its process supervisor, the objective (ask -> config ->
fit -> result -> tell), a trial's checkpoints, heartbeats and reaping, retention, pictures,
and ``sweeper train``.
"""

from sweeper._lazy import LazyExports

_exports = LazyExports(__name__, globals())
_exports.add("_checkpoints", "artifacts_problem", "os_error_reason", "resume_mismatch")
_exports.add("_checkpoints", "seed_promoted_checkpoint")
_exports.add("_cost", "CostLedger")
_exports.add("_node", "run_node")
_exports.add("_objective", "DiskError", "Interrupted", "Objective", "TrialFailed", "WillRepeat")
_exports.add("_objective", "WorkerContext", "trial_result")
_exports.add("_options", "WorkerLimits", "WorkerOptions")
_exports.add("_pictures", "GT_COLOR", "PRED_COLOR", "detections_png", "learning_curve_png")
_exports.add("_reap", "beating", "fail_and_requeue", "keep_alive", "reap_loop", "reap_stale")
_exports.add("_retention", "DiskUsage", "apply_retention", "checkpoint_usage", "retention_callback")
_exports.add("_supervisor", "ChildState", "Slot", "plan_slots", "restart_delay", "run_workers")
_exports.add("_tracking", "Backend", "MlflowBackend", "RunInfo", "TensorboardBackend")
_exports.add("_tracking", "TrackedRun", "WandbBackend", "epoch_metrics", "flatten")
_exports.add("_tracking", "open_trackers")
_exports.add("_train", "run_training", "summary_table")
_exports.add("_worker", "StudyDeleted", "WorkerStopped", "run_worker")
_exports.add("_worker", "worker_identity", "worker_process_main")
__all__ = _exports.names
__getattr__ = _exports.get
