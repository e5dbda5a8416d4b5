"""A database outage in the words of its cause, and a heartbeat that rides it out quietly.

The shared PostgreSQL server cannot be stopped, so the storage reaches it through a relay
the test closes (connections cut, new ones refused) and reopens (tests/servers.Relay).
"""

from __future__ import annotations

import logging
import threading
import time

import optuna
import pytest

from storage import HeartbeatSettings, heartbeat_ages, open_storage, outage_reason
from tests.servers import Relay

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning"),
]

_REFUSED = "Connection refused"


def test_an_outage_is_named_by_its_cause_not_by_optunas_wrapper(
    postgres_url: str, study_name: str
) -> None:
    relay = Relay()
    storage = open_storage(relay.url(postgres_url))
    study = optuna.create_study(storage=storage, study_name=study_name)

    def cut_off(trial: optuna.Trial) -> float:
        relay.close()
        return 1.0

    try:
        with pytest.raises(Exception) as during_tell:
            study.optimize(cut_off, n_trials=1)
        with pytest.raises(Exception) as plain_call:
            optuna.get_all_study_names(storage)
    finally:
        relay.close()
    # What Optuna says: an error of its own, and "invalid data in the commit".
    assert "updated_state" in str(during_tell.value)
    assert "invalid data in the commit" in str(plain_call.value)
    for error in (during_tell.value, plain_call.value):
        reason = outage_reason(error)
        assert reason is not None
        assert _REFUSED in reason
        assert "\n" not in reason


def test_errors_that_are_not_outages_have_no_outage_reason() -> None:
    try:
        try:
            raise KeyError("lr")
        except KeyError as e:
            raise ValueError("bad spec") from e
    except ValueError as e:
        assert outage_reason(e) is None


def test_the_heartbeat_thread_rides_out_an_outage_without_a_traceback(
    postgres_url: str, study_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Optuna's own heartbeat thread used to die at the first refused beat, printing its
    traceback into the worker log, and the trial looked dead after the database was back."""
    thread_errors: list[threading.ExceptHookArgs] = []
    old_hook, threading.excepthook = threading.excepthook, thread_errors.append
    caplog.set_level(logging.WARNING, logger="storage")
    relay = Relay()
    settings = HeartbeatSettings(interval=1, grace_period=3)
    storage = open_storage(relay.url(postgres_url), heartbeat=True, settings=settings)
    study = optuna.create_study(storage=storage, study_name=study_name)
    direct = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))
    ages: list[float] = []

    def through_an_outage(trial: optuna.Trial) -> float:
        nonlocal relay
        time.sleep(1.2)
        relay.close()
        time.sleep(2.5)  # two beats refused
        relay = Relay(relay.port)
        time.sleep(2.2)  # two beats after
        ages.append(heartbeat_ages(direct)[trial.number])
        return 1.0

    try:
        study.optimize(through_an_outage, n_trials=1)
    finally:
        relay.close()
        threading.excepthook = old_hook
    assert thread_errors == [], [str(e.exc_value) for e in thread_errors]
    assert ages[0] < 1.8, f"last heartbeat {ages[0]:.1f} s old: the beats stopped"
    lines = [r.getMessage() for r in caplog.records if r.name == "storage._heartbeat"]
    assert len(lines) == 2, lines  # once a refused beat, once beating again
    assert lines[0].startswith("heartbeat not written: ") and _REFUSED in lines[0]
    assert lines[1] == "heartbeats written again"
