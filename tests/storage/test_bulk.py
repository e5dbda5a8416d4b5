"""add_finished_trials on every backend: trials land whole, numbered after the study's own."""

from __future__ import annotations

import optuna
import pytest

from storage import add_finished_trials, open_storage


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
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize")
    study.optimize(lambda t: t.suggest_float("thresh", 0.1, 0.6), n_trials=1)
    copied = _searched(4)
    add_finished_trials(storage, study._study_id, copied)
    add_finished_trials(storage, study._study_id, copied[:1])
    again = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    trials = again.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4, 5]
    for got, want in zip(trials[1:5], copied, strict=True):
        assert got.state == optuna.trial.TrialState.COMPLETE
        assert got.value == pytest.approx(want.value)
        assert got.params == pytest.approx(want.params)
        assert got.user_attrs == want.user_attrs
        assert got.distributions == want.distributions
    assert again.best_value == pytest.approx(max(t.value for t in trials[:5]))
