"""Trials at the storage's level: the one module that knows Optuna's internals.

Everything sweeper does to a trial below Optuna's public Study/Trial API lives here, behind
typed functions that take studies and trials, never storage ids:

- retry chains: a trial's retry root and retry count, and the one retry-callback factory;
- heartbeats: recording one, reading every running trial's age, failing and re-queueing a
  trial whose worker went silent;
- batched writes: several user attributes, or many finished trials, in one transaction.

Optuna keeps a trial's storage id in the private ``_trial_id`` and ``_study_id``, and its
RDB storage's one-transaction helpers are private too; :data:`PRIVATE_API` lists what is
used, and ``tests/storage/test_trials.py`` fails loudly when an Optuna upgrade moves any of
it. Without them the batched writes fall back to one public call per key or trial.
"""

from __future__ import annotations

import copy
import importlib.metadata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "PRIVATE_API",
    "RetryCallback",
    "add_finished_trials",
    "fail_and_requeue",
    "heartbeat_ages",
    "optuna_version_problem",
    "record_heartbeat",
    "retried_numbers",
    "retry_callback",
    "retry_count",
    "retry_root",
    "set_trial_user_attrs",
    "storage_of",
]

RetryCallback = RetryHeartbeatStaleTrialCallback

try:  # Optuna's one-transaction helpers; absent, the batched writes go key by key.
    from optuna.storages._rdb import models as _models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError:  # pragma: no cover - only on an Optuna this was not tested with
    _models = None
    _create_scoped_session = None

PRIVATE_API = (
    "optuna.Trial._trial_id",
    "optuna.trial.FrozenTrial._trial_id",
    "optuna.Study._study_id",
    "optuna.Study._storage",
    "optuna.storages._rdb.models.TrialUserAttributeModel",
    "optuna.storages._rdb.models.StudyModel.find_or_raise_by_id",
    "optuna.storages._rdb.storage._create_scoped_session",
    "optuna.storages.RDBStorage._set_trial_attr_without_commit",
    "optuna.storages.RDBStorage._get_prepared_new_trial",
    "the trials and trial_heartbeats tables (trial_id, study_id, number, state, heartbeat)",
)
"""What of Optuna below its public API this module relies on (tested in test_trials.py)."""

# Optuna's heartbeat table and the trial columns it is read with (schema of optuna >= 2.9).
_TRIALS = sqlalchemy.table(
    "trials",
    sqlalchemy.column("trial_id", sqlalchemy.Integer),
    sqlalchemy.column("number", sqlalchemy.Integer),
    sqlalchemy.column("study_id", sqlalchemy.Integer),
    sqlalchemy.column("state", sqlalchemy.String),
)
_HEARTBEATS = sqlalchemy.table(
    "trial_heartbeats",
    sqlalchemy.column("trial_id", sqlalchemy.Integer),
    sqlalchemy.column("heartbeat", sqlalchemy.DateTime),
)


def optuna_version_problem(installed: str | None = None) -> str | None:
    """Why the installed Optuna (or ``installed``) may not work with this module, or None.

    The tested range is the one sweeper's own package metadata (pyproject.toml) declares,
    so the two cannot disagree; uv.lock pins a version inside it.
    """
    from packaging.requirements import Requirement

    try:
        requires = importlib.metadata.requires("sweeper") or []
    except importlib.metadata.PackageNotFoundError:
        return None  # run from a source tree that was never installed: nothing declared
    tested = next((r.specifier for r in map(Requirement, requires) if r.name == "optuna"), None)
    version = installed or optuna.__version__
    if tested is None or tested.contains(version, prereleases=True):
        return None
    return (
        f"optuna {version} is installed, but sweeper was tested with optuna{tested}: "
        "it relies on Optuna internals for retries, heartbeats and batched writes "
        "(storage/_trials.py); install a tested version (uv sync --frozen)"
    )


def retry_callback(max_retries: int | None) -> RetryCallback:
    """Optuna's re-queue of a failed trial: same parameters and curve, ``max_retries`` at most.

    The retry inherits the failed trial's reported values, so Hyperband judges a trial and
    its retries as one curve. ``None`` retries without limit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # experimental in optuna 5
        return RetryHeartbeatStaleTrialCallback(
            max_retry=max_retries, inherit_intermediate_values=True
        )


def retry_root(trial: FrozenTrial | optuna.Trial) -> int:
    """Number of the first trial of ``trial``'s retry chain (its own number if no retry)."""
    frozen = _frozen(trial)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        root = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return frozen.number if root is None else root


