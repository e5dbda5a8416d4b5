"""storage's trial seam on every backend: batched writes, retry chains, heartbeats, reaping.

The first test is the tripwire for an Optuna upgrade: it names each private piece of Optuna
that storage/_trials.py relies on, so a release that moves one fails here, by name, before
a sweep runs on it.
"""

from __future__ import annotations

import importlib

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from storage import (
    add_finished_trials,
    fail_and_requeue,
    heartbeat_ages,
    open_storage,
    optuna_version_problem,
    record_heartbeat,
    retried_numbers,
    retry_callback,
    retry_count,
    retry_root,
    set_trial_user_attrs,
    storage_of,
)


def test_the_private_optuna_api_it_uses_is_still_there(sqlite_url: str) -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    study = optuna.create_study(storage=open_storage(sqlite_url))
    trial = study.ask()
    assert isinstance(trial._trial_id, int)
    assert study.trials[0]._trial_id == trial._trial_id
    assert isinstance(study._study_id, int)
    assert storage_of(study) is study._storage
    assert callable(_create_scoped_session)
    assert hasattr(models, "TrialUserAttributeModel")
    assert callable(models.StudyModel.find_or_raise_by_id)
    assert callable(RDBStorage._set_trial_attr_without_commit)
    assert callable(RDBStorage._get_prepared_new_trial)


def test_many_attributes_in_one_call(storage_url: str, study_name: str) -> None:
    study = optuna.create_study(storage=open_storage(storage_url), study_name=study_name)
    trial = study.ask()
    trial.set_user_attr("score", -1.0)
    attrs = {"score": 0.91, "gap": 0.02, "device": "cpu", "epochs_run": 3, "best": None}
    set_trial_user_attrs(trial, attrs)
    assert study.trials[0].user_attrs == attrs
    study.tell(trial, 0.91)
    with pytest.raises(RuntimeError):  # finished trials stay as they were told
        set_trial_user_attrs(trial, {"score": 0.0})
    assert study.trials[0].user_attrs["score"] == 0.91


def _searched(n: int) -> list[optuna.trial.FrozenTrial]:
    local = optuna.create_study(direction="maximize")
    for i in range(n):
        trial = local.ask()
        x = trial.suggest_float("thresh", 0.1, 0.6, step=0.01)
        trial.suggest_int("max_candidates", 100, 1000, step=50)
        trial.set_user_attr("val_recall", i / 10)
        local.tell(trial, x)
    return local.get_trials()


def test_finished_trials_are_copied_in_one_call(storage_url: str, study_name: str) -> None:
    study = optuna.create_study(
        storage=open_storage(storage_url), study_name=study_name, direction="maximize"
    )
    study.optimize(lambda t: t.suggest_float("thresh", 0.1, 0.6), n_trials=1)
    copied = _searched(4)
    add_finished_trials(study, copied)
    add_finished_trials(study, copied[:1])
    again = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    trials = again.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4, 5]
    for got, want in zip(trials[1:5], copied, strict=True):
        assert got.state == TrialState.COMPLETE
        assert got.value == pytest.approx(want.value)
        assert got.params == pytest.approx(want.params)
        assert got.user_attrs == want.user_attrs
        assert got.distributions == want.distributions
    assert again.best_value == pytest.approx(max(t.value for t in trials[:5]))


def test_the_batched_writes_fall_back_to_public_calls_without_the_private_api(
    sqlite_url: str, study_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials_module = importlib.import_module("storage._trials")
    monkeypatch.setattr(trials_module, "_create_scoped_session", None)
    study = optuna.create_study(storage=open_storage(sqlite_url), study_name=study_name)
    trial = study.ask()
    set_trial_user_attrs(trial, {"score": 0.5, "device": "cpu"})
    assert study.trials[0].user_attrs == {"score": 0.5, "device": "cpu"}
    study.tell(trial, 0.5)
    add_finished_trials(study, _searched(2))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3


def test_a_failed_trial_is_requeued_as_one_retry_chain(storage_url: str, study_name: str) -> None:
    study = optuna.create_study(storage=open_storage(storage_url), study_name=study_name)
    first = study.ask()
    first.suggest_float("lr", 1e-4, 1e-2, log=True)
    first.report(0.3, 1)
    first.set_user_attr("heartbeat_at", 1.0)
    retry = retry_callback(max_retries=2)
    failed = fail_and_requeue(study, first.number, "worker silent", retry, "why", ("heartbeat_at",))
    assert failed is not None and failed.state == TrialState.FAIL
    assert failed.user_attrs["why"] == "worker silent"
    assert fail_and_requeue(study, first.number, "again", retry, "why") is None  # already failed

    second = study.ask()  # the queued copy: same params, the curve, not the dropped attrs
    assert second.params == first.params
    assert retry_root(second) == first.number
    assert retry_count(second) == 1
    assert "heartbeat_at" not in study.trials[second.number].user_attrs
    assert study.trials[second.number].intermediate_values == {1: 0.3}
    fail_and_requeue(study, second.number, "silent again", retry, "why")
    third = study.trials[-1]
    assert (retry_root(third), retry_count(third)) == (first.number, 2)
    assert retried_numbers(study.trials) == {first.number, second.number}
    assert retry_root(first) == first.number and retry_count(first) == 0


def test_heartbeat_ages_are_read_by_trial_number(postgres_url: str, study_name: str) -> None:
    from storage import HeartbeatSettings

    settings = HeartbeatSettings(1, 3, 2)
    beating = open_storage(postgres_url, heartbeat=True, settings=settings)
    study = optuna.create_study(storage=beating, study_name=study_name)
    study.ask()  # never beats
    trial = study.ask()
    record_heartbeat(trial)
    ages = heartbeat_ages(
        optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))
    )
    assert set(ages) == {trial.number}
    assert 0 <= ages[trial.number] < 60


def test_the_tested_optuna_range_agrees_with_the_lock_and_the_install() -> None:
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    [tested] = [r.specifier for r in map(Requirement, declared) if r.name == "optuna"]
    lock = tomllib.loads((root / "uv.lock").read_text())
    [locked] = [p["version"] for p in lock["package"] if p["name"] == "optuna"]
    assert tested.contains(locked), f"uv.lock pins optuna {locked}, outside {tested}"
    assert optuna_version_problem() is None  # what uv sync --frozen installed
    problem = optuna_version_problem("6.0.0")
    assert problem is not None and f"optuna{tested}" in problem and "6.0.0" in problem
