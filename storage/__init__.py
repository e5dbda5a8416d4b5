"""storage: where studies live.

One way in: :func:`open_storage` turns a URL (SQLite, PostgreSQL, MySQL/MariaDB or the
gRPC proxy) into an Optuna storage with connection settings that suit many workers.
Errors come out as :class:`StorageError`, one line, password masked by :func:`redact`.
Whatever sweeper does to trials below Optuna's public API (retry chains, heartbeats,
batched writes) is here too, in one module (``storage/_trials.py``).
"""

from __future__ import annotations

from storage._artifacts import open_artifact_store
from storage._errors import StorageError
from storage._heartbeat import HeartbeatSettings
from storage._open import (
    CONNECTIONS_PER_PROCESS,
    IO_TIMEOUT_S,
    SCHEMES,
    close_storage,
    open_storage,
)
from storage._outage import (
    STORAGE_WAIT_S,
    TRANSIENT_ERRORS,
    Backoff,
    StorageUnavailable,
    outage_reason,
)
from storage._proxy import run_proxy
from storage._trials import (
    PRIVATE_API,
    RetryCallback,
    add_finished_trials,
    fail_and_requeue,
    heartbeat_ages,
    optuna_version_problem,
    record_heartbeat,
    retried_numbers,
    retry_callback,
    retry_count,
    retry_root,
    set_trial_user_attrs,
    storage_of,
)
from storage._url import DEFAULT_URL, ENV_VAR, redact, resolve_url, scrub

__all__ = [
    "CONNECTIONS_PER_PROCESS",
    "DEFAULT_URL",
    "ENV_VAR",
    "IO_TIMEOUT_S",
    "PRIVATE_API",
    "SCHEMES",
    "STORAGE_WAIT_S",
    "TRANSIENT_ERRORS",
    "Backoff",
    "HeartbeatSettings",
    "RetryCallback",
    "StorageError",
    "StorageUnavailable",
    "add_finished_trials",
    "close_storage",
    "fail_and_requeue",
    "heartbeat_ages",
    "open_artifact_store",
    "open_storage",
    "optuna_version_problem",
    "outage_reason",
    "record_heartbeat",
    "redact",
    "resolve_url",
    "retried_numbers",
    "retry_callback",
    "retry_count",
    "retry_root",
    "run_proxy",
    "scrub",
    "set_trial_user_attrs",
    "storage_of",
]
