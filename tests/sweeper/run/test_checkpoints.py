"""Checkpoints keyed by the study's stored id; a checkpoint of another config never resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest

from storage import open_storage
from sweeper.attrs import (
    CONFIG_OVERRIDES_ATTR,
    PROMOTE_CHECKPOINT_ATTR,
    PROMOTED_FROM_ATTR,
    SCHEMA_ATTR,
    SPEC_ATTR,
)
from sweeper.define import (
    SCHEMA_VERSION,
    create_study,
    delete_study,
    load_study,
    parse_spec,
    study_key,
    trial_config,
)
from sweeper.errors import StudyError
from sweeper.paths import (
    checkpoints_dir,
    find_trial_checkpoints,
    inside,
    log_file,
    recorded_folder,
)
from sweeper.run import (
    Objective,
    TrialFailed,
    WorkerContext,
    WorkerLimits,
    resume_mismatch,
    run_worker,
    seed_promoted_checkpoint,
)
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


# ---- folders a trial attribute records (issue 22: promote followed ../outside) ----------


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An artifacts directory, a checkpoint folder beside it (outside), and ways a stored
    attribute can name that folder: climbing out, absolute, through a symlink inside."""
    artifacts, elsewhere = tmp_path / "artifacts", tmp_path / "outside"
    (artifacts / "checkpoints").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "last.pt").write_bytes(b"not yours")
    (artifacts / "checkpoints" / "link").symlink_to(elsewhere)
    names = {"climbs out": "../outside", "absolute": str(elsewhere), "symlink": "checkpoints/link"}
    return artifacts, names


@pytest.mark.parametrize("how", ["climbs out", "absolute", "symlink"])
def test_a_promoted_trial_never_copies_a_checkpoint_from_outside_the_artifacts(
    outside: tuple[Path, dict[str, str]], how: str
) -> None:
    artifacts, names = outside
    attrs = {PROMOTE_CHECKPOINT_ATTR: names[how], PROMOTED_FROM_ATTR: 3}
    out_dir = artifacts / "checkpoints" / "s-1" / "trial-9"
    with pytest.raises(StudyError, match="outside the artifacts directory"):
        seed_promoted_checkpoint(attrs, artifacts, out_dir)
    assert not out_dir.exists()


def test_a_recorded_folder_inside_the_artifacts_is_used(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    assert recorded_folder("checkpoints/s-1/trial-0", artifacts) == (
        artifacts.resolve() / "checkpoints" / "s-1" / "trial-0"
    )
    assert recorded_folder("checkpoints/s-1/trial-0") == Path("checkpoints/s-1/trial-0")
    for bad in ("../x", "/etc", "a\nb", "", None, 7):
        with pytest.raises(StudyError, match="outside the artifacts directory"):
            recorded_folder(bad)


def test_stored_config_overrides_may_not_move_data_weights_or_output(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A verify re-run's overrides are its seed or fold; an attribute that sets a path is
    refused before anything is read or written."""
    create_study(parse_spec(tiny_spec("overridden", 1)), open_storage(sqlite_url))
    study = optuna.load_study(study_name="overridden", storage=sqlite_url)
    params = {"lr": 1e-3, "weight_decay": 1e-5, "T_max": 2, "eta_min": 1e-6}
    evil = {"data.image_root": "/etc", "seed": 3}
    study.enqueue_trial(params, user_attrs={CONFIG_OVERRIDES_ATTR: evil})
    trial = _run_one_trial_of(sqlite_url, "overridden", tmp_path)
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == (
        "bad config: config_overrides: may set only seed, data.n_folds, data.fold; "
        "not data.image_root"
    )
    assert not (tmp_path / "artifacts" / "checkpoints").exists()


def _run_one_trial_of(url: str, name: str, root: Path) -> optuna.trial.FrozenTrial:
    """The objective on the study's next waiting trial, without the worker loop."""
    study, spec = load_study(name, open_storage(url))
    ctx = WorkerContext(name, root / "artifacts", "test:1/0.abcdef", data_root=root)
    study.optimize(Objective(spec, ctx, None), n_trials=1, catch=(TrialFailed,))
    return study.get_trials()[-1]
