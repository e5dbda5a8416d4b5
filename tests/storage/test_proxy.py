"""The gRPC storage proxy: a real server process in front of a real SQLite file."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from storage import StorageError, open_storage, run_proxy
from tests.servers import proxy_process

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy(sqlite_url: str) -> Iterator[str]:
    """A proxy process serving ``sqlite_url``; yields its grpc:// URL."""
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    with proxy_process(sqlite_url, **pipe) as (url, process):
        yield url
    output, _ = process.communicate(timeout=10)
    assert b"starting the gRPC storage proxy for sqlite:///" in output, output.decode()


def test_study_made_through_the_proxy_is_in_the_database(proxy: str, sqlite_url: str) -> None:
    remote = open_storage(proxy, connect_timeout=30)  # the child needs a moment to import
    study = optuna.create_study(storage=remote, study_name="via-proxy", direction="maximize")
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    trial.set_user_attr("host", "node-1")
    trial.report(0.25, step=1)
    study.tell(trial, 0.5)

    direct = optuna.load_study(study_name="via-proxy", storage=open_storage(sqlite_url))
    [stored] = direct.get_trials()
    assert stored.state == optuna.trial.TrialState.COMPLETE
    assert stored.value == 0.5
    assert stored.params == trial.params
    assert stored.user_attrs == {"host": "node-1"}
    assert stored.intermediate_values == {1: 0.25}


def test_proxy_refuses_a_proxy_url() -> None:
    with pytest.raises(StorageError, match="not another proxy"):
        run_proxy("grpc://127.0.0.1:13000")


def test_proxy_says_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StorageError, match=f"cannot listen on 127.0.0.1:{port}"):
            run_proxy(f"sqlite:///{tmp_path / 'x.db'}", host="127.0.0.1", port=port)
