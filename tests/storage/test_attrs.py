"""set_trial_user_attrs on every backend: all keys land, existing ones are overwritten."""

from __future__ import annotations

import optuna
import pytest

from storage import open_storage, set_trial_user_attrs


def test_many_attributes_in_one_call(storage_url: str, study_name: str) -> None:
    study = optuna.create_study(storage=open_storage(storage_url), study_name=study_name)
    trial = study.ask()
    trial.set_user_attr("score", -1.0)
    attrs = {"score": 0.91, "gap": 0.02, "device": "cpu", "epochs_run": 3, "best": None}
    set_trial_user_attrs(study._storage, trial._trial_id, attrs)
    assert study.trials[0].user_attrs == attrs
    study.tell(trial, 0.91)
    with pytest.raises(RuntimeError):  # finished trials stay as they were told
        set_trial_user_attrs(study._storage, trial._trial_id, {"score": 0.0})
    assert study.trials[0].user_attrs["score"] == 0.91
