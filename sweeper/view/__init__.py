"""What the terminal shows: tables fitted to its width, the rank, status and verify tables,
the selection plot, and the dashboard launcher.
"""

from sweeper._lazy import LazyExports

_exports = LazyExports(__name__, globals())
_exports.add("_dashboard", "run_dashboard")
_exports.add("_predict_report", "image_progress", "print_evaluation", "print_prediction")
_exports.add("_predict_report", "print_recorded")
_exports.add("_rank_table", "print_ranking")
_exports.add("_replay_table", "ReplayFormat", "print_replay")
_exports.add("_selection_plot", "selection_png")
_exports.add("_show_rank", "Format", "show_rank")
_exports.add("_status_table", "print_status", "print_studies")
_exports.add("_tables", "Column", "FittedTable", "fit_table", "print_fitted")
_exports.add("_tuned_report", "print_tuned")
_exports.add("_verify_table", "print_verify")
__all__ = _exports.names
__getattr__ = _exports.get
