"""``sweeper rank`` and ``sweeper export-best``: close the loop on a sweep.

Completed trials are sorted by the penalized score (recomputed when the caller overrides
the spec's penalty or tolerance), pruned trials stay visible with the epoch they reached,
and failed trials are counted by reason.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.attrs import FAIL_REASON_ATTR, PROMOTED_FROM_ATTR
from sweeper.define import StudySpec, given_back
from sweeper.errors import StudyError
from sweeper.paths import recorded_folder
from sweeper.rank._pruning_savings import PruningSaving, pruning_saving
from sweeper.rank._recorded import RecordedAgreement, recorded_agreement
from sweeper.rank._rules import RULES, Rule, rule_value
from sweeper.rank._spend import SweepCost, sweep_cost
from sweeper.recorded_scores import RecordedScore, recorded_by_trial
from sweeper.trial_result import METRIC_ATTRS, TrialResult
from sweeper.tuned_postprocess import tuned_by_trial
from trainer_core.config import apply_overrides
from trainer_core.yaml_io import dump_yaml_text

SortKey = Rule
"""What completed trials are sorted by: ``score``, ``val``, ``holdout`` or ``mean``
(:mod:`sweeper.rank._selection`)."""


@dataclass(frozen=True)
class RankedTrial:
    number: int
    params: dict[str, Any]
    val_precision: float
    val_recall: float
    val_hmean: float
    gap_hmean: float
    gap: float
    score: float
    epochs: int
    gap_precision: float | None = None  # None: recorded before sweeper kept them
    gap_recall: float | None = None
    postprocess_tuned: dict[str, float | int] | None = None
    """The post-processing ``sweeper tune-postprocess`` found for it, if it was tuned."""
    recorded: list[RecordedScore] = field(default_factory=list)
    """Test or leaderboard scores it got back (``sweeper record-test``), by label."""

    def recorded_hmean(self, label: str) -> float | None:
        """The H-mean recorded under ``label``, if any."""
        return next((s.hmean for s in self.recorded if s.label == label), None)

    @property
    def recall_gap(self) -> float | None:
        """How much recall val overstates on the gap split (positive: recall fell there)."""
        return None if self.gap_recall is None else self.val_recall - self.gap_recall

    @property
    def precision_gap(self) -> float | None:
        """How much precision val overstates on the gap split."""
        return None if self.gap_precision is None else self.val_precision - self.gap_precision


@dataclass(frozen=True)
class PrunedTrial:
    number: int
    params: dict[str, Any]
    epoch: int
    last_hmean: float | None
    promoted_to: int | None = None
    """The trial continuing it (``sweeper promote``), if any."""
    val_hmean: float | None = None  # at its best epoch, and on the gap split there
    gap_hmean: float | None = None


@dataclass
class Ranking:
    """Ranked completed trials, the pruned ones, failure counts, and how the score was made."""

    study: str
    by: SortKey
    penalty: float
    tolerance: float
    completed: list[RankedTrial]
    pruned: list[PrunedTrial]
    failed: Counter[str] = field(default_factory=Counter)
    running: int = 0
    saving: PruningSaving | None = None
    """Epochs the finished trials trained against what they would have unpruned."""
    given_back: int = 0
    """Trials started after the budget was spent elsewhere and failed untrained; not failures."""
    cost: SweepCost | None = None
    """Device-hours spent, what pruning saved of them, and when the sweep neared its best."""
    recorded_agreement: list[RecordedAgreement] = field(default_factory=list)
    """Per label recorded on 2+ completed trials: what val overstated, which rule ordered
    them best."""

    @property
    def recorded_labels(self) -> list[str]:
        """The labels of the completed trials' recorded scores, first recorded first."""
        return list(dict.fromkeys(s.label for t in self.completed for s in t.recorded))

    def to_json(self, top: int | None = None) -> str:
        return json.dumps(
            {
                "study": self.study,
                "by": self.by,
                "penalty": self.penalty,
                "tolerance": self.tolerance,
                "completed": [asdict(t) for t in self.completed[:top]],
                "pruned": [asdict(t) for t in self.pruned],
                "failed": dict(self.failed),
                "given_back": self.given_back,
                "running": self.running,
                "pruning_saving": None if self.saving is None else asdict(self.saving),
                "cost": None if self.cost is None else asdict(self.cost),
                "recorded_agreement": [asdict(a) for a in self.recorded_agreement],
            },
            indent=2,
        )

    def to_csv(self, top: int | None = None) -> str:
        """Completed trials only, one row each, parameters as their own columns."""
        names = sorted({k for t in self.completed for k in t.params})
        metrics = METRIC_ATTRS
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["rank", "trial", *names, *metrics, "epochs"])
        for rank, t in enumerate(self.completed[:top], 1):
            row = [rank, t.number, *(t.params.get(n) for n in names)]
            values = (getattr(t, m) for m in metrics)
            cells = ["" if v is None else f"{v:.6f}" for v in values]
            writer.writerow([*row, *cells, t.epochs])
        return out.getvalue()


