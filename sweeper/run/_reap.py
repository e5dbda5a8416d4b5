"""``sweeper reap``: fail the trials of dead workers and re-queue them, where heartbeats cannot.

Optuna's heartbeat needs the SQL storage, and its stale trials are failed only by the next
worker that asks for a trial. Through the gRPC proxy no heartbeat is recorded, so a worker
killed there would leave its trial RUNNING for ever. The reaper runs next to the proxy
(``sweeper reap STUDY --every 60``) and judges each RUNNING trial by its last sign of life,
the latest of:

- its ``heartbeat_at`` user attribute (unix time), which a worker writes every interval
  through any storage while the trial runs (:func:`keep_alive`);
- its row in Optuna's heartbeat table, when the reaper reads the database directly;
- its start: a trial gets a full grace period before its first beat.

A trial silent for longer than the grace period is failed, with the reason as its
``fail_reason`` attribute, and re-queued with the same parameters and reported values (the
retry resumes from the trial's checkpoint), up to the spec's ``retries.max_retries``.
Timestamps are compared on the reaper's clock: keep the nodes' clocks in sync (NTP), and run
the reaper in the proxy's time zone (trial starts are stored in local time).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

import storage as st
from storage import TRANSIENT_ERRORS, RetryCallback, close_storage, open_storage
from sweeper.attrs import FAIL_REASON_ATTR, HEARTBEAT_ATTR
from sweeper.define import StudySpec, load_study
from sweeper.text import one_line

log = logging.getLogger(__name__)


# Errors of one pass that the loop outlives: the database or the proxy is away for a while.
_TRANSIENT = (*TRANSIENT_ERRORS, OSError)


def reap_stale(study_name: str, storage_url: str | None, grace_period_s: int) -> list[int]:
    """Fail the RUNNING trials of a study that show no sign of life, and re-queue them.

    Args:
        study_name: a study made by ``sweeper create-study``.
        storage_url: the database or ``grpc://`` proxy; None reads ``$SWEEPER_STORAGE``.
        grace_period_s: seconds of silence after which a running trial counts as dead.
            Keep it several times the workers' heartbeat interval.

    Returns:
        The numbers of the trials it failed, in order.

    Raises:
        ValueError: ``grace_period_s`` below 1.
        StorageError: the storage cannot be opened.
        StudyError: no such study, or not a sweeper study.

    Example:
        >>> reap_stale("receipts-dbnet", "grpc://proxy:13000", grace_period_s=180)  # doctest: +SKIP
        [17]
    """
    _check_positive("grace_period_s", grace_period_s)
    storage = open_storage(storage_url, create=False)
    try:
        study, spec = load_study(study_name, storage)
        return _reap(study, spec, grace_period_s)
    finally:
        close_storage(storage)


def reap_loop(
    study_name: str,
    storage_url: str | None,
    grace_period_s: int,
    every_s: float,
    stop: threading.Event | None = None,
) -> list[int]:
    """Run :func:`reap_stale` every ``every_s`` seconds until ``stop`` is set.

    A pass that fails because the database or the proxy is briefly away is logged and tried
    again at the next pass; the loop keeps one storage connection open between passes.

    Args:
        study_name: a study made by ``sweeper create-study``.
        storage_url: the database or ``grpc://`` proxy; None reads ``$SWEEPER_STORAGE``.
        grace_period_s: see :func:`reap_stale`.
        every_s: seconds between passes.
        stop: set it (from a signal handler or another thread) to end the loop.

    Returns:
        The numbers of all trials it failed.

    Raises:
        ValueError: ``grace_period_s`` below 1 or ``every_s`` not positive.
        StorageError: the storage cannot be opened at the start.
        StudyError: no such study, or not a sweeper study.
    """
    _check_positive("grace_period_s", grace_period_s)
    _check_positive("every_s", every_s)
    stop = stop or threading.Event()
    storage = open_storage(storage_url, create=False)
    reaped: list[int] = []
    try:
        study, spec = load_study(study_name, storage)
        log.info(
            "reaping study %s every %g s: trials silent for over %d s are failed and re-queued",
            study_name,
            every_s,
            grace_period_s,
        )
        while not stop.is_set():
            try:
                reaped += _reap(study, spec, grace_period_s)
            except _TRANSIENT as e:
                log.warning("reap pass failed (%s); next try in %g s", one_line(e), every_s)
            stop.wait(every_s)
    finally:
        close_storage(storage)
    return reaped


@contextmanager
def keep_alive(trial: optuna.Trial, interval_s: float) -> Iterator[None]:
    """Write the trial's ``heartbeat_at`` attribute every ``interval_s`` while the block runs.

    This is the heartbeat :func:`reap_stale` reads; unlike Optuna's, it passes through the
    gRPC proxy (one small write per interval). The first beat is written at once.

    Example:
        >>> with keep_alive(trial, interval_s=60):  # doctest: +SKIP
        ...     result = fit(config)
    """
    with beating(lambda: trial.set_user_attr(HEARTBEAT_ATTR, time.time()), trial, interval_s):
        yield


@contextmanager
def beating(beat: Callable[[], None], trial: optuna.Trial, interval_s: float) -> Iterator[None]:
    """Call ``beat()`` at once and every ``interval_s`` while the block runs.

    A beat that fails because the storage is away is logged and the next one tried on time
    (Optuna's own heartbeat thread ends at its first error, so a trial that outlives a
    database restart would look dead afterwards); a trial that finished meanwhile (told, or
    failed by a reaper) ends the beats.
    """
    _check_positive("interval_s", interval_s)
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                beat()
            except UpdateFinishedTrialError:
                return
            except _TRANSIENT as e:
                log.warning("trial %d: heartbeat not written (%s)", trial.number, one_line(e))
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=loop, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _reap(study: optuna.Study, spec: StudySpec, grace_period_s: int) -> list[int]:
    """One pass: fail and re-queue the study's silent RUNNING trials; their numbers."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    beat_ages = st.heartbeat_ages(study)
    retry = st.retry_callback(spec.retries.max_retries)
    reaped = []
    for trial in running:
        silent_s = _silence(trial, beat_ages.get(trial.number))
        if silent_s <= grace_period_s:
            continue
        reason = (
            f"worker silent for {silent_s:.0f} s (grace {grace_period_s} s): failed by sweeper reap"
        )
        failed = fail_and_requeue(study, trial.number, reason, retry)
        if failed is None:
            continue
        # The callback's own rule, repeated only to say what it did.
        limit = spec.retries.max_retries
        done = "re-queued" if st.retry_count(failed) < limit else "retry limit reached"
        log.warning("trial %d: %s; %s", trial.number, reason, done)
        reaped.append(trial.number)
    return reaped


def fail_and_requeue(
    study: optuna.Study, number: int, reason: str, retry: RetryCallback
) -> FrozenTrial | None:
    """Fail RUNNING trial ``number`` with ``reason`` and queue its copy (``retry``'s limit
    applies), without the reason and the dead worker's heartbeat.

    Returns:
        The failed trial, or None when it had finished (or another process failed it) first.
    """
    return st.fail_and_requeue(
        study, number, reason, retry, reason_attr=FAIL_REASON_ATTR, drop_attrs=(HEARTBEAT_ATTR,)
    )


def _silence(trial: FrozenTrial, heartbeat_age_s: float | None) -> float:
    """Seconds since the trial's latest sign of life: heartbeat attribute, row or start."""
    ages = []
    if trial.datetime_start is not None:
        ages.append((datetime.datetime.now() - trial.datetime_start).total_seconds())
    beat = trial.user_attrs.get(HEARTBEAT_ATTR)
    if isinstance(beat, int | float):
        ages.append(time.time() - beat)
    if heartbeat_age_s is not None:
        ages.append(heartbeat_age_s)
    return min(ages, default=0.0)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value}: must be above 0 seconds")
