"""Tuned post-processing as stored on a study: what ``tune-postprocess`` found for a trial.

Optuna refuses to change a finished trial, so the result is a user attribute of the trial's
study, one per trial (``sweeper.postprocess.trial-<N>``); ``rank`` marks those trials and
``export-best`` writes the tuned values into the exported config. Light on purpose: no
torch, no trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sweeper.attrs import TUNED_ATTR_PREFIX

__all__ = ["TunedPostprocess", "tuned_attr_key", "tuned_by_trial"]


def tuned_attr_key(number: int) -> str:
    """The study user attribute holding trial ``number``'s tuned post-processing."""
    return f"{TUNED_ATTR_PREFIX}{number}"


@dataclass(frozen=True)
class TunedPostprocess:
    """The best post-processing a search found for one trial, with before/after figures.

    ``before`` is the trial's own post-processing scored on the same cached maps, so the
    two differ only by the settings.
    """

    trial: int
    params: dict[str, float | int]
    val_before: float
    val_after: float
    gap_split: str
    gap_before: float
    gap_after: float
    search_study: str
    search_trials: int
    maps: str
    """The cache file the search scored on."""

    def overrides(self) -> dict[str, float | int]:
        """Dotted TrainConfig paths -> tuned values (``postprocess.thresh``: 0.29, ...)."""
        return {f"postprocess.{name}": value for name, value in self.params.items()}

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, value: Any) -> TunedPostprocess | None:
        """The stored form read back; None for anything that is not one."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(**value)
        except TypeError:
            return None


def tuned_by_trial(study_attrs: dict[str, Any]) -> dict[int, TunedPostprocess]:
    """Trial number -> its tuned post-processing, from a study's user attributes."""
    found = {}
    for key, value in study_attrs.items():
        if not key.startswith(TUNED_ATTR_PREFIX):
            continue
        tuned = TunedPostprocess.from_attr(value)
        if tuned is not None:
            found[tuned.trial] = tuned
    return found