def _ranked(trial: FrozenTrial, penalty: float, tolerance: float) -> RankedTrial | None:
    r = TrialResult.from_attrs(trial.user_attrs)
    if not r.scored:
        return None
    return RankedTrial(
        number=trial.number,
        params=dict(trial.params),
        val_precision=r.val_precision,
        val_recall=r.val_recall,
        val_hmean=r.val_hmean,
        gap_hmean=r.gap_hmean,
        gap=r.gap,
        score=r.rescored(penalty, tolerance),
        epochs=r.epochs_run or 0,
        gap_precision=r.gap_precision,
        gap_recall=r.gap_recall,
    )


def _sort_value(by: SortKey, trial: RankedTrial) -> float:
    """The figure ``by`` sorts on; the score is the one recomputed with the overrides."""
    if by == "score":
        return trial.score
    return rule_value(by, trial.val_hmean, trial.gap_hmean)


def rank_study(
    study: optuna.Study,
    spec: StudySpec,
    *,
    by: SortKey | None = None,
    penalty: float | None = None,
    tolerance: float | None = None,
) -> Ranking:
    """Rank a study's trials.

    Args:
        study: the study (``sweeper.study.load_study``).
        spec: its spec; the penalty and tolerance default to ``spec.ranking``.
        by: ``score`` (penalized), ``val`` (plain validation H-mean), ``holdout`` (holdout
            H-mean) or ``mean`` (of val and holdout); the last two need a holdout split.
            None: the spec's ``ranking.rule``.
        penalty: override of ``ranking.penalty``; scores are recomputed.
        tolerance: override of ``ranking.tolerance``.

    Raises:
        StudyError: ``by`` is ``holdout`` or ``mean`` but the study measures its gap on
            training images (``ranking.gap_source: train``).

    Example:
        >>> ranking = rank_study(*load_study("demo", open_storage()))  # doctest: +SKIP
        >>> ranking.completed[0].number  # doctest: +SKIP
    """
    by = _checked_rule(spec.ranking.rule if by is None else by, spec, study.study_name)
    penalty = spec.ranking.penalty if penalty is None else penalty
    tolerance = spec.ranking.tolerance if tolerance is None else tolerance
    trials = study.get_trials(deepcopy=False)
    failed = Counter(
        t.user_attrs.get(FAIL_REASON_ATTR, "no reason recorded (worker died or was killed)")
        for t in trials
        if t.state == TrialState.FAIL and not given_back(t)
    )
    completed = _completed(
        trials,
        by,
        penalty,
        tolerance,
        tuned_by_trial(study.user_attrs),
        recorded_by_trial(study.user_attrs),
    )
    rules = RULES if spec.ranking.gap_source == "holdout" else ("score", "val")
    return Ranking(
        study.study_name,
        by,
        penalty,
        tolerance,
        completed,
        _pruned(trials),
        failed,
        sum(t.state == TrialState.RUNNING for t in trials),
        pruning_saving(trials, spec.base.epochs),
        given_back=sum(given_back(t) for t in trials),
        cost=sweep_cost(trials, spec, by, penalty, tolerance),
        recorded_agreement=recorded_agreement(completed, rules, _sort_value),
    )


def _checked_rule(by: SortKey, spec: StudySpec, study_name: str) -> SortKey:
    """``by`` once it is a rule this study can rank by."""
    if by not in RULES:
        raise StudyError(f"--by {by!r}: use {', '.join(RULES)}")
    if by in ("holdout", "mean") and spec.ranking.gap_source != "holdout":
        raise StudyError(
            f"--by {by}: study {study_name!r} has no holdout split (ranking.gap_source: "
            f"{spec.ranking.gap_source}); use score or val"
        )
    return by


def _completed(
    trials: list[FrozenTrial],
    by: SortKey,
    penalty: float,
    tolerance: float,
    tuned: dict[int, Any],
    recorded: dict[int, list[RecordedScore]] | None = None,
) -> list[RankedTrial]:
    """The completed trials that validated, best first, with their tuned post-processing and
    recorded test scores."""
    completed = [
        r
        for t in trials
        if t.state == TrialState.COMPLETE and (r := _ranked(t, penalty, tolerance)) is not None
    ]
    completed.sort(key=lambda r: (_sort_value(by, r), r.val_hmean), reverse=True)
    return [
        replace(
            r,
            postprocess_tuned=tuned[r.number].params if r.number in tuned else None,
            recorded=(recorded or {}).get(r.number, []),
        )
        for r in completed
    ]