def retry_count(trial: FrozenTrial | optuna.Trial) -> int:
    """How many earlier members ``trial``'s retry chain has (0: not a retry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return len(RetryHeartbeatStaleTrialCallback.retry_history(_frozen(trial)))


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials some later trial retries (every failed member of a chain)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}


def record_heartbeat(trial: optuna.Trial) -> None:
    """Write ``trial``'s row in Optuna's heartbeat table now (SQL storages only)."""
    storage = _backend(trial.storage)
    if isinstance(storage, RDBStorage):
        storage.record_heartbeat(trial._trial_id)


def heartbeat_ages(study: optuna.Study) -> dict[int, float]:
    """Seconds since each RUNNING trial's latest row in Optuna's heartbeat table, by number.

    Measured on the database's clock, which also wrote the rows, as Optuna does. Empty for
    storages without the table (the gRPC proxy).
    """
    storage = _backend(study._storage)
    if not isinstance(storage, RDBStorage):
        return {}
    query = (
        sqlalchemy.select(_TRIALS.c.number, _HEARTBEATS.c.heartbeat, sqlalchemy.func.now())
        .join(_TRIALS, _TRIALS.c.trial_id == _HEARTBEATS.c.trial_id)
        .where(_TRIALS.c.study_id == study._study_id, _TRIALS.c.state == TrialState.RUNNING.name)
    )
    with storage.engine.connect() as connection:
        rows = connection.execute(query).all()
    # PostgreSQL's now() carries a time zone; the stored heartbeats are naive in the same one.
    return {number: (now.replace(tzinfo=None) - beat).total_seconds() for number, beat, now in rows}


def fail_and_requeue(
    study: optuna.Study,
    number: int,
    reason: str,
    retry: RetryCallback,
    reason_attr: str,
    drop_attrs: Sequence[str] = (),
) -> FrozenTrial | None:
    """Fail RUNNING trial ``number`` with ``reason`` (as ``reason_attr``) and queue its copy.

    The copy (``retry``'s limit applies) keeps the parameters, the curve and the user
    attributes but ``reason_attr`` and ``drop_attrs`` (a dead worker's heartbeat, say).

    Returns:
        The failed trial, or None when it had finished (or another process failed it) first.
    """
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    try:
        # The reason first: a finished trial takes no more attributes. A trial that
        # finishes in between keeps a stray reason, and is not failed.
        storage.set_trial_user_attr(trial_id, reason_attr, reason)
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            return None
    except UpdateFinishedTrialError:
        return None  # it finished, or another reaper or worker failed it first
    failed = storage.get_trial(trial_id)
    clean = copy.deepcopy(failed)
    dropped = {reason_attr, *drop_attrs}
    clean.user_attrs = {k: v for k, v in failed.user_attrs.items() if k not in dropped}
    retry(study, clean)
    return failed


def set_trial_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a running trial.

    On a SQL storage they go in one transaction: a trial's ~20 result attributes cost one
    commit (one fsync on SQLite) instead of twenty, which was most of the worker path's
    per-trial overhead (BENCHMARKS.md, orchestration). This reuses Optuna's own upsert;
    other storages, the gRPC proxy included, get one call per key.
    """
    backend = _backend(trial.storage)
    if not isinstance(backend, RDBStorage) or _create_scoped_session is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        for key, value in attrs.items():
            backend._set_trial_attr_without_commit(
                session, _models.TrialUserAttributeModel, trial._trial_id, key, value
            )


def add_finished_trials(study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
    """Copy finished ``trials`` (from another study) into ``study``.

    On a SQL storage they go in one transaction, numbered after the study's trials: a
    post-processing search of 300 trials costs one commit, where ``optimize`` on the SQL
    storage costs about seven per trial (on SQLite, each an fsync: most of a search's time,
    benchmarks/postprocess_search.py). This uses Optuna's own trial preparation; other
    storages, the gRPC proxy included, get one call per trial.
    """
    storage, study_id = study._storage, study._study_id
    backend = _backend(storage)
    if not isinstance(backend, RDBStorage) or _create_scoped_session is None:
        for trial in trials:
            storage.create_new_trial(study_id, template_trial=trial)
        return
    with _create_scoped_session(backend.scoped_session) as session:
        # The study row is locked so concurrent trial numbering stays unique, as Optuna does.
        _models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        for trial in trials:
            backend._get_prepared_new_trial(study_id, trial, session)


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage ``study`` reads and writes (Optuna keeps it private)."""
    return study._storage


def _backend(storage: BaseStorage) -> BaseStorage:
    """The storage under Optuna's cache wrapper, which ``optuna.load_study`` puts around SQL."""
    return getattr(storage, "_backend", storage)


def _frozen(trial: FrozenTrial | optuna.Trial) -> FrozenTrial:
    """A live trial's stored state (optuna 5's Trial has no system attributes)."""
    if isinstance(trial, FrozenTrial):
        return trial
    return trial.storage.get_trial(trial._trial_id)
