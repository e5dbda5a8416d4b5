"""Define a sweep: the study spec, creating and loading its study, the pre-flight check,
Hyperband's brackets and the trial budget, and a trial's config from its sampled params.
"""

from sweeper._lazy import LazyExports

_exports = LazyExports(__name__, globals())
_exports.add("_brackets", "Bracket", "brackets", "ideal_saving", "rungs")
_exports.add(
    "_budget", "OverBudget", "budget_left", "claim_budget", "finished_chains", "given_back"
)
_exports.add("_budget", "spent_device_s")
_exports.add("_check", "check_spec")
_exports.add("_schedule_pruner", "SchedulePhasePruner", "interpolated_value", "phase_fractions")
_exports.add("_schedule_pruner", "best_so_far_pruner", "schedule_aware_pruner")
_exports.add("_spec", "BudgetSpec", "POSTPROCESS_SEARCHED", "ParamSpec", "PostprocessSearchSpec")
_exports.add("_spec", "PrunerSpec", "RankingSpec", "RetentionSpec", "RetriesSpec", "SCHEMA_VERSION")
_exports.add("_spec", "SHORT_NAMES", "SamplerSpec", "StudySpec", "parse_spec")
_exports.add("_spec_file", "load_spec")
_exports.add("_spec_rules", "check_rules", "t_max_warning")
_exports.add("_study", "METRIC_NAME", "build_pruner", "build_sampler", "create_study")
_exports.add("_study", "delete_study", "delete_sweep", "find_study_id", "linked_studies")
_exports.add("_study", "load_study", "sampler_seed", "study_key", "study_pictures")
_exports.add("_tracking_spec", "MlflowTracking", "TRACKERS", "TensorboardTracking", "Tracker")
_exports.add("_tracking_spec", "TrackingSpec", "WandbTracking", "missing_tracker_extra")
_exports.add("_tracking_spec", "tracking_from_flags")
_exports.add("_trial_config", "suggest_params", "trial_config")
__all__ = _exports.names
__getattr__ = _exports.get
