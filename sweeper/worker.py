"""One worker process: pull trials from the study until the budget is spent or told to stop.

Trials run through ``study.optimize(n_trials=1)`` one at a time, because Optuna's heartbeat
(and the failing of stale trials) only runs inside ``optimize``: a worker killed with
SIGKILL leaves a RUNNING trial whose heartbeat stops; the next worker to start a trial
fails it and re-queues it with the same parameters, and the retry resumes from the
trial's last checkpoint.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import GrpcStorageProxy, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from storage import HeartbeatSettings, close_storage, open_artifact_store, open_storage
from sweeper.attrs import INTERRUPTED_ATTR
from sweeper.objective import Interrupted, Objective, TrialFailed, WorkerContext
from sweeper.reap import keep_alive
from sweeper.spec import StudySpec
from sweeper.study import load_study

__all__ = ["WorkerLimits", "budget_left", "run_worker", "worker_process_main"]

log = logging.getLogger(__name__)

_POLL_S = 2.0


@dataclass(frozen=True)
class WorkerLimits:
    """This process's own limits, on top of the study's budget."""

    n_trials: int | None = None
    timeout_s: float | None = None


def budget_left(study: optuna.Study, spec: StudySpec) -> bool | None:
    """True: start a trial. False: the study's budget is spent. None: wait and ask again.

    Finished (complete, pruned), running and failed trials count against
    ``budget.n_trials``, except failures that were re-queued (their retry counts instead).
    Queued trials (baselines, retries) always run.
    While other workers' trials are running we wait rather than leave: one of them may
    die, and its retry needs a worker.
    """
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    if TrialState.WAITING in states:
        return True
    budget = spec.budget
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    elapsed = (datetime.datetime.now() - min(starts)).total_seconds() if starts else 0.0
    if budget.timeout_s is not None and elapsed > budget.timeout_s:
        return False
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    used = sum(
        t.state in counted or (t.state == TrialState.FAIL and t.number not in retried)
        for t in trials
    )
    if used < budget.n_trials:
        return True
    return None if TrialState.RUNNING in states else False


def _retry_interrupted(spec: StudySpec) -> Callable[[optuna.Study, FrozenTrial], None]:
    """optimize() callback: re-queue a trial stopped by a signal, keeping its curve."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(
            max_retry=spec.retries.max_retries, inherit_intermediate_values=True
        )

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED_ATTR):
            retry(study, trial)
            log.info("trial %d re-queued to resume from its checkpoint", trial.number)

    return callback


def _with_keep_alive(
    objective: Callable[[optuna.Trial], float], interval_s: float
) -> Callable[[optuna.Trial], float]:
    def beating(trial: optuna.Trial) -> float:
        with keep_alive(trial, interval_s):
            return objective(trial)

    return beating


def run_worker(
    study_name: str,
    storage_url: str | None,
    ctx: WorkerContext,
    limits: WorkerLimits = WorkerLimits(),
    heartbeat: HeartbeatSettings | None = None,
    worker_index: int = 0,
) -> int:
    """Run trials of ``study_name`` until its budget, ``limits`` or ``ctx.stop``; return
    how many trials this worker ran."""
    plain = open_storage(storage_url)
    _, spec = load_study(study_name, plain)
    close_storage(plain)
    settings = heartbeat or HeartbeatSettings(max_retry=spec.retries.max_retries)
    storage = open_storage(storage_url, heartbeat=True, settings=settings)
    study, spec = load_study(study_name, storage, worker_index=worker_index)
    objective: Callable[[optuna.Trial], float] = Objective(
        spec, ctx, open_artifact_store(ctx.artifacts)
    )
    if isinstance(storage, GrpcStorageProxy):
        # Optuna's heartbeat stays in the SQL database; this one passes through the proxy,
        # where `sweeper reap` reads it.
        objective = _with_keep_alive(objective, settings.interval)
    callbacks = [_retry_interrupted(spec)]
    deadline = None if limits.timeout_s is None else time.monotonic() + limits.timeout_s
    ran = 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    while not ctx.stop.is_set():
        if limits.n_trials is not None and ran >= limits.n_trials:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        go = budget_left(study, spec)
        if go is False:
            break
        if go is None:
            ctx.status(event="waiting")
            ctx.stop.wait(_POLL_S)
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed, Interrupted), callbacks=callbacks)
        ran += 1
    ctx.status(event="done", ran=ran)
    return ran


def worker_process_main(
    study_name: str,
    storage_url: str | None,
    *,
    artifacts: Path,
    worker_index: int,
    limits: WorkerLimits,
    data_root: Path | None,
    device: str | None,
    threads: int | None,
    heartbeat: HeartbeatSettings | None,
) -> int:
    """Entry of a child process started by the dispatcher: signals, status lines, the loop.

    Status goes to stdout as one JSON object per line for the parent's live display.
    SIGTERM/SIGINT stop the running trial at the next batch: its last epoch's checkpoint
    stays, and the trial is re-queued to resume on any worker.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    ctx = WorkerContext(
        study_name=study_name,
        artifacts=artifacts,
        worker_id=f"{os.uname().nodename}/{worker_index}",
        data_root=data_root,
        device=device,
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
    run_worker(study_name, storage_url, ctx, limits, heartbeat, worker_index)
    return 0
