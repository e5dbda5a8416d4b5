"""Shared fixtures: the real sample data beside the repository, and real databases."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: ICDAR 2015 toy images and SROIE receipts (see its README)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"sample data not found at {SHARED_DATA}; the repository expects ../shared/data"
        )
    return SHARED_DATA


# ---- databases ------------------------------------------------------------------------
# Real servers, never mocks: PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and
# MariaDB on 127.0.0.1:3306 (root, empty password). DEVELOPERS.md says how to start them.

_DB_DOWN = "{what} is not reachable on 127.0.0.1 ({err}); start it as DEVELOPERS.md says"


def _postgres_admin():  # -> psycopg2 connection
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5
        )
    except psycopg2.OperationalError as e:
        pytest.fail(_DB_DOWN.format(what="PostgreSQL", err=" ".join(str(e).split())))
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def _mysql_admin():  # -> pymysql connection
    import pymysql

    try:
        return pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5
        )
    except pymysql.err.OperationalError as e:
        pytest.fail(_DB_DOWN.format(what="MariaDB", err=e))


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database ``sweeper_test_<random>``, dropped afterwards; yields its URL."""
    name = f"sweeper_test_{secrets.token_hex(4)}"
    admin = _postgres_admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            # FORCE: pooled connections of storages the tests opened may still be there.
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def mysql_database() -> Iterator[str]:
    """A fresh MariaDB database ``sweeper_test_<random>``, dropped afterwards; yields its URL."""
    name = f"sweeper_test_{secrets.token_hex(4)}"
    admin = _mysql_admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database made for this test session (shared: use unique study names)."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, without Optuna's schema yet; dropped after."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """URL of a MariaDB database made for this test session (shared: use unique study names)."""
    with mysql_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file in this test's tmp_path."""
    return f"sqlite:///{tmp_path / 'sweeps.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def storage_url(request: pytest.FixtureRequest) -> str:
    """A storage URL on each real backend in turn: the test runs once per backend.

    - sqlite: a fresh file per test;
    - postgresql / mysql: one database per test session, dropped at its end, shared by all
      tests of the session; give studies unique names (see ``study_name``).

    Pass it to ``storage.open_storage`` or to the CLI's ``--storage``.
    """
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mysql": "mysql_url"}
    return request.getfixturevalue(fixture[request.param])


@pytest.fixture
def study_name() -> str:
    """A study name no other test uses, for the shared server databases."""
    return f"test-{secrets.token_hex(4)}"
