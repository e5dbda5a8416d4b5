"""Scale on loopback: 8 worker processes on one PostgreSQL, directly and through the gRPC proxy.

Every process is real: ``sweeper worker --procs 8`` (one parent, eight children) against
the local PostgreSQL server, then against Optuna's gRPC storage proxy (``sweeper
storage-proxy`` in its own process) in front of the same database. Then, with ``sweeper reap
--every 1`` running beside the proxy as deployed, a worker that talks through the proxy is
killed mid-trial: the reaper fails and re-queues its trial, and leaves alone the live worker
that resumes it.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from storage import ENV_VAR, StorageError, open_storage
from sweeper.attrs import FAIL_REASON_ATTR, OVER_BUDGET_ATTR
from sweeper.define import load_study
from tests.servers import free_port
from tests.sweeper.tiny_sweep import (
    create,
    make_data,
    start_sweeper,
    sweeper,
    tiny_spec,
    wait_for_checkpoint,
    worker_args,
    worker_logs,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]

PROCS = 8
N_TRIALS = 16
GRACE_S = 3  # heartbeats every second; a loaded 2-core machine may delay one
# Far more epochs than any machine trains in the test: the trial and its retry run until
# the test stops them, so both outlive the grace period however fast training is.
EPOCHS = 10_000


@pytest.fixture(scope="module")
def proxy_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sweeper storage-proxy`` in its own process, in front of the session's PostgreSQL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with open(log_path, "w") as log:
        # The database URL travels in the environment, as the compose file passes it.
        process = start_sweeper(
            "storage-proxy",
            "--port",
            str(port),
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


@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_eight_workers_run_every_trial_once(
    tmp_path: Path, request: pytest.FixtureRequest, study_name: str, route: str
) -> None:
    url = request.getfixturevalue("postgres_url" if route == "direct" else "proxy_url")
    make_data(tmp_path)
    create(tmp_path, url, tiny_spec(study_name, N_TRIALS, epochs=1))

    launched = datetime.datetime.now()
    started = time.monotonic()
    # Eight children each import torch, torchvision and timm (about 13 CPU-s apiece).
    result = sweeper(*worker_args(tmp_path, url, study_name, procs=PROCS), timeout=420)
    seconds = time.monotonic() - started
    logs = worker_logs(tmp_path / "artifacts")
    assert result.returncode == 0, (result.stderr, logs)
    assert len(logs) == PROCS
    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}:\n{text}"

    # Read the outcome from the database itself, not through the proxy's cache.
    study, _ = load_study(study_name, open_storage(request.getfixturevalue("postgres_url")))
    trials = study.get_trials()
    # Workers that pass the budget check at the same moment each start a trial; those past
    # the budget are given back untrained (failed, marked), so exactly the budget runs.
    given_back = [t for t in trials if t.user_attrs.get(OVER_BUDGET_ATTR)]
    assert all(t.state == TrialState.FAIL for t in given_back)
    trials = [t for t in trials if t not in given_back]
    states = Counter(t.state for t in trials)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
    assert len(finished) == N_TRIALS, states
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
        f"started, {(last - first).total_seconds():.1f} s of trials ({dict(states)}; "
        f"{len(given_back)} given back)"
    )


@contextmanager
def _reaper(tmp_path: Path, proxy_url: str, name: str) -> Iterator[subprocess.Popen]:
    """``sweeper reap --every 1`` beside the proxy, as deployed; yields it once it watches."""
    log_path = tmp_path / "reaper.log"
    args = ["reap", name, "--storage", proxy_url, "--grace", str(GRACE_S), "--every", "1"]
    with open(log_path, "w") as log:
        process = start_sweeper(*args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "reaping study" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"reaper not watching:\n{log_path.read_text()}"
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_requeue(study: optuna.Study, number: int) -> list[FrozenTrial]:
    """The study's trials once trial ``number`` is failed and its copy queued (two steps)."""
    deadline = time.monotonic() + 4 * GRACE_S
    while True:
        trials = study.get_trials()
        if trials[number].state == TrialState.FAIL and _retries_of(trials, number):
            return trials
        assert time.monotonic() < deadline, f"trial {number} was not failed and re-queued"
        time.sleep(0.2)


