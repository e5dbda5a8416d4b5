"""open_storage: the one place that turns a storage URL into an Optuna storage."""

from __future__ import annotations

import logging
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning, StorageInternalError
from optuna.storages import BaseStorage, GrpcStorageProxy, RDBStorage
from sqlalchemy.engine import make_url

from storage._errors import StorageError
from storage._heartbeat import HeartbeatSettings, SteadyHeartbeatStorage
from storage._url import redact, resolve_url, scrub

__all__ = [
    "CONNECTIONS_PER_PROCESS",
    "IO_TIMEOUT_S",
    "SCHEMES",
    "close_storage",
    "open_storage",
]

_logger = logging.getLogger(__name__)

SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "mysql+pymysql", "grpc")
SQLITE_BUSY_TIMEOUT_S = 30
# One persistent connection per process, and up to two more while the heartbeat thread and
# the main thread overlap (SQLAlchemy closes overflow connections as soon as they come back).
# With epochs of minutes and a 60 s heartbeat, 64 workers hold about 64 connections, under
# PostgreSQL's default max_connections=100; benchmarks/storage_backends.py's stress case
# (a trial every 0.15 s, heartbeat every second) peaks at about 1.6 a worker. Larger fleets
# go through the gRPC proxy (see open_storage).
_POOL = {"pool_size": 1, "max_overflow": 2}
CONNECTIONS_PER_PROCESS = _POOL["pool_size"] + _POOL["max_overflow"]
"""The most database connections one process opens (see docs/cluster.md's budget table)."""
# Drop connections before a server or firewall does (MySQL wait_timeout, idle NAT entries):
# a trial may sit for an epoch without touching the database.
_POOL_RECYCLE_S = 1800
_SCHEMA_RACE_TRIES = 4
_SCHEMA_RACE_SIGNS = ("already exists", "Duplicate entry")
IO_TIMEOUT_S = 30.0
"""How long a MySQL/MariaDB server may stay silent in the middle of an answer (or not take a
request) before the call fails like an unreachable server, so a half-open server or a
dropped route ends in an error that ``--storage-wait`` counts, not in a hang."""


def open_storage(
    url: str | None = None,
    *,
    heartbeat: bool = False,
    settings: HeartbeatSettings = HeartbeatSettings(),  # noqa: B008 (frozen, shared safely)
    connect_timeout: float = 10.0,
    io_timeout: float = IO_TIMEOUT_S,
    create: bool = True,
) -> BaseStorage:
    """Open the Optuna storage behind a URL, or raise :class:`StorageError` in one line.

    URLs:
        - ``sqlite:///path.db``: one host only (the WAL journal needs shared memory, and
          network filesystems break SQLite's locks). WAL journal and a 30 s busy timeout,
          so a few local worker processes share the file without "database is locked".
        - ``postgresql://`` / ``postgresql+psycopg2://`` and ``mysql+pymysql://``
          (MySQL or MariaDB): the database for a fleet. Connections are pinged before use
          and recycled every 30 min; each process keeps a pool of 1 (+2 overflow).
        - ``grpc://host:port``: Optuna's gRPC storage proxy in front of the database. Add it
          when the worker count nears the database's connection limit (PostgreSQL's default
          is 100: about 80 workers), or when workers are far from the database; the proxy
          also caches, which cuts the load of many workers polling one study. Heartbeats
          are not carried through the proxy in optuna 5, so stale trials are not retried.

    Args:
        url: storage URL; None reads ``$SWEEPER_STORAGE``, else ``sqlite:///sweeps.db``.
        heartbeat: record a heartbeat for running trials and re-queue trials whose worker
            died (workers want this; short-lived commands do not).
        settings: heartbeat interval, grace period and retry limit.
        connect_timeout: seconds to wait for a database server or proxy to answer.
        io_timeout: MySQL/MariaDB only: seconds the server may stay silent during its
            handshake or a query before the call fails (pymysql's read and write
            timeouts; PostgreSQL's handshake is bounded by ``connect_timeout``).
        create: make a SQLite file that is not there yet. Commands that only read (or
            act on studies that must exist) pass False, so a mistyped path is an error
            instead of a new empty database.

    Returns:
        A storage to pass to ``optuna.create_study`` / ``optuna.load_study``.

    Raises:
        StorageError: unknown scheme, unreachable server, refused login, or a database
            whose Optuna schema is older or newer than this Optuna's. The message shows
            the URL with its password masked.

    Example:
        >>> storage = open_storage("sqlite:///:memory:")
        >>> isinstance(storage, RDBStorage)
        True
    """
    url = resolve_url(url)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        hint = " (use mysql+pymysql://)" if scheme == "mysql" else ""
        raise StorageError(
            f"storage {redact(url)}: unknown scheme {scheme or '(none)'!r}{hint}; "
            f"expected one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme == "grpc":
        if heartbeat:
            _logger.warning(
                "%s: heartbeats do not pass through the gRPC proxy; stale trials will not "
                "be retried",
                redact(url),
            )
        return _open_grpc(url, connect_timeout)
    if scheme == "sqlite" and not create:
        _check_sqlite_exists(url)
    return _open_rdb(url, scheme, heartbeat, settings, (connect_timeout, io_timeout))


def _check_sqlite_exists(url: str) -> None:
    """StorageError unless the SQLite file behind ``url`` exists (or is in memory)."""
    try:
        path = make_url(url).database
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(f"storage {redact(url)}: not a valid SQLite URL ({e})") from e
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    if not Path(path).is_file():
        raise StorageError(
            f"storage {redact(url)}: no SQLite file at {Path(path).resolve()}; check the path "
            "(sweeper create-study makes the file)"
        )


def _open_rdb(
    url: str,
    scheme: str,
    heartbeat: bool,
    settings: HeartbeatSettings,
    timeouts: tuple[float, float],
) -> RDBStorage:
    """RDBStorage with the engine settings for its database, errors turned into StorageError."""
    shown = redact(url)
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; we ship psycopg2.
    driver_url = "postgresql+psycopg2" + url[len(scheme) :] if scheme == "postgresql" else url
    try:
        engine_kwargs = _engine_kwargs(driver_url, scheme, timeouts)
        extra = settings.rdb_kwargs() if heartbeat else {}
        return _rdb_storage(driver_url, engine_kwargs, extra)
    except RuntimeError as e:
        schema_error = _schema_error(driver_url, e)
        if schema_error is None:
            raise
        raise schema_error from e
    except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError, sqlite3.Error) as e:
        reason = _reason(e, timeouts[1])
        raise StorageError(f"cannot open storage {shown}: {scrub(reason, url)}") from e
    except ImportError as e:
        missing = e.__cause__ or e
        raise StorageError(
            f"cannot open storage {shown}: database driver missing ({missing})"
        ) from e


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], extra: dict[str, Any]) -> RDBStorage:
    """``RDBStorage(url)``, again when another process was making the schema at the same time.

    Processes that open an empty database at once (workers started together, two
    ``create-study``) all create Optuna's tables; the losers' CREATE collides with the
    winner's and fails with "already exists" (PostgreSQL: IntegrityError or
    ProgrammingError; MySQL/MariaDB, whose DDL is not transactional: OperationalError
    1050), or their stamp of the schema version with "Duplicate entry" (MySQL 1062). The
    schema is there then: open again.
    """
    for attempt in range(1, _SCHEMA_RACE_TRIES):
        try:
            return _new_rdb_storage(url, engine_kwargs, extra)
        except (
            sqlalchemy.exc.IntegrityError,
            sqlalchemy.exc.ProgrammingError,
            sqlalchemy.exc.OperationalError,
        ) as e:
            if not any(sign in str(e) for sign in _SCHEMA_RACE_SIGNS):
                raise
            time.sleep(0.2 * attempt)
    return _new_rdb_storage(url, engine_kwargs, extra)


