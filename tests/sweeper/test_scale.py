"""Scale on loopback: 8 worker processes on one PostgreSQL, directly and through the gRPC proxy.

Every process is real: ``sweeper worker --procs 8`` (one parent, eight children) against
the local PostgreSQL server, then against Optuna's gRPC storage proxy (``run_proxy`` in its
own process) in front of the same database. A worker that talks through the proxy is then
killed mid-trial, and ``sweeper reap`` fails and re-queues its trial, which one more worker
completes.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from tiny_sweep import make_data, sweeper, tiny_spec, write_spec

from storage import ENV_VAR, StorageError, open_storage
from sweeper.objective import FAIL_REASON_ATTR
from sweeper.study import load_study

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]

PROCS = 8
N_TRIALS = 16
GRACE_S = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def proxy_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sweeper storage-proxy`` in its own process, in front of the session's PostgreSQL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with open(log_path, "w") as log:
        # The database URL travels in the environment, as the compose file passes it.
        process = subprocess.Popen(
            [sys.executable, "-m", "sweeper", "storage-proxy", "--port", str(port)],
            env={**os.environ, ENV_VAR: postgres_url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"grpc://127.0.0.1:{port}"
    try:
        try:
            open_storage(url, connect_timeout=30).close()  # type: ignore[attr-defined]
        except StorageError:
            pytest.fail(f"the storage proxy did not answer in 30 s:\n{log_path.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _create(tmp_path: Path, url: str, spec: dict) -> None:
    result = sweeper(
        "create-study", str(write_spec(tmp_path / "spec.yaml", spec)), "--storage", url
    )
    assert result.returncode == 0, result.stderr


def _worker_args(tmp_path: Path, url: str, name: str, procs: int) -> list[str]:
    return [
        "worker",
        "--study",
        name,
        "--storage",
        url,
        "--gpus",
        "cpu",
        "--procs",
        str(procs),
        "--data-root",
        str(tmp_path),
        "--artifacts",
        str(tmp_path / "artifacts"),
    ]


def _worker_logs(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((tmp_path / "artifacts" / "logs").glob("*.log"))}


@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_eight_workers_run_every_trial_once(
    tmp_path: Path, request: pytest.FixtureRequest, study_name: str, route: str
) -> None:
    url = request.getfixturevalue("postgres_url" if route == "direct" else "proxy_url")
    make_data(tmp_path)
    _create(tmp_path, url, tiny_spec(study_name, N_TRIALS, epochs=1))

    launched = datetime.datetime.now()
    started = time.monotonic()
    result = sweeper(*_worker_args(tmp_path, url, study_name, PROCS), timeout=180)
    seconds = time.monotonic() - started
    logs = _worker_logs(tmp_path)
    assert result.returncode == 0, (result.stderr, logs)
    assert len(logs) == PROCS
    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}:\n{text}"

    # Read the outcome from the database itself, not through the proxy's cache.
    study, _ = load_study(study_name, open_storage(request.getfixturevalue("postgres_url")))
    trials = study.get_trials()
    states = Counter(t.state for t in trials)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
    # The budget check and the trial's start are two steps, so workers that check at the
    # same moment may each start one more; never more than one per other worker.
    assert N_TRIALS <= len(finished) <= N_TRIALS + PROCS - 1, states
    params = Counter(tuple(sorted(t.params.items())) for t in finished)
    assert max(params.values()) == 1, "two workers trained the same configuration"
    for t in finished:
        assert t.user_attrs.get(FAIL_REASON_ATTR) is None
        assert "score" in t.user_attrs and "worker_id" in t.user_attrs
    workers = Counter(t.user_attrs["worker_id"] for t in finished)
    assert len(workers) > 1, workers
    first = min(t.datetime_start for t in finished if t.datetime_start)
    last = max(t.datetime_complete for t in finished if t.datetime_complete)
    print(
        f"{route}: {len(finished)} trials by {len(workers)} of {PROCS} processes in "
        f"{seconds:.1f} s: {(first - launched).total_seconds():.1f} s until the first trial "
        f"started, {(last - first).total_seconds():.1f} s of trials ({dict(states)})"
    )


def _spawn_worker(tmp_path: Path, url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sweeper", *_worker_args(tmp_path, url, name, 1)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test kills parent and child
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_checkpoint(tmp_path: Path, name: str, worker: subprocess.Popen) -> None:
    last = tmp_path / "artifacts" / "checkpoints" / name / "trial-0" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert worker.poll() is None, (worker.communicate(), _worker_logs(tmp_path))
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.1)


def _wait_past_grace(trial: FrozenTrial) -> None:
    """Sleep until ``trial`` has been silent for longer than the grace period."""
    assert trial.datetime_start is not None
    silent_s = (datetime.datetime.now() - trial.datetime_start).total_seconds()
    time.sleep(max(0.0, GRACE_S + 0.5 - silent_s))


def _retries_of(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    return [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == number]


def test_killed_proxy_worker_is_reaped_and_its_trial_retried(
    tmp_path: Path, proxy_url: str, postgres_url: str, study_name: str
) -> None:
    make_data(tmp_path)
    _create(tmp_path, proxy_url, tiny_spec(study_name, 1, epochs=8))
    worker = _spawn_worker(tmp_path, proxy_url, study_name)
    _wait_for_checkpoint(tmp_path, study_name, worker)
    os.killpg(worker.pid, signal.SIGKILL)  # parent and training child, no cleanup
    worker.wait()

    # Through the proxy no heartbeat is recorded: the trial stays RUNNING until reaped.
    study, _ = load_study(study_name, open_storage(postgres_url))
    [dead] = study.get_trials()
    assert dead.state == TrialState.RUNNING
    _wait_past_grace(dead)
    reap = sweeper("reap", study_name, "--storage", proxy_url, "--grace", str(GRACE_S))
    assert reap.returncode == 0, reap.stderr
    assert "failed and re-queued: 0" in reap.stdout, (reap.stdout, reap.stderr)

    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert "failed by sweeper reap" in trials[0].user_attrs[FAIL_REASON_ATTR]
    [queued] = _retries_of(trials, 0)
    assert queued.state == TrialState.WAITING
    assert queued.params == dead.params

    result = sweeper(*_worker_args(tmp_path, proxy_url, study_name, 1), timeout=120)
    assert result.returncode == 0, (result.stderr, _worker_logs(tmp_path))
    trials = study.get_trials()
    [retry] = _retries_of(trials, 0)
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.params == dead.params
    assert retry.user_attrs["resumed_from_epoch"] >= 1
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
