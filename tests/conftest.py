"""Shared fixtures: the real sample data beside the repository, and real databases."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.servers import ServerUnreachable, mysql_database, postgres_database

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
# Real servers, never mocks (tests/servers.py): each URL is a scratch database of its own.


def _scratch(database: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    """The URL of ``database()`` for a fixture; a server that is down fails in one line."""
    try:
        with database() as url:
            yield url
    except ServerUnreachable as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database made for this test session (shared: use unique study names)."""
    yield from _scratch(postgres_database)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, without Optuna's schema yet; dropped after."""
    yield from _scratch(postgres_database)


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """URL of a MariaDB database made for this test session (shared: use unique study names)."""
    yield from _scratch(mysql_database)


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


# ---- file systems ---------------------------------------------------------------------


def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at ``where`` with ``options`` while the test runs; the test is
    skipped where mounting is not allowed."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A folder on a real 3 MB tmpfs, unmounted after: a disk that fills up mid-write.

    Needs root and mount(8); elsewhere the test is skipped (tests that need the behaviour
    on every machine pair it with a file-size limit, see tests/trainer_core/test_checkpoint.py,
    or with /dev/full, see tests/sweeper/run/test_repeat_failures.py).
    """
    yield from _tmpfs(tmp_path / "tmpfs", "size=3m")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written to: a read-only tmpfs as root (whom file modes do not
    stop), else a folder without write permission."""
    if os.geteuid() != 0:
        where = tmp_path / "read-only"
        where.mkdir(mode=0o555)
        yield where
        where.chmod(0o755)
        return
    yield from _tmpfs(tmp_path / "read-only", "ro,size=1m")
