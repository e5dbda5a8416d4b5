"""Pruning that means something: never at the last epoch, a pruned trial promoted to finish
from its checkpoint, and what pruning saved, on real tiny trials in this process.

The pruner's competition is set up with finished trials whose rung values are fixed:
anything passes rung 0 (epoch 1), nothing passes rung 1 (epoch 2). So a real trial is
pruned at epoch 2 exactly when epoch 2 is not its last.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from storage import open_artifact_store, open_storage
from sweeper.after import promote_trial
from sweeper.attrs import PROMOTED_AT_ATTR, PROMOTED_FROM_ATTR
from sweeper.cli import app
from sweeper.define import create_study, load_study, parse_spec
from sweeper.rank import export_best, pruning_saving, rank_study
from sweeper.run import Objective, TrialFailed, WorkerContext
from tests.sweeper.tiny_sweep import make_data, tiny_spec
from trainer_core.config import load_train_config
from trainer_core.model import build_model

runner = CliRunner()
ARMS = 3


def _spec(name: str, epochs: int) -> dict[str, Any]:
    pruner = {"kind": "successive_halving", "min_resource": 1, "reduction_factor": 2}
    return tiny_spec(name, n_trials=10, epochs=epochs, pruner=pruner)


def _competition(study: optuna.Study, epochs: int) -> None:
    """Finished trials that lose every rung-0 comparison and win every rung-1 one."""
    for _ in range(ARMS):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=0.99,
                intermediate_values={e: 0.99 for e in range(1, epochs + 1)},
                user_attrs={"epochs_run": epochs},
                system_attrs={"completed_rung_0": -1.0, "completed_rung_1": 2.0},
            )
        )


def _run_one(study_name: str, url: str, root: Path) -> None:
    storage = open_storage(url)
    study, spec = load_study(study_name, storage)
    ctx = WorkerContext(
        study_name=study_name,
        artifacts=root / "artifacts",
        worker_id="test/0",
        data_root=root,
    )
    objective = Objective(spec, ctx, open_artifact_store(ctx.artifacts))
    study.optimize(objective, n_trials=1, catch=(TrialFailed,))


def _sweep(root: Path, name: str, epochs: int) -> tuple[str, optuna.Study]:
    make_data(root)
    url = f"sqlite:///{root / 'sweep.db'}"
    study = create_study(parse_spec(_spec(name, epochs)), open_storage(url))
    _competition(study, epochs)
    _run_one(name, url, root)
    return url, study


def test_a_trial_is_never_pruned_at_its_last_epoch(tmp_path: Path) -> None:
    _, study = _sweep(tmp_path, "last-epoch", epochs=2)
    trial = study.get_trials()[-1]
    # Rung 1 (epoch 2) would prune it; epoch 2 is its last, so it completes.
    assert trial.state == TrialState.COMPLETE, trial.user_attrs
    assert trial.user_attrs["epochs_run"] == 2


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, optuna.Study]:
    """A trial pruned at epoch 2 of 4, promoted and run again to its end."""
    root = tmp_path_factory.mktemp("promote")
    url, study = _sweep(root, "promote", epochs=4)
    pruned = study.get_trials()[-1]
    assert pruned.state == TrialState.PRUNED, pruned.user_attrs
    assert pruned.user_attrs["epochs_run"] == 2
    assert (root / "artifacts" / pruned.user_attrs["checkpoint_dir"] / "last.pt").is_file()
    promote_trial(study, pruned.number)
    _run_one("promote", url, root)
    return root, url, study


def test_a_promoted_trial_resumes_its_source_and_runs_to_the_end(
    promoted: tuple[Path, str, optuna.Study],
) -> None:
    _, _, study = promoted
    *_, source, new = study.get_trials()
    assert source.state == TrialState.PRUNED
    # Rung 1 would prune it at epoch 3; a promoted trial is not pruned again.
    assert new.state == TrialState.COMPLETE, new.user_attrs
    assert new.params == source.params
    assert new.user_attrs[PROMOTED_FROM_ATTR] == source.number
    assert new.user_attrs[PROMOTED_AT_ATTR] == 2
    assert new.user_attrs["resumed_from_epoch"] == 2
    assert new.user_attrs["epochs_run"] == 4
    assert sorted(new.intermediate_values) == [1, 2, 3, 4]
    assert new.user_attrs["checkpoint_dir"] != source.user_attrs["checkpoint_dir"]


def test_a_promoted_trial_ranks_and_the_saving_counts_its_epochs_once(
    promoted: tuple[Path, str, optuna.Study],
) -> None:
    _, _, study = promoted
    spec = parse_spec(_spec("promote", 4))
    new = study.get_trials()[-1]
    ranking = rank_study(study, spec)
    assert new.number in [t.number for t in ranking.completed]
    assert [p.promoted_to for p in ranking.pruned] == [new.number]
    saving = pruning_saving(study.get_trials(), epochs=4)
    # 3 full competitors + 2 epochs pruned + 2 more after promotion = all 16 unpruned epochs.
    assert (saving.trials, saving.pruned, saving.trained, saving.unpruned) == (4, 1, 16, 16)


def test_promote_refuses_twice_and_non_pruned_trials_in_one_line(
    promoted: tuple[Path, str, optuna.Study],
) -> None:
    _, url, study = promoted
    *_, source, new = study.get_trials()
    for number, expected in [
        (source.number, f"trial {source.number} is already promoted: trial {new.number}"),
        (new.number, f"trial {new.number} is complete, not pruned"),
        (99, "has no trial 99"),
    ]:
        result = runner.invoke(app, ["promote", "promote", str(number), "--storage", url])
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_status_and_rank_say_what_pruning_saved(promoted: tuple[Path, str, optuna.Study]) -> None:
    _, url, _ = promoted
    line = "pruning saved 0 of 16 epochs (1.00x fewer): 16 trained by 4 finished trials"
    for command in ("status", "rank"):
        result = runner.invoke(app, [command, "promote", "--storage", url])
        assert result.exit_code == 0, result.output
        assert line in " ".join(result.output.split())
    assert "promoted to" in result.output
    result = runner.invoke(app, ["rank", "promote", "--storage", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    saving = json.loads(result.output)["pruning_saving"]
    assert (saving["trained"], saving["unpruned"]) == (16, 16)


def test_saving_of_pruned_trials_against_full_length() -> None:
    trials = [
        optuna.trial.create_trial(
            state=state, value=0.5 if state == TrialState.COMPLETE else None, user_attrs=attrs
        )
        for state, attrs in [
            (TrialState.COMPLETE, {"epochs_run": 9}),
            (TrialState.COMPLETE, {"epochs_run": 6}),  # early-stopped: the same unpruned
            (TrialState.PRUNED, {"epochs_run": 1}),
            (TrialState.PRUNED, {"epochs_run": 3}),
            (TrialState.FAIL, {"epochs_run": 5}),  # not finished: not counted
        ]
    ]
    saving = pruning_saving(trials, epochs=9)
    assert (saving.trials, saving.pruned, saving.trained, saving.unpruned) == (4, 2, 19, 33)
    assert saving.ratio == pytest.approx(33 / 19)


def test_the_exported_winner_and_its_best_pt_fine_tune_with_no_editing(
    promoted: tuple[Path, str, optuna.Study], tmp_path: Path
) -> None:
    root, _, study = promoted
    spec = parse_spec(_spec("promote", 4))
    exported = tmp_path / "best.yaml"
    winner = export_best(study, spec, exported)
    text = exported.read_text()
    best_pt = f"ARTIFACTS/{winner.user_attrs['checkpoint_dir']}/best.pt"
    assert f"--set model.init_checkpoint={best_pt}" in text
    path = str(root / "artifacts" / best_pt.removeprefix("ARTIFACTS/"))
    cfg = load_train_config(exported, [f"model.init_checkpoint={path}"])
    saved = torch.load(path, weights_only=True)["model"]
    model = build_model(cfg.model)
    torch.testing.assert_close(
        model.state_dict()["neck.lateral.0.weight"], saved["neck.lateral.0.weight"]
    )
