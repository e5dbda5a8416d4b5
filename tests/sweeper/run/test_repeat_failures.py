"""Failures that would repeat stop the worker (bad data, a full disk, unusable artifacts);
the trial they hit is recorded with its reason and re-queued."""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from storage import open_storage, retry_root
from sweeper.cli import app
from sweeper.define import create_study, parse_spec, study_key
from sweeper.paths import checkpoints_dir
from sweeper.run import WorkerContext, WorkerLimits, WorkerStopped, run_worker
from tests.sweeper.tiny_sweep import create, make_data, sweeper, tiny_spec, worker_args

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _study(url: str, name: str, n_trials: int = 2) -> None:
    create_study(parse_spec(tiny_spec(name, n_trials, epochs=2)), open_storage(url))


def _ctx(root: Path, name: str) -> WorkerContext:
    return WorkerContext(name, root / "artifacts", "test:1/0.abcdef", data_root=root)


def _fills_up(root: Path, url: str, artifacts: Path) -> None:
    """A worker whose checkpoints meet a full disk: the trial fails with "disk full at PATH"
    and is re-queued (its retry counts in the budget as the same trial), no partial file is
    left, and the worker stops with that line: every next trial would fail alike."""
    ctx = WorkerContext("full", artifacts, "test:1/0.abcdef", data_root=root)
    with pytest.raises(WorkerStopped) as info:
        run_worker("full", url, ctx, WorkerLimits(n_trials=2))
    trial_dir = checkpoints_dir(artifacts, study_key("full", open_storage(url))) / "trial-0"
    assert re.fullmatch(f"disk full at {re.escape(str(trial_dir))}/(best|last).pt", str(info.value))
    first, *queued = optuna.load_study(study_name="full", storage=url).get_trials()
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"] == str(info.value)
    assert [(t.state, retry_root(t)) for t in queued] == [(TrialState.WAITING, 0)]
    assert not list(artifacts.rglob("*.tmp"))


def test_a_disk_that_fills_up_stops_the_worker_and_requeues_the_trial(
    tmp_path: Path, sqlite_url: str, small_tmpfs: Path
) -> None:
    """A real 3 MB file system: the tiny trial's best.pt fits, its last.pt (with the
    optimizer state) fills the disk mid-write."""
    make_data(tmp_path)
    _study(sqlite_url, "full")
    _fills_up(tmp_path, sqlite_url, small_tmpfs / "artifacts")


def test_a_full_disk_from_the_first_byte_stops_the_worker_too(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Without root: the kernel's own full disk, /dev/full, where every write fails."""
    make_data(tmp_path)
    _study(sqlite_url, "full")
    artifacts = tmp_path / "artifacts"
    trial_dir = checkpoints_dir(artifacts, study_key("full", open_storage(sqlite_url)))
    (trial_dir / "trial-0").mkdir(parents=True)
    os.symlink("/dev/full", trial_dir / "trial-0" / "last.pt.tmp")
    _fills_up(tmp_path, sqlite_url, artifacts)


def test_unusable_artifacts_stop_the_worker(tmp_path: Path, sqlite_url: str) -> None:
    make_data(tmp_path)
    _study(sqlite_url, "nowhere")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "checkpoints").write_text("a file where a folder belongs")
    with pytest.raises(WorkerStopped, match=r"artifacts directory .* is unusable"):
        run_worker("nowhere", sqlite_url, _ctx(tmp_path, "nowhere"))
    trials = optuna.load_study(study_name="nowhere", storage=sqlite_url).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]


def test_a_read_only_artifacts_directory_exits_2_in_one_line(
    tmp_path: Path, sqlite_url: str, read_only_dir: Path
) -> None:
    """docs/cluster.md: an artifacts directory that cannot take a file is bad input (exit
    2, one line), found before any process starts, not an "unexpected OSError" (exit 1)."""
    _study(sqlite_url, "readonly")
    args = worker_args(tmp_path, sqlite_url, "readonly")
    args[args.index("--artifacts") + 1] = str(read_only_dir)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --artifacts: artifacts directory {read_only_dir} is unusable: ")
    assert "unexpected" not in line
    trials = optuna.load_study(study_name="readonly", storage=sqlite_url).get_trials()
    assert [t.state for t in trials] == []  # nothing was started


@pytest.mark.slow
def test_a_worker_on_bad_data_stops_with_exit_2_and_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    make_data(tmp_path)
    # As from a login node without the data: only the worker can find it missing.
    create(tmp_path, sqlite_url, tiny_spec("baddata", 4, epochs=2), "--skip-check")
    elsewhere = tmp_path / "wrong-mount"
    elsewhere.mkdir()
    args = worker_args(tmp_path, sqlite_url, "baddata")
    args[args.index("--data-root") + 1] = str(elsewhere)
    result = sweeper(*args)
    assert result.returncode == 2, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if "worker 0: exited 2: " in ln]
    assert f"bad data: data.annotations: cannot read {elsewhere}/tiny-data/" in line
    trials = optuna.load_study(study_name="baddata", storage=sqlite_url).get_trials()
    # One trial tried, and given back for a worker with the data: the budget is intact.
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
