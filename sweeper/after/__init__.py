"""After the sweep: promote a pruned trial, verify the top configs over seeds or folds, tune
the post-processing of a trial, predict and evaluate with a trial or an ensemble, and keep
the test scores that come back.
"""

from sweeper._lazy import LazyExports

_exports = LazyExports(__name__, globals())
_exports.add("_postprocess", "pick_trials", "run_search", "search_study_name", "trial_checkpoint")
_exports.add("_postprocess", "tune_postprocess")
_exports.add("_predict", "Evaluation", "ModelSource", "Models", "Prediction", "evaluate_folder")
_exports.add("_predict", "predict_folder", "resolve_models")
_exports.add("_promote", "promote_trial")
_exports.add("_record_test", "Recorded", "record_test")
_exports.add("_verify", "Enqueued", "Spread", "VerifiedConfig", "VerifyReport", "enqueue_verify")
_exports.add("_verify", "source_study_name", "verify_report", "verify_study_name")
__all__ = _exports.names
__getattr__ = _exports.get
