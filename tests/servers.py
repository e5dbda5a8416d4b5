"""Scratch databases on the local servers, and free ports: one copy for tests and benchmarks.

Real servers, never mocks: PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and
MariaDB on 127.0.0.1:3306 (root, empty password). DEVELOPERS.md says how to start them.
No pytest here, so benchmarks import it too (``from tests.servers import postgres_database``);
tests/conftest.py turns :class:`ServerUnreachable` into a test failure.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "Relay",
    "ServerUnreachable",
    "free_port",
    "mysql_database",
    "old_schema_study",
    "postgres_database",
    "proxy_process",
    "silent_server",
    "sqlite_database",
]

_DOWN = "{what} is not reachable on 127.0.0.1 ({err}); start it as DEVELOPERS.md says"


class ServerUnreachable(RuntimeError):
    """A local database server did not answer; the message says how to start it."""


def _scratch_name() -> str:
    return f"sweeper_scratch_{secrets.token_hex(4)}"


def _postgres_admin():  # -> psycopg2 connection
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5
        )
    except psycopg2.OperationalError as e:
        err = " ".join(str(e).split())
        raise ServerUnreachable(_DOWN.format(what="PostgreSQL", err=err)) from e
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def _mysql_admin():  # -> pymysql connection
    import pymysql

    try:
        return pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5
        )
    except pymysql.err.OperationalError as e:
        raise ServerUnreachable(_DOWN.format(what="MariaDB", err=e)) from e


def postgres_database() -> AbstractContextManager[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its URL.

    Example:
        >>> with postgres_database() as url:
        ...     storage = open_storage(url)

    Raises:
        ServerUnreachable: PostgreSQL does not answer on 127.0.0.1:5432.
    """
    name = _scratch_name()
    return _scratch(
        _postgres_admin(),
        f'CREATE DATABASE "{name}"',
        # FORCE: pooled connections of storages opened on it may still be there.
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}",
    )


def mysql_database() -> AbstractContextManager[str]:
    """A fresh MariaDB database, dropped afterwards; yields its URL.

    Raises:
        ServerUnreachable: MariaDB does not answer on 127.0.0.1:3306.
    """
    name = _scratch_name()
    return _scratch(
        _mysql_admin(),
        f"CREATE DATABASE `{name}`",
        f"DROP DATABASE IF EXISTS `{name}`",
        f"mysql+pymysql://root@127.0.0.1:3306/{name}",
    )


@contextmanager
def _scratch(admin, create: str, drop: str, url: str) -> Iterator[str]:
    """Run ``create`` on ``admin``, yield ``url``, then run ``drop`` and close ``admin``."""
    try:
        with admin.cursor() as cur:
            cur.execute(create)
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(drop)
        admin.close()


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A fresh SQLite file in a temporary folder, removed afterwards; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/sweeps.db"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """127.0.0.1:<port> -> 127.0.0.1:``upstream``, byte for byte: a database outage a test
    can cause without stopping the shared server.

    :meth:`close` is the server going away (open connections cut, new ones refused);
    ``Relay(old.port)`` is it coming back; :meth:`freeze` is a server that hangs (a
    half-open connection, a dropped route): connections stay open, nothing passes.
    """

    def __init__(self, port: int = 0, upstream: int = 5432) -> None:
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self.upstream = upstream
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.flowing = threading.Event()
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (of the upstream server on 127.0.0.1) through this relay."""
        return url.replace(f"127.0.0.1:{self.upstream}", f"127.0.0.1:{self.port}")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        """The server hangs: connections stay open and accepted, no byte passes."""
        self.flowing.clear()

    def close(self) -> None:
        """The outage: the port refuses, open connections are cut."""
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() in its thread
        self.server.close()
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.open.clear()
        self.flowing.set()  # frozen pipes wake and find their sockets closed


@contextmanager
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers (a hung server, a
    half-open connection); yields the port. Leaving the block closes every connection,
    which ends a client that would otherwise wait forever."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()
        for s in held:
            s.close()


@contextmanager
def proxy_process(database_url: str, **popen: Any) -> Iterator[tuple[str, subprocess.Popen]]:
    """Optuna's gRPC storage proxy (:func:`storage.run_proxy`) for ``database_url``, in its
    own process on a free port; yields its ``grpc://`` URL and the process, killed after.

    ``popen`` goes to :class:`subprocess.Popen` (``stdout=subprocess.PIPE`` to read what it
    printed once the block is left).
    """
    port = free_port()
    code = f"from storage import run_proxy; run_proxy({database_url!r}, '127.0.0.1', {port})"
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen([sys.executable, "-c", code], cwd=root, **popen)
    try:
        yield f"grpc://127.0.0.1:{port}", process
    finally:
        process.kill()
        if process.stdout is None:
            process.wait(timeout=10)


def old_schema_study(url: str, opened_as: str | None = None) -> None:
    """Study "old" in database ``url`` (created through ``opened_as``, default ``url``), its
    tables marked as made by Optuna 3.0: what a storage that needs an upgrade looks like."""
    import optuna
    import sqlalchemy

    from storage import open_storage

    optuna.create_study(storage=open_storage(opened_as or url), study_name="old")
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    engine.dispose()
