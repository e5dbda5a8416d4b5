"""Heartbeat settings: a trial whose worker went silent is failed and re-queued."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from storage import HeartbeatSettings, open_storage


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "interval=0"),
        ({"interval": 60, "grace_period": 60}, "grace_period=60 must exceed interval=60"),
        ({"max_retry": -1}, "max_retry=-1"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HeartbeatSettings(**kwargs)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_stale_trials_are_failed_and_requeued(
    sqlite_url: str, postgres_url: str, mysql_url: str, study_name: str
) -> None:
    """All three backends in one test, so they share one wait for the grace period."""
    settings = HeartbeatSettings(interval=1, grace_period=2, max_retry=1)
    started = []
    for url in (sqlite_url, postgres_url, mysql_url):
        storage = open_storage(url, heartbeat=True, settings=settings)
        study = optuna.create_study(storage=storage, study_name=study_name)
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        storage.record_heartbeat(trial._trial_id)  # the worker's last sign of life
        started.append((url, study, trial.params, time.monotonic()))

    for url, study, params, last_beat in started:
        # Failed once its silence outlasts the grace period, and not before: poll for it
        # (MariaDB keeps whole seconds, a loaded machine is slow) rather than sleep and hope.
        deadline = failed_at = time.monotonic() + 60
        while study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING:
            assert time.monotonic() < deadline, f"{url}: the silent trial was never failed"
            optuna.storages.fail_stale_trials(study)
            failed_at = time.monotonic()
            time.sleep(0.2)
        # MariaDB rounds the beat down to the second: it may look up to 1 s older.
        assert failed_at - last_beat >= settings.grace_period - 1, url
        trials = study.get_trials(deepcopy=False)
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING], url
        assert trials[1].params == params, url
