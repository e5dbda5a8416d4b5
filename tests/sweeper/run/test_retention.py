"""Checkpoint retention on real files and a real study: completed trials keep best.pt only,
the best pruned stay promotable, the rest go; ``sweeper status`` shows the disk."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from storage import open_storage
from sweeper.attrs import PROMOTED_FROM_ATTR
from sweeper.cli import app
from sweeper.define import create_study, parse_spec, study_key
from sweeper.paths import checkpoints_dir
from sweeper.run import apply_retention, checkpoint_usage
from tests.sweeper.tiny_sweep import tiny_spec

runner = CliRunner(env={"COLUMNS": "200"})
LR = {"lr": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)}


def _complete(val: float) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.COMPLETE,
        value=val,
        params={"lr": 1e-3},
        distributions=LR,
        user_attrs={
            "val_hmean": val,
            "gap_hmean": val,
            "gap": 0.0,
            "val_precision": val,
            "val_recall": val,
        },
    )


def _pruned(epoch: int, hmean: float) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.PRUNED,
        params={"lr": 1e-3},
        distributions=LR,
        intermediate_values={e: hmean for e in range(1, epoch + 1)},
    )


@pytest.fixture
def study_files(tmp_path: Path) -> tuple[str, Path, optuna.Study, Path]:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    retention = {"keep_pruned": 1, "top_k": 1, "outside_top": "none"}
    study = create_study(
        parse_spec(tiny_spec("keep", n_trials=9, epochs=4, retention=retention)),
        open_storage(url),
    )
    for trial in (
        _complete(0.9),  # 0: the top one
        _complete(0.5),  # 1: outside top_k
        _pruned(3, 0.4),  # 2: the best pruned
        _pruned(1, 0.6),  # 3: pruned earlier
        _pruned(1, 0.2),  # 4: pruned, its promotion waits
        create_trial(state=TrialState.FAIL, params={"lr": 1e-3}, distributions=LR),  # 5
    ):
        study.add_trial(trial)
    study.enqueue_trial({"lr": 1e-3}, user_attrs={PROMOTED_FROM_ATTR: 4})  # 6: waiting
    artifacts = tmp_path / "artifacts"
    folder = checkpoints_dir(artifacts, study_key("keep", study._storage))
    for n in range(7):
        (folder / f"trial-{n}").mkdir(parents=True)
        (folder / f"trial-{n}" / "last.pt").write_bytes(b"x" * 3000)
        (folder / f"trial-{n}" / "best.pt").write_bytes(b"x" * 1000)
    (folder / "trial-1" / "prob_maps.npz").write_bytes(b"x" * 500)
    return url, artifacts, study, folder


def _files(folder: Path) -> dict[int, set[str]]:
    return {
        int(d.name.split("-")[1]): {f.name for f in d.iterdir()} for d in sorted(folder.iterdir())
    }


def test_only_what_can_still_be_used_stays(
    study_files: tuple[str, Path, optuna.Study, Path],
) -> None:
    url, artifacts, study, folder = study_files
    spec = parse_spec(study.user_attrs["sweeper.spec"])
    before = checkpoint_usage(artifacts, study_key("keep", study._storage))
    assert (before.folders, before.last, before.best, before.bytes) == (7, 7, 7, 28500)

    freed = apply_retention(study, spec, artifacts)
    both = {"last.pt", "best.pt"}
    assert _files(folder) == {
        0: {"best.pt"},  # completed: weights only
        1: set(),  # completed outside top_k with outside_top: none
        2: both,  # the best pruned stays promotable
        3: set(),
        4: both,  # its promotion has not started
        5: both,  # failed: may be retried
        6: both,  # waiting
    }
    assert freed == 3000 + 4500 + 4000
    assert apply_retention(study, spec, artifacts) == 0  # nothing left to free

    status = runner.invoke(app, ["status", "keep", "--storage", url, "--artifacts", str(artifacts)])
    assert status.exit_code == 0, status.output
    assert "checkpoints: 17.0 kB in 7 trial folder(s) (5 best.pt, 4 last.pt)" in status.output


def test_by_default_completed_trials_keep_best_pt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study = create_study(parse_spec(tiny_spec("dflt", n_trials=9)), open_storage(url))
    for val in (0.9, 0.5):
        study.add_trial(_complete(val))
    folder = checkpoints_dir(tmp_path, study_key("dflt", study._storage))
    for n in range(2):
        (folder / f"trial-{n}").mkdir(parents=True)
        (folder / f"trial-{n}" / "last.pt").write_bytes(b"x")
        (folder / f"trial-{n}" / "best.pt").write_bytes(b"x")
    apply_retention(study, parse_spec(study.user_attrs["sweeper.spec"]), tmp_path)
    assert _files(folder) == {0: {"best.pt"}, 1: {"best.pt"}}


def test_bad_retention_names_the_field() -> None:
    with pytest.raises(ValueError, match="retention: outside_top: none needs top_k"):
        parse_spec(tiny_spec("bad", n_trials=2, retention={"outside_top": "none"}))
    with pytest.raises(ValueError, match=r"retention\.keep_pruned"):
        parse_spec(tiny_spec("bad", n_trials=2, retention={"keep_pruned": -1}))
