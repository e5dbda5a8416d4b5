"""StudySpec: what a sweep searches, how it samples, prunes and ranks, validated up front.

A spec is YAML with these sections (unknown keys are errors everywhere)::

    name: receipts-dbnet
    search_space:                     # Optuna parameter names are these keys
      lr: {low: 1.0e-4, high: 1.0e-3, log: true}
      T_max: {low: 18, high: 24}      # int: the train-config field is an int
      postprocess.unclip_ratio: {low: 1.5, high: 2.5}
      model.backbone: {choices: [resnet18, resnet34]}
    sampler: {seed: 0, n_startup_trials: 10, multivariate: true}   # TPE
    pruner: {min_resource: 2, reduction_factor: 3}                 # Hyperband, in epochs
                                      # (kind: hyperband, successive_halving or none)
    budget: {n_trials: 60, timeout_s: 86400}
    retries: {max_retries: 2}
    ranking: {gap_source: holdout, penalty: 1.0, tolerance: 0.005}
    baselines: [{lr: 3.85e-4, T_max: 22, ...}]                     # enqueued first
    postprocess_search: {thresh: {low: 0.2, high: 0.4, step: 0.01}}  # tune-postprocess
    retention: {keep_pruned: 3, top_k: 10, outside_top: none}      # checkpoints kept
    base: {...}                       # a trainer_core TrainConfig

Search-space names are dotted TrainConfig paths (``optimizer.backbone_lr_mult``) or the
short names ``lr``, ``weight_decay``, ``T_max`` and ``eta_min``. A range is an int range
when the field is an int, else a float range.

The models are in :mod:`sweeper.spec.models`, the rules that span sections (each failing
with a :class:`~sweeper.errors.SpecError` that names the field) in :mod:`sweeper.spec.rules`,
and reading a file in :mod:`sweeper.spec.loading`.
"""

from sweeper.spec.loading import load_spec
from sweeper.spec.models import (
    POSTPROCESS_SEARCHED,
    SCHEMA_VERSION,
    SHORT_NAMES,
    BudgetSpec,
    ParamSpec,
    PostprocessSearchSpec,
    PrunerSpec,
    RankingSpec,
    RetentionSpec,
    RetriesSpec,
    SamplerSpec,
    StudySpec,
    parse_spec,
)

__all__ = [
    "POSTPROCESS_SEARCHED",
    "SCHEMA_VERSION",
    "SHORT_NAMES",
    "BudgetSpec",
    "ParamSpec",
    "PostprocessSearchSpec",
    "PrunerSpec",
    "RankingSpec",
    "RetentionSpec",
    "RetriesSpec",
    "SamplerSpec",
    "StudySpec",
    "load_spec",
    "parse_spec",
]
