"""Checkpoints keyed by the study's stored id; a checkpoint of another config never resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest

from storage import open_storage
from sweeper.attrs import SCHEMA_ATTR, SPEC_ATTR
from sweeper.define import (
    SCHEMA_VERSION,
    create_study,
    delete_study,
    parse_spec,
    study_key,
    trial_config,
)
from sweeper.errors import StudyError
from sweeper.paths import checkpoints_dir, find_trial_checkpoints, inside, log_file
from sweeper.run import WorkerContext, WorkerLimits, resume_mismatch, run_worker
from tests.sweeper.tiny_sweep import make_data, tiny_spec


def _run_one_trial(url: str, name: str, root: Path) -> optuna.trial.FrozenTrial:
    ctx = WorkerContext(name, root / "artifacts", "test:1/0.abcdef", data_root=root)
    run_worker(name, url, ctx, WorkerLimits(n_trials=1))
    [trial] = optuna.load_study(study_name=name, storage=url).get_trials()
    return trial


def test_a_recreated_study_does_not_resume_the_old_ones_checkpoints(
    tmp_path: Path, sqlite_url: str
) -> None:
    make_data(tmp_path)
    spec = parse_spec(tiny_spec("again", 1, epochs=2))
    storage = open_storage(sqlite_url)
    create_study(spec, storage)
    old_key = study_key("again", storage)
    old = _run_one_trial(sqlite_url, "again", tmp_path)
    assert old.state == optuna.trial.TrialState.COMPLETE, old.user_attrs
    old_dir = checkpoints_dir(tmp_path / "artifacts", old_key) / "trial-0"
    assert (old_dir / "best.pt").exists()  # last.pt went with the retention
    shutil.copyfile(old_dir / "best.pt", old_dir / "last.pt")  # as if it had stayed

    delete_study("again", storage)  # the library call leaves the files; delete-study does not
    create_study(spec, storage)
    assert study_key("again", storage) != old_key
    new = _run_one_trial(sqlite_url, "again", tmp_path)
    assert new.state == optuna.trial.TrialState.COMPLETE
    assert "resumed_from_epoch" not in new.user_attrs
    assert sorted(new.intermediate_values) == [1, 2]


def test_only_the_same_config_resumes(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec("cfg", 1, epochs=2))
    params = {"lr": 1e-3, "weight_decay": 1e-4, "T_max": 2, "eta_min": 1e-6}
    cfg = trial_config(spec, params, data_root=tmp_path)
    state = {"config": cfg.model_dump_json()}
    assert resume_mismatch(cfg, state) is None
    # What the out-of-memory retry and another node change is still the same trial.
    moved = trial_config(spec, params, data_root=Path("/mnt"))
    smaller = moved.model_copy(
        update={"batch_size": 2, "grad_accum_steps": 2, "output_dir": tmp_path / "o"}
    )
    assert resume_mismatch(smaller, state) is None
    other = trial_config(spec, {**params, "lr": 2e-3}, data_root=tmp_path)
    assert resume_mismatch(other, state) == "its config differs in optimizer"
    assert resume_mismatch(cfg, {"epoch": 3}) == "the checkpoint records no config"


def test_names_from_the_database_stay_inside_the_artifacts_dir(
    tmp_path: Path, sqlite_url: str
) -> None:
    storage = open_storage(sqlite_url)
    # Written by other means than create-study, which refuses such a name.
    evil = optuna.create_study(study_name="../../evil", storage=storage)
    evil.set_user_attr(SCHEMA_ATTR, SCHEMA_VERSION)
    evil.set_user_attr(SPEC_ATTR, tiny_spec("evil", 1))
    artifacts = tmp_path / "a" / "artifacts"
    key = study_key("../../evil", storage)
    assert key.startswith("evil-id")  # made before studies had their own id
    for path in (checkpoints_dir(artifacts, key), log_file(artifacts, key, "../node", 0)):
        assert path.is_relative_to(artifacts.resolve()), path
    assert find_trial_checkpoints(artifacts, "../../evil", 0) is None
    with pytest.raises(StudyError, match="outside the artifacts directory"):
        inside(artifacts, artifacts / ".." / "elsewhere")
