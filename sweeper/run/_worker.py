"""One worker process: pull trials from the study until the budget is spent or told to stop.

Trials run through ``study.optimize(n_trials=1)`` one at a time, because Optuna's heartbeat
(and the failing of stale trials) only runs inside ``optimize``: a worker killed with
SIGKILL leaves a RUNNING trial whose heartbeat stops; the next worker to start a trial
fails it and re-queues it with the same parameters, and the retry resumes from the
trial's last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, GrpcStorageProxy, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from storage import (
    Backoff,
    HeartbeatSettings,
    StorageUnavailable,
    close_storage,
    open_artifact_store,
    open_storage,
    outage_reason,
    record_heartbeat,
    redact,
    resolve_url,
    retry_callback,
)
from sweeper.attrs import INTERRUPTED_ATTR
from sweeper.define import OverBudget, StudySpec, budget_left, claim_budget, load_study, study_key
from sweeper.errors import EXIT_BAD_INPUT, EXIT_STORAGE_GONE, StudyError
from sweeper.run._checkpoints import artifacts_problem
from sweeper.run._objective import (
    DiskError,
    Interrupted,
    Objective,
    TrialFailed,
    WillRepeat,
    WorkerContext,
)
from sweeper.run._options import WorkerLimits, WorkerOptions
from sweeper.run._reap import beating, fail_and_requeue, keep_alive
from sweeper.run._retention import retention_callback
from sweeper.text import one_line

log = logging.getLogger(__name__)

_POLL_S = 2.0

T = TypeVar("T")


def worker_identity(slot: int) -> str:
    """This process's id in the whole fleet: ``host:pid/slot.token``.

    The host and pid tell people where it runs; the random token keeps ids apart where
    hosts share a name and pids repeat (containers). The sampler's seed derives from it.
    """
    return f"{socket.gethostname()}:{os.getpid()}/{slot}.{uuid.uuid4().hex[:6]}"


class WorkerStopped(Exception):
    """This worker cannot do useful work (bad data, bad config, unusable artifacts)."""


class StudyDeleted(Exception):
    """The study was deleted (``sweeper delete-study``) while this worker ran on it."""


def _retry_failed(
    spec: StudySpec, tracked: _Tracked
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """optimize() callback: re-queue a trial stopped by a signal, or failed by this worker's
    data, config or disk (another worker may well run it), keeping its curve."""
    retry = retry_callback(spec.retries.max_retries)

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            return
        if trial.user_attrs.get(INTERRUPTED_ATTR) or tracked.requeue:
            retry(study, trial)
            log.info("trial %d re-queued to resume from its checkpoint", trial.number)

    return callback


def _with_keep_alive(
    objective: Callable[[optuna.Trial], float], interval_s: float
) -> Callable[[optuna.Trial], float]:
    def beating_objective(trial: optuna.Trial) -> float:
        with keep_alive(trial, interval_s):
            return objective(trial)

    return beating_objective


def _with_db_heartbeat(
    objective: Callable[[optuna.Trial], float], interval_s: float
) -> Callable[[optuna.Trial], float]:
    """Beside Optuna's heartbeat, one that outlives a database outage (see ``beating``)."""

    def beating_objective(trial: optuna.Trial) -> float:
        with beating(lambda: record_heartbeat(trial), trial, interval_s):
            return objective(trial)

    return beating_objective


def _not_a_given_back_trial(record: logging.LogRecord) -> bool:
    """Logging filter: drop Optuna's failure traceback for a trial given back to the budget.

    The trial failed on purpose, untrained (:func:`sweeper.define._budget.claim_budget`); the
    worker says so in one line, and a traceback in its log would read as a crash.
    """
    return not (record.exc_info and isinstance(record.exc_info[1], OverBudget))


# Optuna's optimize() logs a caught exception's traceback from this module's logger.
logging.getLogger("optuna.study._optimize").addFilter(_not_a_given_back_trial)


