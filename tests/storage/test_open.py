"""open_storage on the real backends: settings that hold up with many workers, clear errors."""

from __future__ import annotations

import sqlite3
import threading

import optuna
import psycopg2
import pytest
import sqlalchemy

from storage import StorageError, open_storage
from tests.servers import mysql_database, old_schema_study


def test_sqlite_uses_wal_and_a_long_busy_timeout(sqlite_url: str, tmp_path) -> None:
    storage = open_storage(sqlite_url)
    assert sqlite3.connect(tmp_path / "sweeps.db").execute("PRAGMA journal_mode").fetchone() == (
        "wal",
    )
    with storage.engine.connect() as conn:
        busy_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert busy_ms >= 30_000


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_postgres_urls_with_and_without_driver_name_open(postgres_url: str, scheme: str) -> None:
    url = scheme + postgres_url[postgres_url.index("://") :]
    storage = open_storage(url)
    assert storage.engine.driver == "psycopg2"
    assert storage.engine.pool.size() == 1  # a small pool: 64 workers stay under 100 connections


def test_server_connections_killed_while_idle_are_replaced(postgres_url: str) -> None:
    """pool_pre_ping: a connection the server dropped (restart, idle timeout) is not reused."""
    storage = open_storage(postgres_url)
    optuna.create_study(storage=storage, study_name="pre-ping")
    database = sqlalchemy.engine.make_url(postgres_url).database
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        assert cur.rowcount >= 1  # the storage's pooled connection was there to kill
    admin.close()
    assert "pre-ping" in optuna.get_all_study_names(storage)


def test_mysql_opens_with_a_small_pool(mysql_url: str) -> None:
    storage = open_storage(mysql_url)
    assert storage.engine.pool.size() == 1
    optuna.create_study(storage=storage, study_name="small-pool")
    assert "small-pool" in optuna.get_all_study_names(storage)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:Secret1@db/x", "unknown scheme 'mysql' (use mysql+pymysql://)"),
        ("redis://u:Secret1@db/0", "unknown scheme 'redis'"),
        ("sweeps.db", "unknown scheme '(none)'"),
        ("grpc://proxy", "expected grpc://HOST:PORT"),
        ("postgresql://u:Secret1@127.0.0.1:1/x", "Connection refused"),
        ("postgresql://postgres@127.0.0.1:5432/no_such_db_here", 'database "no_such_db_here"'),
        ("mysql+pymysql://root:Secret1@127.0.0.1:3306/test", "Access denied"),
        ("sqlite:////no/such/dir/sweeps.db", "unable to open database file"),
    ],
)
def test_unusable_urls_give_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(StorageError) as info:
        open_storage(url)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert "Secret1" not in text


def test_old_schema_names_the_upgrade_command(sqlite_url: str) -> None:
    old_schema_study(sqlite_url)
    with pytest.raises(StorageError) as info:
        open_storage(sqlite_url)
    assert str(info.value) == (
        f"storage {sqlite_url} has an older Optuna table schema; upgrade it once with: "
        f"optuna storage upgrade --storage '{sqlite_url}'"
    )


def test_old_schema_message_masks_the_password_on_postgres(empty_postgres_url: str) -> None:
    with_password = empty_postgres_url.replace("postgres@", "postgres:trust-ignores-me@")
    old_schema_study(empty_postgres_url, opened_as=with_password)
    with pytest.raises(StorageError) as info:
        open_storage(with_password)
    text = str(info.value)
    assert "optuna storage upgrade --storage 'postgresql+psycopg2://postgres:***@127.0.0.1" in text
    assert "trust-ignores-me" not in text


def test_grpc_proxy_url_opens_a_proxy_client(sqlite_url: str) -> None:
    from optuna.storages._grpc.server import make_server  # no public way to stop the server

    server = make_server(open_storage(sqlite_url), "127.0.0.1", 0)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        proxy = open_storage(f"grpc://127.0.0.1:{port}", connect_timeout=5)
        optuna.create_study(storage=proxy, study_name="through-proxy")
        assert optuna.get_all_study_names(open_storage(sqlite_url)) == ["through-proxy"]
        proxy.close()
    finally:
        server.stop(grace=None)


def test_unreachable_grpc_proxy_is_a_storage_error() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("grpc://127.0.0.1:1", connect_timeout=0.5)
    assert "no gRPC storage proxy answered within 0.5 s" in str(info.value)


def test_opening_a_fresh_mysql_database_at_once() -> None:
    """Processes making Optuna's schema at once (two create-study, workers started together):
    MariaDB's DDL is not transactional, so the losers' CREATE TABLE ("already exists") or
    schema stamp ("Duplicate entry") collides mid-way; each opens once the winner is done.
    With four at once the race is lost nearly every time, so a missing retry shows."""
    barrier = threading.Barrier(4)
    failed: list[str] = []
    with mysql_database() as url:

        def create(name: str) -> None:
            barrier.wait()
            try:
                optuna.create_study(storage=open_storage(url), study_name=name)
            except StorageError as e:
                failed.append(str(e))

        threads = [threading.Thread(target=create, args=(f"s{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failed == []
        names = optuna.get_all_study_names(open_storage(url))
    assert sorted(names) == ["s0", "s1", "s2", "s3"]
