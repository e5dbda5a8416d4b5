"""Test and leaderboard scores people got back for a trial, as stored on its study.

The number a sweep exists to predict comes back from outside it: a test set scored by
someone else, a competition's leaderboard. ``sweeper record-test`` keeps it. Optuna refuses
to change a finished trial, so the scores are a user attribute of the trial's study, one per
trial (``sweeper.test.trial-<N>``): label -> figures, in the order they were first recorded
(several labels per trial: "LB public", "LB private", "test"). Figures are stored as
fractions in 0..1, whatever scale they were given in. Light on purpose: no torch, no trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sweeper.attrs import RECORDED_ATTR_PREFIX
from sweeper.errors import SpecError

__all__ = [
    "DEFAULT_LABEL",
    "RecordedScore",
    "recorded_attr_key",
    "recorded_by_trial",
    "to_fractions",
]

DEFAULT_LABEL = "test"


def recorded_attr_key(number: int) -> str:
    """The study user attribute holding trial ``number``'s recorded scores."""
    return f"{RECORDED_ATTR_PREFIX}{number}"


@dataclass(frozen=True)
class RecordedScore:
    """One score a trial got back: H-mean (and precision, recall when known) in 0..1."""

    label: str
    hmean: float
    precision: float | None = None
    recall: float | None = None
    recorded_at: str = ""
    """When it was recorded (ISO 8601, UTC)."""

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, value: Any) -> RecordedScore | None:
        """The stored form read back; None for anything that is not one."""
        if not isinstance(value, dict):
            return None
        try:
            score = cls(**value)
        except TypeError:
            return None
        return score if isinstance(score.hmean, int | float) else None


def recorded_by_trial(study_attrs: dict[str, Any]) -> dict[int, list[RecordedScore]]:
    """Trial number -> its recorded scores (first recorded label first), from a study's
    user attributes."""
    found: dict[int, list[RecordedScore]] = {}
    for key, value in study_attrs.items():
        number = key.removeprefix(RECORDED_ATTR_PREFIX)
        if number == key or not number.isdigit() or not isinstance(value, list):
            continue
        scores = [s for item in value if (s := RecordedScore.from_attr(item)) is not None]
        if scores:
            found[int(number)] = scores
    return found


def to_fractions(values: dict[str, float | None]) -> tuple[dict[str, float | None], bool]:
    """Figures given on the command line as fractions in 0..1, and whether they were read as
    percent.

    The scale is decided once for all of them: percent when any is above 1 (``96.26``),
    else fractions (``0.9626``); a value of 1 or less among percentages would be a mix of
    the two and is refused, as is anything outside 0..100.

    Args:
        values: option name (``--hmean``) -> value, None where not given.

    Raises:
        SpecError: a value out of range or a mix of scales, naming the option.

    Example:
        >>> to_fractions({"--hmean": 96.26, "--recall": None})
        ({'--hmean': 0.9626, '--recall': None}, True)
    """
    given = {k: v for k, v in values.items() if v is not None}
    for name, value in given.items():
        if not 0 <= value <= 100:
            raise SpecError(f"{name} {value:g}: must be in 0..1, or 0..100 as a percentage")
    percent = any(v > 1 for v in given.values())
    if percent:
        mixed = [f"{k} {v:g}" for k, v in given.items() if 0 < v <= 1]
        if mixed:
            raise SpecError(
                f"{', '.join(mixed)}: a fraction among percentages; give every figure in "
                "0..1 or every one in percent"
            )
    scale = 100.0 if percent else 1.0
    return {k: None if v is None else round(v / scale, 10) for k, v in values.items()}, percent