class _Tracked:
    """The objective, run only once the new trial is known to be inside the budget; it
    remembers the trial in progress, so one cut off by a storage outage can be given back."""

    def __init__(
        self, objective: Callable[[optuna.Trial], float], spec: StudySpec, artifacts: Path
    ) -> None:
        self.objective, self.spec, self.artifacts = objective, spec, artifacts
        self.current: int | None = None  # number of the trial in progress
        self.given_back = 0
        self.requeue = False  # the trial failed for this worker's reasons: re-queue it
        self.stop_reason: str | None = None  # set: this worker must stop

    def __call__(self, trial: optuna.Trial) -> float:
        self.current, self.requeue = trial.number, False
        try:
            claim_budget(trial, self.spec)
        except OverBudget:
            self.given_back += 1
            log.info("trial %d given back: the budget was spent meanwhile", trial.number)
            raise
        try:
            return self.objective(trial)
        except WillRepeat as e:
            self.requeue, self.stop_reason = True, str(e)
            raise
        except DiskError:
            # One trial's problem (a folder it cannot write) unless the artifacts directory
            # itself cannot take a file. A full disk is a WillRepeat.
            self.requeue, self.stop_reason = True, artifacts_problem(self.artifacts)
            raise


def _when_up(call: Callable[[], T], backoff: Backoff, ctx: WorkerContext) -> T:
    """``call()``, tried again with ``backoff`` while the storage does not answer.

    Raises:
        StorageUnavailable: the storage stayed away past ``backoff.wait_s``, or a stop
            signal came while waiting.
    """
    while True:
        try:
            result = call()
        except Exception as e:
            reason = outage_reason(e)
            if reason is None:
                raise
            delay = backoff.failed(reason)
            ctx.status(event="outage", reason=reason, retry_in=round(delay))
            if ctx.stop.wait(delay):
                raise StorageUnavailable("stopped while waiting for the storage") from e
            continue
        backoff.recovered()
        return result


def _check_study(storage: BaseStorage, study_name: str) -> bool:
    """Whether the storage answers a cheap query about the study now (False: it does not).

    Raises:
        StudyDeleted: it answers that the study is gone.
    """
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError as e:
        raise StudyDeleted(f"study {study_name!r} was deleted") from e
    except Exception as e:
        if outage_reason(e) is None:
            raise
        return False
    return True


def _give_back(study: optuna.Study, spec: StudySpec, number: int, outage: str) -> None:
    """Fail and re-queue this worker's trial that a storage outage cut off, if it still runs."""
    retry = retry_callback(spec.retries.max_retries)
    reason = f"storage unreachable mid-trial ({outage}); re-queued to resume from its checkpoint"
    failed = fail_and_requeue(study, number, reason, retry)
    if failed is not None:
        log.warning("trial %d: %s", failed.number, reason)


def _connect(
    study_name: str,
    storage_url: str | None,
    ctx: WorkerContext,
    backoff: Backoff,
    heartbeat: HeartbeatSettings | None,
) -> tuple[optuna.Study, StudySpec, BaseStorage, HeartbeatSettings]:
    """The study and its spec on a storage with heartbeats (the spec's retry limit unless
    ``heartbeat`` says otherwise), and the study's key in ``ctx``, waiting out an outage."""

    def read_spec() -> StudySpec:
        plain = open_storage(storage_url, create=False)
        try:
            return load_study(study_name, plain)[1]
        finally:
            close_storage(plain)

    spec = _when_up(read_spec, backoff, ctx)
    settings = heartbeat or HeartbeatSettings(max_retry=spec.retries.max_retries)
    storage = _when_up(
        lambda: open_storage(storage_url, heartbeat=True, settings=settings, create=False),
        backoff,
        ctx,
    )
    study, spec = _when_up(lambda: load_study(study_name, storage, ctx.worker_id), backoff, ctx)
    if ctx.study_key is None:
        ctx.study_key = _when_up(lambda: study_key(study_name, storage), backoff, ctx)
    return study, spec, storage, settings


def _beating(
    objective: Callable[[optuna.Trial], float], storage: BaseStorage, settings: HeartbeatSettings
) -> Callable[[optuna.Trial], float]:
    """``objective`` with the heartbeat its storage needs while a trial runs."""
    if isinstance(storage, GrpcStorageProxy):
        # Optuna's heartbeat stays in the SQL database; this one passes through the proxy,
        # where `sweeper reap` reads it.
        return _with_keep_alive(objective, settings.interval)
    if isinstance(storage, RDBStorage):
        return _with_db_heartbeat(objective, settings.interval)
    return objective


