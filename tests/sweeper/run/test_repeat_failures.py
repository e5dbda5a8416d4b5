"""Failures that would repeat stop the worker; one trial's disk trouble is recorded and retried."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_storage
from sweeper.define import create_study, parse_spec, study_key
from sweeper.paths import checkpoints_dir
from sweeper.run import WorkerContext, WorkerLimits, WorkerStopped, run_worker
from tests.sweeper.tiny_sweep import create, make_data, sweeper, tiny_spec, worker_args

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _study(url: str, name: str, n_trials: int = 2) -> None:
    create_study(parse_spec(tiny_spec(name, n_trials, epochs=2)), open_storage(url))


def _ctx(root: Path, name: str) -> WorkerContext:
    return WorkerContext(name, root / "artifacts", "test:1/0.abcdef", data_root=root)


def test_a_full_disk_fails_the_trial_with_its_reason_and_leaves_no_partial_file(
    tmp_path: Path, sqlite_url: str
) -> None:
    make_data(tmp_path)
    _study(sqlite_url, "full")
    trial_dir = checkpoints_dir(tmp_path / "artifacts", study_key("full", open_storage(sqlite_url)))
    (trial_dir / "trial-0").mkdir(parents=True)
    # The kernel's own full disk: every write to /dev/full fails with ENOSPC.
    os.symlink("/dev/full", trial_dir / "trial-0" / "last.pt.tmp")

    run_worker("full", sqlite_url, _ctx(tmp_path, "full"), WorkerLimits(n_trials=1))
    first, *queued = optuna.load_study(study_name="full", storage=sqlite_url).get_trials()
    assert first.state == TrialState.FAIL
    assert (
        first.user_attrs["fail_reason"] == f"disk full at {trial_dir / 'trial-0' / 'last.pt.tmp'}"
    )
    assert not list((trial_dir / "trial-0").glob("*.tmp"))
    # One trial's trouble: the worker went on (its own limit stopped it), the trial waits.
    assert [t.state for t in queued] == [TrialState.WAITING]


def test_unusable_artifacts_stop_the_worker(tmp_path: Path, sqlite_url: str) -> None:
    make_data(tmp_path)
    _study(sqlite_url, "nowhere")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "checkpoints").write_text("a file where a folder belongs")
    with pytest.raises(WorkerStopped, match=r"artifacts directory .* is unusable"):
        run_worker("nowhere", sqlite_url, _ctx(tmp_path, "nowhere"))
    trials = optuna.load_study(study_name="nowhere", storage=sqlite_url).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]


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
