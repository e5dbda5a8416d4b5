"""What pruning saved: epochs trained against the epochs the same trials would have trained.

Counted over finished trials (complete and pruned). A complete trial would have trained
what it did (early stopping included); a pruned one would have trained all ``epochs``. A
promoted trial continues a pruned one: only the epochs it added are its own, and it adds no
trial to the unpruned count (its source is already counted at full length).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from sweeper.attrs import PROMOTED_AT_ATTR, PROMOTED_FROM_ATTR
from sweeper.trial_result import TrialResult


@dataclass(frozen=True)
class PruningSaving:
    """Epochs trained by the finished trials, and what they would have cost unpruned."""

    trials: int
    pruned: int
    trained: int
    unpruned: int

    @property
    def ratio(self) -> float:
        """How many times fewer epochs were trained (1.0: pruning saved nothing)."""
        return self.unpruned / self.trained if self.trained else 1.0

    def describe(self) -> str:
        """One line, e.g. ``pruning saved 96 of 270 epochs (1.55x fewer): ...``."""
        return (
            f"pruning saved {self.unpruned - self.trained} of {self.unpruned} epochs "
            f"({self.ratio:.2f}x fewer): {self.trained} trained by {self.trials} finished "
            f"trials ({self.pruned} pruned), {self.unpruned} without pruning"
        )


def _epochs_run(trial: FrozenTrial) -> int:
    run = TrialResult.from_attrs(trial.user_attrs).epochs_run
    return int(run) if isinstance(run, int) else (trial.last_step or 0)


def pruning_saving(trials: Iterable[FrozenTrial], epochs: int) -> PruningSaving:
    """Count the finished trials' epochs; ``epochs`` is what one trial trains unpruned.

    Example:
        >>> pruning_saving(study.get_trials(), spec.base.epochs).describe()  # doctest: +SKIP
    """
    n, pruned, trained, unpruned = 0, 0, 0, 0
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        run = _epochs_run(t)
        if PROMOTED_FROM_ATTR in t.user_attrs:
            trained += max(0, run - int(t.user_attrs.get(PROMOTED_AT_ATTR, 0)))
            continue
        n += 1
        trained += run
        if t.state == TrialState.PRUNED:
            pruned += 1
            unpruned += epochs
        else:
            unpruned += run
    return PruningSaving(trials=n, pruned=pruned, trained=trained, unpruned=unpruned)