def _pruned(trials: list[FrozenTrial]) -> list[PrunedTrial]:
    """The pruned trials, furthest and best at their last epoch first, with any promotion."""
    promoted_to = {
        t.user_attrs[PROMOTED_FROM_ATTR]: t.number
        for t in trials
        if PROMOTED_FROM_ATTR in t.user_attrs and t.state != TrialState.FAIL
    }
    pruned = []
    for t in trials:
        if t.state != TrialState.PRUNED:
            continue
        result = TrialResult.from_attrs(t.user_attrs)
        epoch = max(t.intermediate_values, default=0)
        pruned.append(
            PrunedTrial(
                number=t.number,
                params=dict(t.params),
                epoch=epoch,
                last_hmean=t.intermediate_values[epoch] if t.intermediate_values else None,
                promoted_to=promoted_to.get(t.number),
                val_hmean=result.val_hmean,
                gap_hmean=result.gap_hmean,
            )
        )
    pruned.sort(key=lambda p: (p.epoch, p.last_hmean or 0.0), reverse=True)
    return pruned


def best_trial(study: optuna.Study, spec: StudySpec, by: SortKey | None = None) -> FrozenTrial:
    """The winning completed trial.

    Raises:
        StudyError: the study has no completed trial yet.
    """
    ranking = rank_study(study, spec, by=by)
    if not ranking.completed:
        raise StudyError(f"study {study.study_name!r} has no completed trial to export yet")
    return study.trials[ranking.completed[0].number]


def ranked_first(trials: list[FrozenTrial], spec: StudySpec) -> tuple[int, float] | None:
    """The number of the trial the spec's ranking rule puts first, and its value under the
    rule (what ``sweeper rank`` shows first); None before a completed trial has results."""
    rule = spec.ranking.rule
    completed = _completed(trials, rule, spec.ranking.penalty, spec.ranking.tolerance, {})
    return (completed[0].number, _sort_value(rule, completed[0])) if completed else None


def _weights_folder(recorded: str | None) -> str | None:
    """The trial's recorded checkpoint folder, if it is one inside the artifacts directory:
    a comment line of the exported YAML must not carry whatever an attribute holds."""
    try:
        return str(recorded_folder(recorded)) if recorded is not None else None
    except StudyError:
        return None


def export_best(
    study: optuna.Study, spec: StudySpec, path: Path, by: SortKey | None = None
) -> FrozenTrial:
    """Write the winner's full TrainConfig as YAML, ready for ``sweeper train``.

    A header comment names the study, the trial, its parameters and metrics.
    """
    trial = best_trial(study, spec, by)
    config = spec.train_config(trial.params)
    tuned = tuned_by_trial(study.user_attrs).get(trial.number)
    if tuned is not None:
        config = apply_overrides(config, tuned.overrides())
    r = TrialResult.from_attrs(trial.user_attrs)
    header = [
        f"sweeper export-best: study {study.study_name!r}, trial {trial.number} "
        f"(by {by or spec.ranking.rule})",
        f"params: {json.dumps(trial.params)}",
        f"val P {r.val_precision:.4f}  R {r.val_recall:.4f}  H {r.val_hmean:.4f}  "
        f"{r.gap_split or 'gap'} H {r.gap_hmean:.4f}  gap {r.gap:+.4f}  "
        f"score {r.score:.4f}  best epoch {r.best_epoch}",
        f"retrain: sweeper train {path.name}",
    ]
    if tuned is not None:
        header.append(
            f"postprocess tuned on its cached maps ({tuned.search_study}): "
            f"{json.dumps(tuned.params)}; val H {tuned.val_before:.4f} -> {tuned.val_after:.4f}, "
            f"{tuned.gap_split} H {tuned.gap_before:.4f} -> {tuned.gap_after:.4f}"
        )
    if (folder := _weights_folder(r.checkpoint_dir)) is not None:
        best_pt = f"ARTIFACTS/{folder}/best.pt"
        header.append(
            f"its weights: {best_pt} (ARTIFACTS: the workers' --artifacts); fine-tune from them: "
            f"sweeper train {path.name} --set model.init_checkpoint={best_pt}"
        )
    body = dump_yaml_text(config.model_dump(mode="json"))
    path.write_text("".join(f"# {line}\n" for line in header) + body)
    return trial
