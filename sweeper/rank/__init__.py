"""Rank a sweep: the ranking rules, the ranked table's data, what pruning saved, progress
summaries for ``studies`` and ``status``, and the simulations that measure the rules.
"""

from sweeper._lazy import LazyExports

_exports = LazyExports(__name__, globals())
_exports.add("_progress", "RunningTrial", "STATES", "StudyStatus", "StudySummary", "list_studies")
_exports.add("_progress", "study_status")
_exports.add("_ranking", "PrunedTrial", "RankedTrial", "Ranking", "best_trial", "export_best")
_exports.add("_ranking", "rank_study", "ranked_first")
_exports.add("_rules", "RULES", "RULE_LABELS", "Rule", "rule_value")
_exports.add("_spend", "NEAR_BEST", "SweepCost", "chain_costs", "sweep_cost")
_exports.add("_pruning_savings", "PruningSaving", "pruning_saving")
_exports.add("_policies", "POLICIES", "Policy", "make_policy")
_exports.add(
    "_replay", "Replay", "ReplayOutcome", "judge", "replay", "rung_correlation", "spearman"
)
_exports.add("_replay_study", "MIN_REPLAY_TRIALS", "SettingReplay", "StudyReplay", "replay_study")
_exports.add("_recorded", "RecordedAgreement", "recorded_agreement")
_exports.add(
    "_selection", "RuleSpec", "RuleSummary", "hmean_from_counts", "kendall_tau", "simulate"
)
__all__ = _exports.names
__getattr__ = _exports.get
