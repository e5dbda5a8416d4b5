"""A completed trial of a study by its number, for the commands that use one."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.errors import StudyError

__all__ = ["completed_trial"]


def completed_trial(study: optuna.Study, number: int, use: str) -> FrozenTrial:
    """Trial ``number`` of ``study``, once it is there and completed.

    Args:
        use: what the command does with it, for the message ("predict with").

    Raises:
        StudyError: no such trial, or it is not completed; the message names both.
    """
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    if found is None:
        raise StudyError(
            f"study {study.study_name!r} has no trial {number} (trials 0..{len(trials) - 1})"
        )
    if found.state != TrialState.COMPLETE:
        raise StudyError(
            f"trial {number} of study {study.study_name!r} is {found.state.name.lower()}; "
            f"{use} a completed trial (sweeper rank lists them)"
        )
    return found
