"""``sweeper delete-study`` under running workers: each stops once with one line, nothing is
restarted, and nothing is written for the deleted study afterwards."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from storage import open_storage
from sweeper.define import create_study, delete_sweep, parse_spec, study_key
from sweeper.paths import checkpoints_dir
from sweeper.run import StudyDeleted, WorkerContext, WorkerLimits, run_worker
from tests.sweeper.tiny_sweep import (
    create,
    make_data,
    start_sweeper,
    sweeper,
    tiny_spec,
    worker_args,
)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _wait_for(path: Path, thread: threading.Thread, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert thread.is_alive(), "the worker ended before its first checkpoint"
        assert time.monotonic() < deadline, f"no {path} after {timeout_s:.0f} s"
        time.sleep(0.1)


def test_a_worker_stops_when_its_study_is_deleted(tmp_path: Path, sqlite_url: str) -> None:
    make_data(tmp_path)
    storage = open_storage(sqlite_url)
    create_study(parse_spec(tiny_spec("doomed", 4, epochs=30)), storage)
    artifacts = tmp_path / "artifacts"
    folder = checkpoints_dir(artifacts, study_key("doomed", storage))
    ctx = WorkerContext("doomed", artifacts, "test:1/0.abcdef", data_root=tmp_path)
    raised: list[BaseException] = []

    def work() -> None:
        try:
            run_worker("doomed", sqlite_url, ctx, WorkerLimits(n_trials=4))
        except BaseException as e:  # handed to the test
            raised.append(e)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    _wait_for(folder / "trial-0" / "last.pt", worker)
    delete_sweep("doomed", storage, artifacts)
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert [type(e) for e in raised] == [StudyDeleted], raised
    assert str(raised[0]) == "study 'doomed' was deleted"
    assert not folder.exists()  # the epoch after the deletion did not bring it back


@pytest.mark.slow
def test_delete_study_under_two_worker_processes(tmp_path: Path, sqlite_url: str) -> None:
    """Each child stops once (exit 2, one line), none is restarted, the node exits 2, and
    neither a checkpoint nor a log reappears after the deletion."""
    make_data(tmp_path)
    create(tmp_path, sqlite_url, tiny_spec("doomed", 8, epochs=30), "--skip-check")
    artifacts = tmp_path / "artifacts"
    node = start_sweeper(
        *worker_args(tmp_path, sqlite_url, "doomed", procs=2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Both workers mid-trial (a checkpoint each): on a quiet machine the second may
        # still be starting when the first has one, and would meet no study at all.
        deadline = time.monotonic() + 300
        while len(list(artifacts.glob("checkpoints/*/trial-*/last.pt"))) < 2:
            assert node.poll() is None, node.communicate()[1]
            assert time.monotonic() < deadline, "the two workers never both checkpointed"
            time.sleep(0.2)
        deleted = sweeper(
            *("delete-study", "doomed", "--yes", "--storage", sqlite_url),
            *("--artifacts", str(artifacts)),
        )
        assert deleted.returncode == 0, deleted.stderr
        _, stderr = node.communicate(timeout=300)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d worker ", line)]
    assert sorted(line.split(" ", 1)[1].split(" (see")[0] for line in lines) == [
        "worker 0: exited 2: study 'doomed' was deleted",
        "worker 1: exited 2: study 'doomed' was deleted",
    ]
    assert "restart" not in stderr
    assert list((artifacts / "checkpoints").iterdir()) == []
    assert list((artifacts / "logs").iterdir()) == []
