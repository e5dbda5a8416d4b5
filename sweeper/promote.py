"""``sweeper promote``: finish a pruned trial from its last checkpoint, on any worker.

Hyperband stops trials on a few epochs of evidence; sometimes the one it cut is the one
the team wants. Promoting enqueues a new trial with the pruned trial's parameters and a
pointer to its checkpoint folder (relative to the artifacts directory, so any node with the
shared artifacts can take it); the worker that pulls it copies the checkpoint into the new
trial's own folder, resumes there and trains the remaining epochs, unpruned. The new trial
records the trial it continues and ranks like any completed trial.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.errors import StudyError
from sweeper.trial_result import TrialResult

__all__ = [
    "PROMOTED_AT_ATTR",
    "PROMOTED_FROM_ATTR",
    "PROMOTE_CHECKPOINT_ATTR",
    "promote_trial",
    "relative_checkpoint_dir",
    "seed_promoted_checkpoint",
]

PROMOTED_FROM_ATTR = "promoted_from"
"""On a promoted trial: the number of the pruned trial it continues."""

PROMOTED_AT_ATTR = "promoted_at_epoch"
"""On a promoted trial: the epochs its source had trained (the rest are this trial's)."""

PROMOTE_CHECKPOINT_ATTR = "promote_checkpoint"
"""On a promoted trial: the source's checkpoint folder, relative to the artifacts."""


def promote_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Enqueue pruned trial ``number`` to run to its full epochs from its last checkpoint.

    Returns:
        The new (waiting) trial.

    Raises:
        StudyError: no such trial, not pruned, no recorded checkpoint, or already promoted.

    Example:
        >>> new = promote_trial(load_study("demo", open_storage())[0], 7)  # doctest: +SKIP
    """
    trials = study.get_trials(deepcopy=False)
    source = next((t for t in trials if t.number == number), None)
    if source is None:
        raise StudyError(
            f"study {study.study_name!r} has no trial {number} "
            f"(trials 0..{len(trials) - 1}; sweeper rank lists the pruned ones)"
        )
    if source.state != TrialState.PRUNED:
        raise StudyError(
            f"trial {number} is {source.state.name.lower()}, not pruned; only a pruned trial "
            "can be promoted (sweeper rank lists them)"
        )
    result = TrialResult.from_attrs(source.user_attrs)
    checkpoint = result.checkpoint_dir
    if not isinstance(checkpoint, str):
        raise StudyError(
            f"trial {number} records no checkpoint folder (it was pruned by an older sweeper); "
            "it cannot be continued"
        )
    continuing = [
        t
        for t in trials
        if t.user_attrs.get(PROMOTED_FROM_ATTR) == number and t.state != TrialState.FAIL
    ]
    if continuing:
        t = continuing[0]
        raise StudyError(
            f"trial {number} is already promoted: trial {t.number} "
            f"({t.state.name.lower()}) continues it"
        )
    at_epoch = result.epochs_run if result.epochs_run is not None else source.last_step or 0
    study.enqueue_trial(
        dict(source.params),
        user_attrs={
            PROMOTED_FROM_ATTR: number,
            PROMOTED_AT_ATTR: at_epoch,
            PROMOTE_CHECKPOINT_ATTR: checkpoint,
        },
    )
    return next(
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if t.user_attrs.get(PROMOTED_FROM_ATTR) == number
    )


def seed_promoted_checkpoint(attrs: dict[str, Any], artifacts: Path, out_dir: Path) -> bool:
    """Copy a promoted trial's source checkpoint into its own folder; True if copied.

    Nothing is copied when ``out_dir`` already holds a ``last.pt`` (a retry of the promoted
    trial resumes its own progress).

    Raises:
        FileNotFoundError: the source's ``last.pt`` is not under this node's artifacts.
    """
    if (out_dir / "last.pt").exists():
        return False
    source = Path(artifacts) / attrs[PROMOTE_CHECKPOINT_ATTR]
    if not (source / "last.pt").is_file():
        raise FileNotFoundError(
            f"{source / 'last.pt'}: the checkpoint of trial {attrs[PROMOTED_FROM_ATTR]} is not "
            "in this worker's --artifacts"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "last.pt"):  # last.pt last: its presence means "resume"
        if (source / name).is_file():
            tmp = out_dir / f"{name}.tmp"
            shutil.copyfile(source / name, tmp)
            os.replace(tmp, out_dir / name)
    return True


def relative_checkpoint_dir(path: Path, artifacts: Path) -> str:
    """``path`` relative to the artifacts directory (absolute if it lies elsewhere)."""
    resolved, root = Path(path).resolve(), Path(artifacts).resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)
