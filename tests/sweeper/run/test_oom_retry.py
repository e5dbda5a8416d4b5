"""A trial that runs out of memory goes on with half the batch and twice the accumulation.

That is the team's 1280 px case (batch 8 -> 2 x accumulation 4): the trial must resume from
its last epoch's checkpoint with the same effective batch and finish, not fail or restart.
The out-of-memory error is injected where CUDA would raise it, in the training step.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna_dashboard import get_note

from storage import open_storage
from sweeper.attrs import OOM_RETRIES_ATTR, RESUMED_FROM_ATTR
from sweeper.define import create_study, parse_spec
from sweeper.run import WorkerContext, WorkerLimits, run_worker
from sweeper.trial_result import TrialResult
from tests.sweeper.tiny_sweep import make_data, tiny_spec
from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import TrainConfig
from trainer_core.loss import DBLoss


def test_out_of_memory_halves_the_batch_and_the_trial_resumes_to_the_end(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = 4  # the tiny spec's batch; 6 training images make epochs of 4 + 2
    forward = DBLoss.forward
    calls = {"big": 0}

    def out_of_memory_in_epoch_two(self: DBLoss, out: dict, batch: dict) -> tuple:
        if out["prob_logits"].shape[0] >= big:
            calls["big"] += 1
            if calls["big"] == 2:  # the first full batch of epoch 2 no longer fits
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, out, batch)

    monkeypatch.setattr(DBLoss, "forward", out_of_memory_in_epoch_two)
    make_data(tmp_path)
    spec = tiny_spec("oom", 1, epochs=3, pruner={"kind": "none"})
    spec["base"] |= {"batch_size": big, "grad_accum_steps": 1}
    create_study(parse_spec(spec), open_storage(sqlite_url))
    ctx = WorkerContext("oom", tmp_path / "artifacts", "test:1/0.abcdef", data_root=tmp_path)
    assert run_worker("oom", sqlite_url, ctx, WorkerLimits(n_trials=1)) == 1

    study = optuna.load_study(study_name="oom", storage=sqlite_url)
    [trial] = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
    assert trial.user_attrs[OOM_RETRIES_ATTR] == 1
    assert trial.user_attrs[RESUMED_FROM_ATTR] == 1  # epoch 1 was kept, not retrained
    assert sorted(trial.intermediate_values) == [1, 2, 3]
    result = TrialResult.from_attrs(trial.user_attrs)
    assert result.batch_size == big // 2 and result.epochs_run == 3
    # Whichever epoch was best, the effective batch it trained with is the original one.
    saved = TrainConfig.model_validate_json(
        load_checkpoint(tmp_path / "artifacts" / result.checkpoint_dir / "best.pt")["config"]
    )
    assert saved.batch_size * saved.grad_accum_steps == big
    # The dashboard's note on the trial tells the same story in a table.
    note = get_note(optuna.Trial(study, trial._trial_id))
    assert note.startswith(f"**score {100 * result.score:.2f}**")
    assert "| val − holdout |" in note and "batch 2" in note
