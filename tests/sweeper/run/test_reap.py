"""sweeper reap: trials of dead workers are failed and re-queued; live ones are left alone."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from storage import HeartbeatSettings, open_storage
from sweeper.attrs import FAIL_REASON_ATTR, HEARTBEAT_ATTR
from sweeper.define import create_study, load_spec, load_study, suggest_params
from sweeper.run import keep_alive, reap_loop, reap_stale
from tests.servers import proxy_process

REPO = Path(__file__).resolve().parents[3]
GRACE_S = 2
# SQLite stores heartbeat rows to the second: wait a full second past the grace period.
PAST_GRACE_S = GRACE_S + 1.2

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _start(study: optuna.Study) -> optuna.Trial:
    """What a worker does first: take a trial and sample its parameters."""
    trial = study.ask()
    suggest_params(trial, load_spec(REPO / "tests" / "sweeper" / "specs" / "small.yaml"))
    trial.report(0.1, step=1)
    return trial


def _by_number(study: optuna.Study) -> dict[int, FrozenTrial]:
    return {t.number: t for t in study.get_trials()}


def _assert_requeued(study: optuna.Study, dead: optuna.Trial) -> None:
    """``dead`` is FAIL with a reason, and one WAITING copy of it is queued."""
    trials = _by_number(study)
    failed = trials[dead.number]
    assert failed.state == TrialState.FAIL
    assert "failed by sweeper reap" in failed.user_attrs[FAIL_REASON_ATTR]
    [copy] = [
        t
        for t in trials.values()
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == dead.number
    ]
    assert copy.state == TrialState.WAITING
    assert copy.params == failed.params
    assert copy.intermediate_values == {1: 0.1}  # the curve so far, for the resumed run
    assert FAIL_REASON_ATTR not in copy.user_attrs
    assert HEARTBEAT_ATTR not in copy.user_attrs


def test_reap_fails_silent_trials_and_spares_live_ones(sqlite_url: str) -> None:
    spec = load_spec(REPO / "tests" / "sweeper" / "specs" / "small.yaml")
    create_study(spec, open_storage(sqlite_url))
    study, _ = load_study(spec.name, open_storage(sqlite_url))
    rows = open_storage(sqlite_url, heartbeat=True, settings=HeartbeatSettings(1, GRACE_S))

    dead = _start(study)  # its worker was killed: no sign of life after its start
    row_stale = _start(study)  # Optuna's heartbeat row, then silence
    row_live = _start(study)  # Optuna's heartbeat row, kept fresh
    attr_live = _start(study)  # heartbeat attribute, written through any storage
    exhausted = _start(study)  # dead, and already retried as often as the spec allows
    history = list(range(spec.retries.max_retries))
    study._storage.set_trial_system_attr(exhausted._trial_id, "retry_history", history)
    for trial in (row_stale, row_live):
        rows.record_heartbeat(trial._trial_id)

    with keep_alive(attr_live, interval_s=0.5):
        time.sleep(PAST_GRACE_S)
        rows.record_heartbeat(row_live._trial_id)
        reaped = reap_stale(spec.name, sqlite_url, grace_period_s=GRACE_S)

    assert reaped == [dead.number, row_stale.number, exhausted.number]
    _assert_requeued(study, dead)
    _assert_requeued(study, row_stale)
    trials = _by_number(study)
    assert trials[row_live.number].state == TrialState.RUNNING
    assert trials[attr_live.number].state == TrialState.RUNNING
    assert trials[exhausted.number].state == TrialState.FAIL
    assert not any(
        RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == exhausted.number
        for t in trials.values()
    )
    assert reap_stale(spec.name, sqlite_url, grace_period_s=GRACE_S) == []  # nothing twice


def test_reap_loop_through_the_proxy(sqlite_url: str) -> None:
    """Through the gRPC proxy no Optuna heartbeat exists: the attribute is the only beat."""
    with proxy_process(sqlite_url, stdout=subprocess.DEVNULL) as (url, _):
        spec = load_spec(REPO / "tests" / "sweeper" / "specs" / "small.yaml")
        create_study(spec, open_storage(url, connect_timeout=30))
        study, _ = load_study(spec.name, open_storage(url))
        dead, live = _start(study), _start(study)
        stop = threading.Event()
        result: list[int] = []
        loop = threading.Thread(
            target=lambda: result.extend(reap_loop(spec.name, url, GRACE_S, 0.2, stop))
        )
        with keep_alive(live, interval_s=0.5):
            loop.start()
            deadline = time.monotonic() + 10
            while study._storage.get_trial(dead._trial_id).state == TrialState.RUNNING:
                assert time.monotonic() < deadline, "the reaper never failed the dead trial"
                time.sleep(0.2)
            time.sleep(0.5)  # another pass or two with the live trial past its grace
            stop.set()
            loop.join(timeout=10)
        assert result == [dead.number]
        _assert_requeued(study, dead)
        assert study._storage.get_trial(live._trial_id).state == TrialState.RUNNING


def test_reap_checks_its_arguments(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="grace_period_s=0"):
        reap_stale("demo", sqlite_url, grace_period_s=0)
    with pytest.raises(ValueError, match="every_s=0"):
        reap_loop("demo", sqlite_url, grace_period_s=60, every_s=0)