def run_worker(
    study_name: str,
    storage_url: str | None,
    ctx: WorkerContext,
    limits: WorkerLimits | None = None,
    heartbeat: HeartbeatSettings | None = None,
) -> int:
    """Run trials of ``study_name`` until its budget, ``limits`` or ``ctx.stop``; return
    how many trials this worker ran. The sampler's seed derives from ``ctx.worker_id``.

    A storage that stops answering (a database restart, a network blip) is waited out,
    retrying with backoff for up to ``limits.storage_wait_s``; a trial it cut off is failed
    and re-queued once the storage is back, and resumes from its checkpoint.

    Raises:
        StorageUnavailable: the storage stayed away longer than ``limits.storage_wait_s``.
        StudyDeleted: the study was deleted meanwhile.
        WorkerStopped: every next trial here would fail alike.
    """
    limits = limits or WorkerLimits()
    backoff = Backoff(limits.storage_wait_s)
    study, spec, storage, settings = _connect(study_name, storage_url, ctx, backoff, heartbeat)
    objective = _beating(
        Objective(spec, ctx, open_artifact_store(ctx.artifacts)), storage, settings
    )
    if ctx.storage_link is None:
        ctx.storage_link = redact(resolve_url(storage_url))
    tracked = _Tracked(objective, spec, ctx.artifacts)
    callbacks = [
        _retry_failed(spec, tracked),
        retention_callback(spec, ctx.artifacts, ctx.study_key),
    ]
    deadline = None if limits.timeout_s is None else time.monotonic() + limits.timeout_s
    ran = 0
    cut_off: tuple[int, str] | None = None  # (number, outage) of a trial an outage ended
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    while not ctx.stop.is_set():
        if limits.n_trials is not None and ran >= limits.n_trials:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            if cut_off is not None:
                _give_back(study, spec, *cut_off)
                cut_off = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            go = budget_left(study, spec)
            backoff.recovered()
            if go is False:
                break
            if go is None:
                ctx.status(event="waiting")
                ctx.stop.wait(_POLL_S)
                continue
            given_back = tracked.given_back
            tracked.current = None
            study.optimize(
                tracked,
                n_trials=1,
                catch=(TrialFailed, Interrupted, OverBudget),
                callbacks=callbacks,
            )
            ran += tracked.given_back == given_back
            if tracked.stop_reason is not None:
                raise WorkerStopped(tracked.stop_reason)
        except WorkerStopped:
            raise
        except Exception as e:
            # A trial of a study deleted meanwhile fails on its next write (its checkpoint
            # folder is gone, or its row); the worker stops, writing nothing more for it.
            if _check_study(storage, study_name):
                raise
            # The driver's words ("Connection refused"), not Optuna's wrapper's.
            reason = outage_reason(e) or one_line(e, 300)
            if tracked.current is not None and cut_off is None:
                cut_off = (tracked.current, reason)
            tracked.current = None
            delay = backoff.failed(reason)
            ctx.status(event="outage", reason=reason, retry_in=round(delay))
            ctx.stop.wait(delay)
    ctx.status(event="done", ran=ran)
    return ran


def worker_process_main(options: WorkerOptions, storage_url: str | None = None) -> int:
    """Entry of a child process started by the dispatcher: signals, status lines, the loop.

    ``storage_url`` None reads ``$SWEEPER_STORAGE``, which the dispatcher sets.

    Status goes to stdout as one JSON object per line for the parent's live display.
    SIGTERM/SIGINT stop the running trial at the next batch: its last epoch's checkpoint
    stays, and the trial is re-queued to resume on any worker.
    """
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    ctx = WorkerContext(
        study_name=options.study_name,
        artifacts=options.artifacts,
        worker_id=worker_identity(options.worker_index),
        data_root=options.data_root,
        study_key=options.study_key,
        devices=options.devices,
        on_status=lambda event: print(json.dumps(event, default=str), flush=True),
    )

    def stop(signum: int, _frame: object) -> None:
        log.warning("worker %s: %s, stopping", ctx.worker_id, signal.Signals(signum).name)
        ctx.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    try:
        run_worker(options.study_name, storage_url, ctx, options.limits, options.heartbeat)
    except StorageUnavailable as e:
        if ctx.stop.is_set():
            return 0
        log.error("worker %s stops: %s", ctx.worker_id, e)
        ctx.status(event="gone", reason=str(e))
        return EXIT_STORAGE_GONE
    except WorkerStopped as e:
        log.error("worker %s stops, every trial here would fail alike: %s", ctx.worker_id, e)
        ctx.status(event="fatal", reason=str(e))
        return EXIT_BAD_INPUT
    except (StudyDeleted, StudyError) as e:  # gone since the parent found it: not restarted
        log.error("worker %s stops: %s", ctx.worker_id, e)
        ctx.status(event="fatal", reason=str(e))
        return EXIT_BAD_INPUT
    return 0
