"""storage: where studies live.

One way in: :func:`open_storage` turns a URL (SQLite, PostgreSQL, MySQL/MariaDB or the
gRPC proxy) into an Optuna storage with connection settings that suit many workers.
Errors come out as :class:`StorageError`, one line, password masked by :func:`redact`.
"""

from __future__ import annotations

from storage._artifacts import open_artifact_store
from storage._attrs import set_trial_user_attrs
from storage._bulk import add_finished_trials
from storage._errors import StorageError
from storage._heartbeat import HeartbeatSettings
from storage._open import CONNECTIONS_PER_PROCESS, SCHEMES, close_storage, open_storage
from storage._outage import STORAGE_WAIT_S, TRANSIENT_ERRORS, Backoff, StorageUnavailable
from storage._proxy import run_proxy
from storage._url import DEFAULT_URL, ENV_VAR, redact, resolve_url, scrub

__all__ = [
    "CONNECTIONS_PER_PROCESS",
    "DEFAULT_URL",
    "ENV_VAR",
    "SCHEMES",
    "STORAGE_WAIT_S",
    "TRANSIENT_ERRORS",
    "Backoff",
    "HeartbeatSettings",
    "StorageError",
    "StorageUnavailable",
    "add_finished_trials",
    "close_storage",
    "open_artifact_store",
    "open_storage",
    "redact",
    "resolve_url",
    "run_proxy",
    "scrub",
    "set_trial_user_attrs",
]
