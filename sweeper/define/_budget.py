"""The study's trial budget, counted exactly: one retry chain is one trial, however often it fails.

A *chain* is a trial and its retries (:func:`storage.retry_root` names its first trial,
:func:`storage.retried_numbers` its failed members). A chain counts
against ``budget.n_trials`` once, whatever its members' states, unless it was given back
(:data:`OVER_BUDGET_ATTR`).

Two workers can pass :func:`budget_left` at the same instant, so the check that decides is
made after the trial exists (:func:`claim_budget`): chains are ordered by their first trial's
number, which the storage hands out uniquely, and a trial whose chain comes after the
first ``n_trials`` counting chains is given back. Exactly ``n_trials`` chains run.

``budget.gpu_hours`` is counted from the trials' cost ledgers (:func:`spent_device_s`, what
every trial recorded, at each epoch's end and at its own end): once the study has spent it,
no new chain starts, and a new chain's first trial that begins past it, because another
worker passed :func:`budget_left` a moment before the spending crossed the line, is given
back untrained like one past ``n_trials``. A retry continues a chain that already started,
so it still runs.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage import retried_numbers, retry_root, set_trial_user_attrs
from sweeper.attrs import FAIL_REASON_ATTR, OVER_BUDGET_ATTR
from sweeper.define._spec import StudySpec
from sweeper.trial_result import own_cost


class OverBudget(Exception):
    """The trial was started after the budget was spent elsewhere; it was given back."""


def given_back(trial: FrozenTrial) -> bool:
    """True for a trial :func:`claim_budget` gave back: failed in storage, never trained.

    Such a trial is not a failure of the sweep: nothing counts, ranks or reports it as one.
    """
    return bool(trial.user_attrs.get(OVER_BUDGET_ATTR))


def spent_device_s(trials: Iterable[FrozenTrial]) -> float:
    """Device-seconds the trials recorded, each its own attempt (a retry's inherited copy of
    its predecessor's cost is not counted twice)."""
    return sum(c.device_s for t in trials if (c := own_cost(t.number, t.user_attrs)) is not None)


def _gpu_hours_spent(trials: list[FrozenTrial], spec: StudySpec) -> bool:
    """Whether ``budget.gpu_hours`` is set and the trials have spent it."""
    hours = spec.budget.gpu_hours
    return hours is not None and spent_device_s(trials) >= hours * 3600


def _counting_roots(trials: Iterable[FrozenTrial]) -> set[int]:
    """Roots of the chains that count against the budget: all but the given-back ones."""
    return {retry_root(t) for t in trials if not given_back(t)}


def finished_chains(trials: list[FrozenTrial]) -> int:
    """Chains that are over: their latest member finished and is not retried again.

    A failure that was retried is not finished (its retry is the chain's future), and a
    trial given back to the budget never counted.
    """
    retried = retried_numbers(trials)
    return len(
        {
            retry_root(t)
            for t in trials
            if t.state.is_finished() and t.number not in retried and not given_back(t)
        }
    )


def budget_left(study: optuna.Study, spec: StudySpec) -> bool | None:
    """True: start a trial. False: the study's budget is spent. None: wait and ask again.

    Each retry chain counts once against ``budget.n_trials`` (running, finished or failed);
    trials given back by :func:`claim_budget` do not count. Queued trials (baselines,
    retries) always run. While other workers' trials are running we wait rather than
    leave: one of them may die, and its retry needs a worker.
    """
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    if TrialState.WAITING in states:
        return True
    budget = spec.budget
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    elapsed = (datetime.datetime.now() - min(starts)).total_seconds() if starts else 0.0
    if budget.timeout_s is not None and elapsed > budget.timeout_s:
        return False
    if len(_counting_roots(trials)) < budget.n_trials and not _gpu_hours_spent(trials, spec):
        return True
    return None if TrialState.RUNNING in states else False


def claim_budget(trial: optuna.Trial, spec: StudySpec) -> None:
    """Decide, now that ``trial`` exists, whether it is inside the budget; else give it back.

    Raises:
        OverBudget: ``budget.n_trials`` chains that come before this trial's already count;
            the trial is marked (:data:`OVER_BUDGET_ATTR`, with a ``fail_reason``) so that
            nothing counts or ranks it, and the caller lets it fail.
    """
    trials = trial.study.get_trials(deepcopy=False)
    me = next(t for t in trials if t.number == trial.number)
    root = retry_root(me)
    before = {r for r in _counting_roots(trials) if r < root}
    n = spec.budget.n_trials
    if len(before) >= n:
        spent = f"{n} trials were already started"
    elif root == me.number and _gpu_hours_spent(trials, spec):
        spent = f"the study had spent its {spec.budget.gpu_hours:g} GPU-hours"
    else:
        return
    reason = (
        f"over budget: {spent} when this one began "
        "(another worker passed the budget check at the same moment); given back, not trained"
    )
    set_trial_user_attrs(trial, {OVER_BUDGET_ATTR: True, FAIL_REASON_ATTR: reason})
    raise OverBudget(reason)
