"""A database outage as a worker sees it: the connection to PostgreSQL drops and is refused.

The test cannot stop the shared PostgreSQL server, so the workers reach it through a TCP
relay the test owns; closing the relay (every connection cut, new ones refused) is the
outage, reopening it on the same port is the server coming back (tests/servers.Relay).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_storage, retry_root
from sweeper.define import load_study
from tests.servers import Relay
from tests.sweeper.tiny_sweep import (
    create,
    make_data,
    start_sweeper,
    tiny_spec,
    wait_for_checkpoint,
    worker_args,
    worker_logs,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]


def _start(
    tmp_path: Path, postgres_url: str, name: str, epochs: int, *extra: str
) -> tuple[Relay, subprocess.Popen]:
    """A study of one trial, and a worker reaching PostgreSQL through a relay."""
    make_data(tmp_path)
    create(tmp_path, postgres_url, tiny_spec(name, 1, epochs=epochs), "--skip-check")
    relay = Relay()
    worker = start_sweeper(
        *worker_args(tmp_path, relay.url(postgres_url), name, *extra, grace_s=3),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return relay, worker


def _met_outage(root: Path) -> bool:
    return "storage unreachable" in "".join(worker_logs(root / "artifacts").values())


def test_a_worker_waits_out_an_outage_and_resumes_the_trial_it_cut_off(
    tmp_path: Path, postgres_url: str, study_name: str
) -> None:
    # Epochs enough to outlast the relay's closing: a report falls inside the outage.
    relay, worker = _start(tmp_path, postgres_url, study_name, 12)
    try:
        wait_for_checkpoint(tmp_path / "artifacts", study_name, worker)
        relay.close()
        closed = time.monotonic()
        # The database stays away until the worker has met the outage (an epoch's report
        # fell inside it; a loaded machine may take long to get there) and for longer than
        # the grace period, so Optuna's own heartbeat thread is dead.
        deadline = closed + 300
        while not _met_outage(tmp_path) or time.monotonic() - closed < 8:
            assert worker.poll() is None, worker_logs(tmp_path / "artifacts")
            assert time.monotonic() < deadline, "the worker never met the outage"
            time.sleep(0.5)
        relay = Relay(relay.port)
        _, stderr = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
        relay.close()
    logs = worker_logs(tmp_path / "artifacts")
    assert worker.returncode == 0, (stderr, logs)
    assert "storage unreachable" in "".join(logs.values())

    study, _ = load_study(study_name, open_storage(postgres_url))
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    cut_off = trials[0]
    assert cut_off.state == TrialState.FAIL
    assert "storage unreachable mid-trial" in cut_off.user_attrs["fail_reason"]
    [retry] = [t for t in trials if t.number != 0 and retry_root(t) == 0]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED), retry.user_attrs
    assert retry.user_attrs["resumed_from_epoch"] >= 1
    assert len(trials) == 2  # the budget of one: the chain, nothing more


def test_a_worker_stops_when_the_storage_stays_away(
    tmp_path: Path, postgres_url: str, study_name: str
) -> None:
    relay, worker = _start(tmp_path, postgres_url, study_name, 40, "--storage-wait", "6")
    try:
        wait_for_checkpoint(tmp_path / "artifacts", study_name, worker)
        relay.close()
        _, stderr = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 3, stderr  # as docs/cluster.md says
    # The parent's own output keeps the history, though it is not a terminal.
    assert "worker 0: exited 3: storage unreachable for" in stderr
    assert "the limit, --storage-wait, is 6 s" in stderr
    # The cause, not Optuna's wrapper ("invalid data in the commit, e.g. exceeding max
    # length"); and no traceback from a heartbeat thread in the worker's log.
    [gone] = [line for line in stderr.splitlines() if "worker 0: exited 3" in line]
    assert "Connection refused" in gone
    logs = "".join(worker_logs(tmp_path / "artifacts").values())
    assert "invalid data in the commit" not in stderr + logs
    assert "Traceback" not in logs


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning")
def test_a_trials_heartbeat_outlives_an_outage(postgres_url: str, study_name: str) -> None:
    from storage import HeartbeatSettings, heartbeat_ages, record_heartbeat
    from sweeper.define import create_study, parse_spec
    from sweeper.run import beating

    create_study(parse_spec(tiny_spec(study_name, 1)), open_storage(postgres_url))
    relay = Relay()
    storage = open_storage(
        relay.url(postgres_url), heartbeat=True, settings=HeartbeatSettings(1, 3, 2)
    )
    study, _ = load_study(study_name, storage)
    trial = study.ask()
    direct = open_storage(postgres_url)
    watched = optuna.load_study(study_name=study_name, storage=direct)
    try:
        with beating(lambda: record_heartbeat(trial), trial, 1.0):
            time.sleep(1.5)
            relay.close()
            time.sleep(3)  # beats fail; Optuna's own thread would have ended here
            relay = Relay(relay.port)
            restored = time.time()
            # The order that matters: a beat lands after the database is back. (Each
            # estimate of when the last beat landed errs early, never late.)
            beat_after_restore = False
            deadline = restored + 60
            while not beat_after_restore and time.time() < deadline:
                asked = time.time()
                beat_after_restore = asked - heartbeat_ages(watched)[trial.number] > restored
                time.sleep(0.2)
    finally:
        relay.close()
    assert beat_after_restore, "no heartbeat after the outage: the beats stopped at it"
