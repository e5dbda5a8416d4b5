"""Workers in separate processes against real databases: distinct trials, kills, signals."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_storage
from sweeper.define import given_back, load_study, parse_spec
from tests.sweeper.tiny_sweep import (
    create,
    make_data,
    start_sweeper,
    sweeper,
    tiny_spec,
    wait_for_checkpoint,
    worker_args,
    worker_logs,
)

EXPECTED_ATTRS = {
    "val_precision",
    "val_recall",
    "val_hmean",
    "gap_precision",
    "gap_recall",
    "gap_hmean",
    "gap",
    "score",
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "images_per_s",
    "peak_memory_mb",
    "device",
    "host",
    "worker_id",
}

pytestmark = pytest.mark.slow


def _create(tmp_path: Path, url: str, spec: dict) -> None:
    create(tmp_path, url, spec, "--skip-check")  # a known-good spec: no backbone to build


@pytest.mark.parametrize(
    "backend, procs, n_trials",
    [("postgres_url", 4, 20), ("mysql_url", 3, 12)],
)
def test_parallel_workers_run_distinct_trials(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    study_name: str,
    backend: str,
    procs: int,
    n_trials: int,
) -> None:
    url = request.getfixturevalue(backend)
    make_data(tmp_path)
    _create(tmp_path, url, tiny_spec(study_name, n_trials, epochs=1))
    result = sweeper(*worker_args(tmp_path, url, study_name, procs=procs), timeout=600)
    assert result.returncode == 0, result.stderr

    study, _ = load_study(study_name, open_storage(url))
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials
    # Workers racing past the budget check give their extra trial back untrained (FAIL,
    # marked); any other failure is a bug.
    assert not [t for t in trials if t.state == TrialState.FAIL and not given_back(t)]
    params = {tuple(sorted(t.params.items())) for t in finished}
    assert len(params) == len(finished), "two workers trained the same configuration"
    assert len({t.user_attrs["worker_id"] for t in finished}) > 1
    for t in finished:
        assert set(t.user_attrs) >= EXPECTED_ATTRS, EXPECTED_ATTRS - set(t.user_attrs)
    for t in (t for t in finished if t.state == TrialState.COMPLETE):
        assert t.value == pytest.approx(t.user_attrs["score"])


def _spawn_worker(tmp_path: Path, url: str, name: str) -> subprocess.Popen:
    return start_sweeper(
        *worker_args(tmp_path, url, name, grace_s=3),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test can kill parent and child
    )


def _retry_of_first(url: str, name: str) -> optuna.trial.FrozenTrial:
    study, _ = load_study(name, open_storage(url))
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1
    return retries[0]


def test_sigkill_mid_trial_is_retried_from_its_checkpoint(
    tmp_path: Path, postgres_url: str, study_name: str
) -> None:
    make_data(tmp_path)
    _create(tmp_path, postgres_url, tiny_spec(study_name, 1, epochs=8))
    first = _spawn_worker(tmp_path, postgres_url, study_name)
    wait_for_checkpoint(tmp_path / "artifacts", study_name, first)
    os.killpg(first.pid, signal.SIGKILL)  # the parent and its training child, no cleanup
    first.wait()

    second = sweeper(*worker_args(tmp_path, postgres_url, study_name, grace_s=3))
    assert second.returncode == 0, second.stderr
    retry = _retry_of_first(postgres_url, study_name)
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    resumed = retry.user_attrs["resumed_from_epoch"]
    assert resumed >= 1
    # The retry trained only the epochs after the checkpoint, and its curve is whole.
    assert sorted(retry.intermediate_values) == list(range(1, 9))
    assert retry.user_attrs["epochs_run"] == 8


def test_sigterm_stops_within_30s_and_the_trial_resumes_elsewhere(
    tmp_path: Path, sqlite_url: str, study_name: str
) -> None:
    make_data(tmp_path)
    _create(tmp_path, sqlite_url, tiny_spec(study_name, 1, epochs=8))
    first = _spawn_worker(tmp_path, sqlite_url, study_name)
    wait_for_checkpoint(tmp_path / "artifacts", study_name, first)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)  # raises if the worker outlives its 30 s stop grace

    second = sweeper(*worker_args(tmp_path, sqlite_url, study_name))
    assert second.returncode == 0, second.stderr
    retry = _retry_of_first(sqlite_url, study_name)
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] >= 1


def test_forced_pruning_prunes_and_keeps_metrics(tmp_path: Path) -> None:
    from storage import open_artifact_store
    from sweeper.run import Objective, WorkerContext

    make_data(tmp_path)
    spec = parse_spec(tiny_spec("prune-me", 2, epochs=3))
    # A real pruner whose bar no H-mean can reach: every trial stops after its first epoch.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(1.5))
    ctx = WorkerContext("prune-me", tmp_path / "artifacts", "test/0", data_root=tmp_path)
    study.optimize(Objective(spec, ctx, open_artifact_store(ctx.artifacts)), n_trials=2)
    for trial in study.trials:
        assert trial.state == TrialState.PRUNED
        assert list(trial.intermediate_values) == [1]
        assert trial.user_attrs["epochs_run"] == 1
        assert {"val_hmean", "gap", "gap_precision", "gap_recall"} <= set(trial.user_attrs)


def test_two_nodes_never_train_the_same_configuration(
    tmp_path: Path, postgres_url: str, study_name: str
) -> None:
    """Two `sweeper worker` parents (two nodes, each numbering its slots from 0), one study."""
    from sweeper.attrs import OVER_BUDGET_ATTR

    n_trials = 6
    make_data(tmp_path)
    # Every trial a random startup draw: one seed, so only the worker id can tell them apart.
    spec = tiny_spec(study_name, n_trials, epochs=1, sampler={"seed": 0, "n_startup_trials": 50})
    _create(tmp_path, postgres_url, spec)
    args = worker_args(tmp_path, postgres_url, study_name)
    nodes = [
        start_sweeper(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [node.communicate(timeout=600) for node in nodes]
    for node, (_, stderr) in zip(nodes, results, strict=True):
        assert node.returncode == 0, (stderr, worker_logs(tmp_path / "artifacts"))

    study, _ = load_study(study_name, open_storage(postgres_url))
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    given_back = [t for t in trials if t.user_attrs.get(OVER_BUDGET_ATTR)]
    assert len(finished) == n_trials, [(t.number, t.state, t.user_attrs) for t in trials]
    assert {t.state for t in given_back} <= {TrialState.FAIL}
    assert len(finished) + len(given_back) == len(trials)
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == n_trials, "two nodes trained the same configuration"
    ids = {t.user_attrs["worker_id"] for t in finished}
    assert all(i.count(":") == 1 and "/0." in i for i in ids), ids  # host:pid/slot.token
    logs = worker_logs(tmp_path / "artifacts")
    assert len(logs) == 2, logs.keys()  # one per node, never shared