def _new_rdb_storage(url: str, engine_kwargs: dict[str, Any], extra: dict[str, Any]) -> RDBStorage:
    with warnings.catch_warnings():
        # heartbeat_interval is marked experimental in optuna 5; we opt in on purpose.
        warnings.simplefilter("ignore", ExperimentalWarning)
        return SteadyHeartbeatStorage(url, engine_kwargs=engine_kwargs, **extra)


def _engine_kwargs(url: str, scheme: str, timeouts: tuple[float, float]) -> dict[str, Any]:
    """SQLAlchemy engine settings: busy timeout and WAL for SQLite, a small pool otherwise.

    ``timeouts``: seconds to connect, and (MySQL) for each read or write after.
    """
    if scheme == "sqlite":
        _enable_wal(url)
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    # psycopg2 takes whole seconds (libpq treats below 2 as 2); pymysql's connect_timeout
    # covers only the TCP connect, its read timeout the handshake and every answer after.
    connect, io = timeouts
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect))}
    if scheme == "mysql+pymysql":
        connect_args |= {"read_timeout": io, "write_timeout": io}
    return {
        "pool_pre_ping": True,
        "pool_recycle": _POOL_RECYCLE_S,
        **_POOL,
        "connect_args": connect_args,
    }


def _enable_wal(url: str) -> None:
    """Switch the SQLite file to the WAL journal (a setting stored in the file itself)."""
    path = make_url(url).database
    if not path or path == ":memory:":
        return
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _open_grpc(url: str, connect_timeout: float) -> GrpcStorageProxy:
    """A client of Optuna's gRPC storage proxy, once the proxy answers."""
    shown = redact(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise StorageError(f"storage {shown}: {e}; expected grpc://HOST:PORT") from e
    if not host or port is None:
        raise StorageError(f"storage {shown}: expected grpc://HOST:PORT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # experimental in optuna 5
        proxy = GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=connect_timeout)
    except ConnectionError as e:
        proxy.close()
        raise StorageError(
            f"cannot open storage {shown}: no gRPC storage proxy answered within "
            f"{connect_timeout:g} s"
        ) from e
    return proxy


def _schema_error(url: str, e: RuntimeError) -> StorageError | None:
    """One line for a database whose Optuna table schema does not match this Optuna, if so."""
    shown = redact(url)
    text = str(e)
    if "optuna storage upgrade" in text:
        hint = " (with the real password in place of ***)" if shown != url else ""
        return StorageError(
            f"storage {shown} has an older Optuna table schema; upgrade it once with: "
            f"optuna storage upgrade --storage '{shown}'{hint}"
        )
    if "pip install -U optuna" in text:
        return StorageError(
            f"storage {shown} was written by a newer Optuna than this one; update optuna "
            "(and sweeper) on this machine"
        )
    return None


def _reason(e: BaseException, io_timeout: float) -> str:
    """The driver's own message on one line, without SQLAlchemy's wrapper text."""
    inner = getattr(e, "orig", None) or e
    text = " ".join(str(inner).split()) or type(inner).__name__
    if "timed out" in text and "MySQL" in text:  # pymysql's (2013, '... (timed out)')
        return f"the server sent no answer within {io_timeout:g} s: timeout expired"
    return text


def close_storage(storage: BaseStorage) -> None:
    """Release a storage's connections now rather than at garbage collection.

    A worker opens a short-lived storage to read the spec before its long-lived one; without
    this, each process would hold one connection more than it uses.
    """
    if isinstance(storage, GrpcStorageProxy):
        storage.close()
    elif isinstance(storage, RDBStorage):
        storage.remove_session()
        storage.engine.dispose()
