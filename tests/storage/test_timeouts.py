"""A database server that accepts connections and never answers ends in an error, not a hang.

Each call runs in a thread the test waits on for a bounded time; leaving the fake server's
block closes its connections, so a client that would hang forever ends with the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import optuna
import pytest

from storage import TRANSIENT_ERRORS, StorageError, open_storage
from tests.servers import Relay, silent_server

_BOUND_S = 10  # far above the 1 s timeouts below; without them the calls never return


def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """The exception ``call()`` raised within ``seconds`` (None if it returned); fails the
    test if it was still running then."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # handed to the test
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s: no timeout applies"
    return outcome[0]


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "postgresql"])
def test_a_server_that_never_answers_is_one_line_within_the_timeout(scheme: str) -> None:
    with silent_server() as port:
        url = f"{scheme}://u:Secret1@127.0.0.1:{port}/db"
        error = _within(
            _BOUND_S, lambda: open_storage(url, connect_timeout=1, io_timeout=1, create=False)
        )
    assert isinstance(error, StorageError), error
    text = str(error)
    assert text.startswith(f"cannot open storage {scheme}://u:***@127.0.0.1:{port}/db: ")
    assert text.endswith("timeout expired")
    assert "\n" not in text
    assert "Secret1" not in text


def test_a_mysql_server_that_hangs_mid_session_raises_a_storage_outage(mysql_url: str) -> None:
    """A server silent after the storage opened: the next call fails as an outage, which a
    worker's ``--storage-wait`` counts, instead of blocking it without limit."""
    relay = Relay(upstream=3306)
    try:
        storage = open_storage(relay.url(mysql_url), io_timeout=1)
        optuna.create_study(storage=storage, study_name="before-the-hang")
        relay.freeze()
        error = _within(_BOUND_S, lambda: optuna.get_all_study_names(storage))
    finally:
        relay.close()
    assert isinstance(error, TRANSIENT_ERRORS), repr(error)
