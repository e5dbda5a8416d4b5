"""``sweeper promote``: finish a pruned trial from its last checkpoint, on any worker.

Hyperband stops trials on a few epochs of evidence; sometimes the one it cut is the one
the team wants. Promoting enqueues a new trial with the pruned trial's parameters and a
pointer to its checkpoint folder (relative to the artifacts directory, so any node with the
shared artifacts can take it); the worker that pulls it copies the checkpoint into the new
trial's own folder, resumes there and trains the remaining epochs, unpruned. The new trial
records the trial it continues and ranks like any completed trial.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.attrs import PROMOTE_CHECKPOINT_ATTR, PROMOTED_AT_ATTR, PROMOTED_FROM_ATTR
from sweeper.errors import StudyError
from sweeper.paths import recorded_folder
from sweeper.trial_result import TrialResult


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
    try:
        recorded_folder(checkpoint)  # the worker checks it again against its --artifacts
    except StudyError as e:
        raise StudyError(f"trial {number}: {e}") from e
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
