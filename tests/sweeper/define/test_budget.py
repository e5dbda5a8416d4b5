"""The budget counted exactly: a retry chain once, and no overshoot from workers that race."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from storage import open_storage, retry_root, set_trial_user_attrs
from sweeper.attrs import FAIL_REASON_ATTR, OVER_BUDGET_ATTR
from sweeper.define import (
    OverBudget,
    StudySpec,
    budget_left,
    claim_budget,
    create_study,
    load_study,
    parse_spec,
    spent_device_s,
)
from sweeper.trial_result import TrialCost, TrialResult
from tests.sweeper.tiny_sweep import tiny_spec

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _study(url: str, name: str, n_trials: int) -> tuple[optuna.Study, StudySpec]:
    spec = parse_spec(tiny_spec(name, n_trials))
    create_study(spec, open_storage(url))
    return load_study(name, open_storage(url))


def _fail_and_retry(study: optuna.Study, trial: optuna.Trial) -> None:
    study.tell(trial, state=TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback(max_retry=5)(study, study.trials[trial.number])


def test_a_chain_that_fails_again_counts_once(storage_url: str, study_name: str) -> None:
    study, spec = _study(storage_url, study_name, n_trials=2)
    first = study.ask()
    _fail_and_retry(study, first)
    retry = study.ask()  # the queued copy
    _fail_and_retry(study, retry)  # fails again: still one chain
    study.tell(study.ask(), 0.4)  # the second retry completes
    assert budget_left(study, spec) is True  # one chain of two used
    study.tell(study.ask(), 0.5)
    assert budget_left(study, spec) is False


def test_racing_workers_do_not_overshoot(storage_url: str, study_name: str) -> None:
    study, spec = _study(storage_url, study_name, n_trials=2)
    # Three workers passed the budget check at the same instant and each started a trial.
    assert budget_left(study, spec) is True
    trials = [study.ask() for _ in range(3)]
    claim_budget(trials[0], spec)
    claim_budget(trials[1], spec)
    with pytest.raises(OverBudget, match="over budget: 2 trials were already started"):
        claim_budget(trials[2], spec)
    study.tell(trials[2], state=TrialState.FAIL)
    given_back = study.trials[2]
    assert given_back.user_attrs[OVER_BUDGET_ATTR] is True
    assert given_back.user_attrs[FAIL_REASON_ATTR].startswith("over budget")
    assert budget_left(study, spec) is None  # two running: wait, one may need a retry
    study.tell(trials[0], 0.1)
    study.tell(trials[1], 0.2)
    assert budget_left(study, spec) is False


def test_a_retry_runs_even_when_a_racing_trial_filled_the_budget(
    storage_url: str, study_name: str
) -> None:
    study, spec = _study(storage_url, study_name, n_trials=2)
    first, second = study.ask(), study.ask()
    claim_budget(first, spec)
    claim_budget(second, spec)
    study.tell(first, state=TrialState.FAIL)  # first's worker died
    fresh = study.ask()  # a worker that checked between the failure and the re-queue
    RetryHeartbeatStaleTrialCallback(max_retry=5)(study, study.trials[first.number])
    retry = study.ask()  # the re-queued copy, numbered after the fresh trial
    assert (fresh.number, retry.number) == (2, 3)
    assert retry_root(study.trials[retry.number]) == 0
    claim_budget(retry, spec)  # the chain of trial 0 counted from the start
    with pytest.raises(OverBudget):
        claim_budget(fresh, spec)


def test_a_trial_started_past_the_budget_is_given_back_without_a_traceback(
    tmp_path: Path, sqlite_url: str, study_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sweeper.run import WorkerContext, run_worker

    study, _ = _study(sqlite_url, study_name, n_trials=1)
    study.tell(study.ask(), 0.5)  # the budget's one trial
    # A queued trial always gets a worker, so it starts, finds the budget spent, goes back.
    study.enqueue_trial({"lr": 1e-3, "weight_decay": 1e-4, "T_max": 2, "eta_min": 1e-6})
    caplog.set_level(logging.INFO)
    optuna.logging.enable_propagation()  # Optuna's records reach caplog
    try:
        ctx = WorkerContext(study_name, tmp_path, "test:1/0.abcdef", data_root=tmp_path)
        assert run_worker(study_name, sqlite_url, ctx) == 0  # ran nothing
    finally:
        optuna.logging.disable_propagation()
    [_, back] = study.get_trials()
    assert back.state == TrialState.FAIL and back.user_attrs[OVER_BUDGET_ATTR] is True
    assert not back.intermediate_values  # never trained
    assert any("given back" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "a traceback for a given-back trial"


def _spend(trial: optuna.Trial, seconds: float) -> None:
    """What the cost ledger records of an attempt that spent ``seconds`` on one GPU."""
    cost = TrialCost(trial.number, "cuda", 1.0, seconds, seconds, seconds, 0.0, 0.0)
    set_trial_user_attrs(trial, TrialResult(cost=cost).to_attrs())


def test_gpu_hours_stop_new_chains_exactly_and_let_a_started_chain_finish(
    storage_url: str, study_name: str
) -> None:
    spec = parse_spec(tiny_spec(study_name, 10, budget={"n_trials": 10, "gpu_hours": 1.0}))
    create_study(spec, open_storage(storage_url))
    study, spec = load_study(study_name, open_storage(storage_url))
    first, second = study.ask(), study.ask()  # two workers, nothing spent yet
    claim_budget(first, spec)
    claim_budget(second, spec)
    _spend(first, 3000.0)
    assert budget_left(study, spec) is True  # 3000 of 3600 device-seconds
    _spend(second, 700.0)
    assert spent_device_s(study.get_trials()) == 3700.0
    assert budget_left(study, spec) is None  # spent; two still run
    late = study.ask()  # its worker passed the check before the second's epoch crossed it
    with pytest.raises(OverBudget, match="had spent its 1 GPU-hours when this one began"):
        claim_budget(late, spec)
    study.tell(late, state=TrialState.FAIL)
    assert study.trials[late.number].user_attrs[OVER_BUDGET_ATTR] is True
    # The first trial's worker dies: its retry continues a chain started inside the budget.
    _fail_and_retry(study, first)
    assert budget_left(study, spec) is True
    retry = study.ask()
    claim_budget(retry, spec)
    assert retry_root(study.trials[retry.number]) == first.number
    assert spent_device_s(study.get_trials()) == 3700.0  # its inherited copy is not counted
    study.tell(retry, 0.5)
    study.tell(second, 0.4)
    assert budget_left(study, spec) is False
