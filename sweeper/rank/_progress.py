"""What is in a storage and how a sweep is going: the data behind `studies` and `status`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweeper.attrs import HOST_ATTR, SPEC_ATTR, WORKER_ID_ATTR
from sweeper.define import StudySpec, find_study_id, finished_chains, given_back, parse_spec
from sweeper.errors import SpecError
from sweeper.rank._pruning_savings import PruningSaving, pruning_saving
from sweeper.rank._ranking import ranked_first
from sweeper.rank._rules import RULE_LABELS
from sweeper.rank._spend import SweepCost, sweep_cost
from sweeper.trial_result import TrialResult

STATES = (
    TrialState.RUNNING,
    TrialState.WAITING,
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAIL,
)
"""Trial states in the order tables show them."""


@dataclass(frozen=True)
class StudySummary:
    """One study: trial counts by state and the best value so far."""

    name: str
    counts: dict[TrialState, int]
    best_value: float | None
    """Of the best trial by :attr:`best_by`."""
    n_trials_budget: int | None  # from the stored spec; None for studies sweeper did not make
    finished: int = 0
    """Trials over, as the budget counts them: a retry chain once, given-back trials never."""
    given_back: int = 0
    """Trials failed untrained because they started past the budget; not in ``counts``."""
    best_by: str = "trial value"
    """What "best" means: the spec's ranking rule (as ``sweeper rank`` sorts), or the trial
    value for a study sweeper did not make."""


@dataclass(frozen=True)
class RunningTrial:
    """A trial a worker is on now; fields the worker has not reported are None."""

    number: int
    host: str | None
    device: str | None
    worker_id: str | None
    last_epoch: int | None  # step of the last reported validation H-mean
    started: datetime | None


@dataclass(frozen=True)
class StudyStatus:
    """A study's progress: counts, best trial so far, running trials."""

    summary: StudySummary
    best_number: int | None
    best_params: dict[str, Any]
    running: list[RunningTrial]
    saving: PruningSaving | None = None
    """What pruning saved so far; None for studies sweeper did not make."""
    cost: SweepCost | None = None
    """Device-hours spent, saved by pruning, to near the best; None before any cost."""


def list_studies(storage: BaseStorage) -> list[StudySummary]:
    """Every study in the storage, by name."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    return [_summarize(name, storage, _trials(name, storage)) for name in names]


def study_status(name: str, storage: BaseStorage) -> StudyStatus:
    """How study ``name`` is going.

    Raises:
        StudyError: no such study.
    """
    trials = _trials(name, storage)
    summary = _summarize(name, storage, trials)
    study_id = find_study_id(name, storage)
    study_attrs = storage.get_study_user_attrs(study_id)
    spec = _spec(study_attrs)
    best, _, _ = _leader(trials, spec, storage.get_study_directions(study_id))
    running = [_running(t) for t in trials if t.state == TrialState.RUNNING]
    return StudyStatus(
        summary=summary,
        best_number=None if best is None else best.number,
        best_params={} if best is None else dict(best.params),
        running=running,
        saving=_saving(trials, study_attrs),
        cost=None if spec is None else sweep_cost(trials, spec),
    )


def _spec(study_attrs: dict[str, Any]) -> StudySpec | None:
    """The stored spec, or None for a study sweeper did not make (or cannot read)."""
    try:
        return parse_spec(study_attrs[SPEC_ATTR]) if SPEC_ATTR in study_attrs else None
    except SpecError:
        return None


def _saving(trials: list[FrozenTrial], study_attrs: dict[str, Any]) -> PruningSaving | None:
    """Pruning's saving, with the epochs a trial trains read from the stored spec."""
    spec = study_attrs.get(SPEC_ATTR)
    base = spec.get("base") if isinstance(spec, dict) else None
    epochs = base.get("epochs") if isinstance(base, dict) else None
    return pruning_saving(trials, epochs) if isinstance(epochs, int) else None


def _trials(name: str, storage: BaseStorage) -> list[FrozenTrial]:
    return storage.get_all_trials(find_study_id(name, storage), deepcopy=False)


def _summarize(name: str, storage: BaseStorage, trials: list[FrozenTrial]) -> StudySummary:
    """Counts and best value of one study."""
    study_id = find_study_id(name, storage)
    counts = Counter(t.state for t in trials if not given_back(t))
    study_attrs = storage.get_study_user_attrs(study_id)
    directions = storage.get_study_directions(study_id)
    _, best_value, best_by = _leader(trials, _spec(study_attrs), directions)
    spec = study_attrs.get(SPEC_ATTR)
    budget = spec.get("budget", {}).get("n_trials") if isinstance(spec, dict) else None
    return StudySummary(
        name=name,
        counts={state: counts.get(state, 0) for state in STATES},
        best_value=best_value,
        n_trials_budget=budget,
        finished=finished_chains(trials),
        given_back=sum(given_back(t) for t in trials),
        best_by=best_by,
    )


def _leader(
    trials: list[FrozenTrial], spec: StudySpec | None, directions: Sequence[StudyDirection]
) -> tuple[FrozenTrial | None, float | None, str]:
    """The best trial, its value and what "best" means: by the spec's ranking rule, as
    ``sweeper rank`` puts it first; by the trial value for a study sweeper did not make."""
    if spec is None:
        best = _best(trials, directions)
        return best, None if best is None else best.value, "trial value"
    by = f"{RULE_LABELS[spec.ranking.rule]} (ranking.rule: {spec.ranking.rule})"
    first = ranked_first(trials, spec)
    if first is None:
        return None, None, by
    number, value = first
    return next(t for t in trials if t.number == number), value, by


def _best(trials: list[FrozenTrial], directions: Sequence[StudyDirection]) -> FrozenTrial | None:
    """The best complete trial of a single-objective study, if any."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done or len(directions) != 1:
        return None
    pick = max if directions[0] == StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.value)


def _running(trial: FrozenTrial) -> RunningTrial:
    """What the worker has told the storage about a running trial."""
    attrs = trial.user_attrs
    steps = trial.intermediate_values
    return RunningTrial(
        number=trial.number,
        host=_text(attrs.get(HOST_ATTR)),
        device=_text(TrialResult.from_attrs(attrs).device),
        worker_id=_text(attrs.get(WORKER_ID_ATTR)),
        last_epoch=max(steps) if steps else None,
        started=trial.datetime_start,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
