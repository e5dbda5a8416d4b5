"""``sweeper record-test``: keep the test or leaderboard score a trial got back.

The score is stored on the trial's study (:mod:`sweeper.recorded_scores`), one entry per
label; recording a label again replaces it. The trial's dashboard note gets a section with
the recorded scores and how much val overstated each, after what the worker wrote there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import optuna
from optuna_dashboard import get_note, save_note

from sweeper.after._trials import completed_trial
from sweeper.errors import SpecError
from sweeper.recorded_scores import (
    DEFAULT_LABEL,
    RecordedScore,
    recorded_attr_key,
    recorded_by_trial,
    to_fractions,
)
from sweeper.trial_result import RECORDED_HEADING, TrialResult

__all__ = ["Recorded", "record_test"]


@dataclass(frozen=True)
class Recorded:
    """What one ``record-test`` stored, and how it read the figures."""

    trial: int
    score: RecordedScore
    val_hmean: float | None
    percent: bool
    """The figures were given in percent (and stored divided by 100)."""
    replaced: RecordedScore | None
    """The score of the same label it replaced, if any."""

    @property
    def hmean_of_p_and_r(self) -> float | None:
        """``2PR / (P + R)`` when both were given: what the H-mean should be."""
        p, r = self.score.precision, self.score.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def record_test(
    study: optuna.Study,
    number: int,
    hmean: float,
    *,
    precision: float | None = None,
    recall: float | None = None,
    label: str = DEFAULT_LABEL,
) -> Recorded:
    """Store a test score on trial ``number`` of ``study``, under ``label``.

    Args:
        study: the sweep (``load_study``).
        number: a completed trial.
        hmean: the H-mean the test set or leaderboard gave, in 0..1 or percent.
        precision: its precision, if known (same scale).
        recall: its recall, if known (same scale).
        label: what scored it ("LB public", "test"); a label recorded again is replaced.

    Raises:
        StudyError: no such trial, or it is not completed.
        SpecError: a value out of range, a mix of scales, or an empty label; nothing is
            stored.

    Example:
        >>> record_test(study, 7, 96.26, label="LB public").score.hmean  # doctest: +SKIP
        0.9626
    """
    label = label.strip()
    if not label:
        raise SpecError("--label: must not be empty")
    trial = completed_trial(study, number, "record test scores of")
    values, percent = to_fractions({"--hmean": hmean, "--precision": precision, "--recall": recall})
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    score = RecordedScore(
        label, values["--hmean"], values["--precision"], values["--recall"], stamp
    )
    scores = recorded_by_trial(study.user_attrs).get(number, [])
    replaced = next((s for s in scores if s.label == label), None)
    scores = [score if s.label == label else s for s in scores]
    if replaced is None:
        scores.append(score)
    study.set_user_attr(recorded_attr_key(number), [s.to_attr() for s in scores])
    result = TrialResult.from_attrs(trial.user_attrs)
    _note_scores(optuna.Trial(study, trial._trial_id), result, scores)
    return Recorded(number, score, result.val_hmean, percent, replaced)


def _note_scores(trial: optuna.Trial, result: TrialResult, scores: list[RecordedScore]) -> None:
    """The trial's dashboard note with the recorded scores' section in place of any earlier
    one; the rest of the note (written by the worker) is kept as it is."""
    body = get_note(trial).split(RECORDED_HEADING)[0].rstrip("\n") or result.note().rstrip("\n")
    save_note(trial, f"{body}\n\n{result.recorded_section(scores)}")