def _retries_of(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    return [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == number]


def _start_proxied_worker(tmp_path: Path, url: str, name: str, log: str) -> subprocess.Popen:
    """One CPU process whose heartbeat (through the proxy) beats well inside the grace."""
    with open(tmp_path / log, "w") as out:
        return start_sweeper(
            *worker_args(tmp_path, url, name, grace_s=GRACE_S),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the test signals parent and child
        )


def _spared_past_grace(
    study: optuna.Study, trial: FrozenTrial, worker: subprocess.Popen, reaper: subprocess.Popen
) -> None:
    """Trial ``trial`` stays RUNNING for several reaper passes after its start is older than
    the grace period: from then on only its heartbeat stands between it and the reaper."""
    assert trial.datetime_start is not None
    running_s = (datetime.datetime.now() - trial.datetime_start).total_seconds()
    time.sleep(max(0.0, GRACE_S + 3 - running_s))  # the reaper passes every second
    assert worker.poll() is None, "the worker exited"
    assert reaper.poll() is None, "the reaper exited"
    now = study.get_trials()[trial.number]
    assert now.state == TrialState.RUNNING, now.user_attrs.get(FAIL_REASON_ATTR)


def _wait_for_running_retry(study: optuna.Study, number: int) -> FrozenTrial:
    """The retry of trial ``number`` once a worker has resumed it."""
    deadline = time.monotonic() + 120
    while True:
        running = [
            t
            for t in _retries_of(study.get_trials(), number)
            if t.state == TrialState.RUNNING and "resumed_from_epoch" in t.user_attrs
        ]
        if running:
            return running[0]
        assert time.monotonic() < deadline, f"no worker resumed trial {number} in 120 s"
        time.sleep(0.2)


def test_killed_proxy_worker_is_reaped_and_its_trial_retried(
    tmp_path: Path, proxy_url: str, postgres_url: str, study_name: str
) -> None:
    make_data(tmp_path)
    create(tmp_path, proxy_url, tiny_spec(study_name, 1, epochs=EPOCHS))
    study, _ = load_study(study_name, open_storage(postgres_url))
    with _reaper(tmp_path, proxy_url, study_name) as reaper:
        worker = _start_proxied_worker(tmp_path, proxy_url, study_name, "killed-worker.log")
        wait_for_checkpoint(tmp_path / "artifacts", study_name, worker, timeout_s=120)
        # The live trial outlasts the grace period with the reaper watching, and stays.
        _spared_past_grace(study, study.get_trials()[0], worker, reaper)
        os.killpg(worker.pid, signal.SIGKILL)  # parent and training child, no cleanup
        worker.wait()

        # Through the proxy Optuna records no heartbeat: only the reaper fails the trial.
        trials = _wait_for_requeue(study, 0)
        assert "failed by sweeper reap" in trials[0].user_attrs[FAIL_REASON_ATTR]
        [queued] = _retries_of(trials, 0)
        assert queued.state == TrialState.WAITING
        assert queued.params == trials[0].params

        # The retry resumes from the checkpoint and, with the reaper still watching, is
        # spared past the grace period too: its heartbeat keeps it alive.
        retry_worker = _start_proxied_worker(tmp_path, proxy_url, study_name, "retry-worker.log")
        try:
            retry = _wait_for_running_retry(study, 0)
            assert retry.params == trials[0].params
            assert retry.user_attrs["resumed_from_epoch"] >= 1
            _spared_past_grace(study, retry, retry_worker, reaper)
        finally:
            retry_worker.send_signal(signal.SIGTERM)  # a clean stop; the parent forwards it
            retry_worker.wait(timeout=60)
    reaped = [
        t.number
        for t in study.get_trials()
        if "sweeper reap" in str(t.user_attrs.get(FAIL_REASON_ATTR, ""))
    ]
    assert reaped == [0], "the reaper failed a live trial"
    print(f"killed trial reaped and retried; the retry was spared past the {GRACE_S} s grace")
