"""create_study / load_study on the real backends: the spec goes in and comes back out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_storage
from sweeper.attrs import BASELINE_ATTR, SCHEMA_ATTR, SPEC_ATTR
from sweeper.define import (
    SCHEMA_VERSION,
    SchedulePhasePruner,
    StudySpec,
    build_sampler,
    create_study,
    delete_study,
    load_spec,
    load_study,
    suggest_params,
)
from sweeper.errors import StudyError
from tests.sweeper.tiny_sweep import start_sweeper

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "tests" / "sweeper" / "specs" / "small.yaml"
RECEIPTS = REPO / "studies" / "receipts_dbnet.yaml"


def demo(name: str) -> StudySpec:
    return load_spec(DEMO).renamed(name)


def test_created_study_reads_back_the_spec(storage_url: str, study_name: str) -> None:
    spec = load_spec(RECEIPTS).renamed(study_name)
    create_study(spec, open_storage(storage_url))

    study, stored = load_study(study_name, open_storage(storage_url))  # as a worker would
    assert stored == spec
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["score"]  # optuna-dashboard's label, not "Objective 0"
    assert study.user_attrs[SCHEMA_ATTR] == SCHEMA_VERSION
    assert study.user_attrs[SPEC_ATTR] == spec.model_dump(mode="json")
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    # The receipts spec searches T_max and leaves pruner.kind at auto.
    assert isinstance(study.pruner, SchedulePhasePruner)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [t.user_attrs[BASELINE_ATTR] for t in waiting] == [0, 1]


def test_demo_study_creates_too(sqlite_url: str) -> None:
    study = create_study(load_spec(DEMO), open_storage(sqlite_url))
    assert study.study_name == "demo"
    assert len(study.get_trials(deepcopy=False)) == 1


def test_baselines_run_first_then_the_sampler_takes_over(sqlite_url: str) -> None:
    spec = load_spec(RECEIPTS)
    create_study(spec, open_storage(sqlite_url))
    study, spec = load_study(spec.name, open_storage(sqlite_url))
    for baseline in spec.baselines:
        trial = study.ask()
        assert suggest_params(trial, spec) == baseline
        study.tell(trial, 0.5)
    trial = study.ask()
    params = suggest_params(trial, spec)
    assert set(params) == set(spec.search_space)
    assert isinstance(params["T_max"], int) and 18 <= params["T_max"] <= 24
    assert spec.train_config(params).optimizer.lr == params["lr"]


def test_same_name_twice_needs_exist_ok_and_an_identical_spec(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    spec = demo("twice")
    create_study(spec, storage)

    with pytest.raises(StudyError) as info:
        create_study(spec, storage)
    assert "already exists with this same spec; pass --exist-ok" in str(info.value)

    again = create_study(spec, storage, exist_ok=True)
    assert len(again.get_trials(deepcopy=False)) == 1  # baselines not queued twice

    changed = load_spec(RECEIPTS).renamed("twice")
    for exist_ok in (False, True):
        with pytest.raises(StudyError) as info:
            create_study(changed, storage, exist_ok=exist_ok)
        assert "already exists and its stored spec differs" in str(info.value)
        assert "--exist-ok" in str(info.value)


def test_two_concurrent_create_study_processes_one_wins(
    empty_postgres_url: str, study_name: str
) -> None:
    """Both processes also race to make Optuna's schema: the database has none yet."""
    postgres_url = empty_postgres_url
    args = [
        *("create-study", str(DEMO), "--storage", postgres_url, "--name", study_name),
        "--skip-check",  # the race is at creation; building backbones only delays it
    ]
    runs = [
        start_sweeper(*args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in runs]  # a loaded machine
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser_stderr = next(err for code, _, err in results if code == 2)
    assert f"error: study '{study_name}' already exists" in loser_stderr
    study, _ = load_study(study_name, open_storage(postgres_url))
    assert len(study.get_trials(deepcopy=False)) == 1  # one baseline, queued once


def test_loading_needs_a_sweeper_study(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    with pytest.raises(StudyError, match="no study named 'nope'"):
        load_study("nope", storage)
    optuna.create_study(storage=storage, study_name="foreign")
    with pytest.raises(StudyError, match="not made by sweeper create-study"):
        load_study("foreign", storage)


def test_delete_study(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    create_study(demo("gone"), storage)
    delete_study("gone", storage)
    assert optuna.get_all_study_names(storage) == []
    with pytest.raises(StudyError, match="no study named 'gone'"):
        delete_study("gone", storage)


def test_workers_with_a_fixed_seed_draw_different_startup_trials() -> None:
    spec = demo("seeded")

    def first_lr(worker_id: str) -> float:
        study = optuna.create_study(sampler=build_sampler(spec, worker_id))
        return suggest_params(study.ask(), spec)["lr"]

    assert first_lr("vm:41/0.a1b2c3") == first_lr("vm:41/0.a1b2c3")  # reproducible per worker
    # Slot 0 on two nodes (the same host name, even) draws differently.
    assert first_lr("vm:41/0.a1b2c3") != first_lr("vm:97/0.d4e5f6")
    assert first_lr("vm:41/0.a1b2c3") != first_lr("vm:41/0.ffffff")
