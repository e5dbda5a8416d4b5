"""Successive halving whose rungs sit at the same point of every trial's own cosine schedule.

A rung at epoch 18 compares a ``T_max: 18`` trial that has fully annealed with a
``T_max: 24`` trial still training at a sixth of its peak lr; the short schedule looks better
there whatever it ends at. :class:`SchedulePhasePruner` places rung ``k`` at the fraction
``f_k`` of each trial's own ``T_max`` instead: a trial is judged at epoch ``f_k * T_max`` (its
curve linearly interpolated between the two epochs around it, once it has reported the later
one), against the other trials' values at the same fraction of theirs, so every comparison is
made at the same lr phase. Promotion follows Optuna's successive halving: a trial goes on if
it is in the top ``1 / reduction_factor`` of the values recorded at that rung so far (itself
included; the first ``reduction_factor - 1`` to arrive must be the best so far).

It keeps no state of its own: rung values are read back from every trial's intermediate
values, so it works on any storage, across workers, and for trials resumed elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

__all__ = [
    "SchedulePhasePruner",
    "best_so_far_pruner",
    "interpolated_value",
    "phase_fractions",
    "schedule_aware_pruner",
]


def phase_fractions(min_resource: int, reduction_factor: int, epochs: int) -> tuple[float, ...]:
    """The spec's rungs (``min_resource * reduction_factor**k`` below ``epochs``) as fractions.

    Example: the receipts spec (2, 3, 22 epochs) has rungs 2, 6, 18: fractions 2/22, 6/22,
    18/22 of each trial's ``T_max``.
    """
    rungs, r = [], min_resource
    while r < epochs:
        rungs.append(r / epochs)
        r *= reduction_factor
    return tuple(rungs)


def interpolated_value(values: Mapping[int, float], epoch: float) -> float | None:
    """The curve at ``epoch`` (1-based steps), linear between the reported epochs around it.

    Before the first epoch it is the first epoch's value. None until the epoch after
    ``epoch`` (or ``epoch`` itself when whole) has been reported.
    """
    low = max(1, math.floor(epoch))
    high = max(1, math.ceil(epoch))
    if high not in values or low not in values:
        return None
    if high == low:
        return values[low]
    w = epoch - low
    return (1 - w) * values[low] + w * values[high]


class SchedulePhasePruner(BasePruner):
    """Successive halving at fractions of each trial's own ``T_max`` (see the module).

    Args:
        fractions: the rungs, as fractions of a trial's ``T_max``, increasing.
        reduction_factor: keep 1 of this many at each rung.
        epochs: the epochs a trial trains; a rung past them is never used, the last epoch
            never prunes.
        default_t_max: ``T_max`` of a trial that does not search it (the spec's base).
        t_max_param: the trial parameter that holds ``T_max``; None: every trial uses
            ``default_t_max``, so with ``default_t_max = epochs`` the rungs are plain epochs
            (``fractions=[r / epochs]``: "keep the top 1/eta after epoch r").
        running_best: compare each trial's best value up to its rung (what it is finally
            ranked by, at its best epoch) instead of its value at the rung.

    Example:
        >>> pruner = SchedulePhasePruner(phase_fractions(2, 3, 22), 3, 22, default_t_max=22)
        >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    """

    def __init__(
        self,
        fractions: Sequence[float],
        reduction_factor: int,
        epochs: int,
        *,
        default_t_max: float,
        t_max_param: str | None = "T_max",
        running_best: bool = False,
    ) -> None:
        if not fractions or any(f <= 0 for f in fractions):
            raise ValueError(f"fractions {list(fractions)}: need one or more, each above 0")
        if list(fractions) != sorted(fractions):
            raise ValueError(f"fractions {list(fractions)}: must increase")
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor={reduction_factor}: need 2 or more")
        self._fractions = tuple(fractions)
        self._eta = reduction_factor
        self._epochs = epochs
        self._default_t_max = default_t_max
        self._t_max_param = t_max_param
        self._running_best = running_best

    def rung_epochs(self, trial: FrozenTrial) -> list[float]:
        """Where ``trial``'s rungs fall, in (fractional) epochs before its last one."""
        return self.rung_epochs_of(trial.params)

    def rung_epochs_of(self, params: Mapping[str, float]) -> list[float]:
        """Where the rungs of a trial with ``params`` fall (see :meth:`rung_epochs`)."""
        t_max = self._default_t_max
        if self._t_max_param is not None:
            t_max = float(params.get(self._t_max_param, t_max))
        return [f * t_max for f in self._fractions if math.ceil(f * t_max) < self._epochs]

    def _rung_value(self, trial: FrozenTrial, rung: int) -> float | None:
        epochs = self.rung_epochs(trial)
        if rung >= len(epochs):
            return None
        at = interpolated_value(trial.intermediate_values, epochs[rung])
        if at is None or not self._running_best:
            return at
        seen = [v for e, v in trial.intermediate_values.items() if e <= epochs[rung]]
        return max([at, *seen])

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        epochs = self.rung_epochs(trial)
        # The rungs this report has just made reachable (the previous report had not).
        previous = _previous_step(trial)
        due = [k for k, e in enumerate(epochs) if previous < math.ceil(e) <= step]
        if not due:
            return False
        others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        for k in due:
            value = self._rung_value(trial, k)
            if value is None or math.isnan(value):
                return True
            competing = [v for t in others if (v := self._rung_value(t, k)) is not None]
            competing.append(value)
            if not _promotable(value, competing, self._eta, study.direction):
                return True
        return False


def _previous_step(trial: FrozenTrial) -> int:
    """The step reported before the last one (0 before any)."""
    steps = sorted(trial.intermediate_values)
    return steps[-2] if len(steps) > 1 else 0


def _promotable(
    value: float, competing: list[float], reduction_factor: int, direction: StudyDirection
) -> bool:
    """Optuna's successive-halving rule: in the top 1/eta of the values at the rung so far."""
    index = max(len(competing) // reduction_factor - 1, 0)
    ordered = sorted(competing, reverse=direction == StudyDirection.MAXIMIZE)
    if direction == StudyDirection.MAXIMIZE:
        return value >= ordered[index]
    return value <= ordered[index]


def best_so_far_pruner(
    min_resource: int, reduction_factor: int, epochs: int
) -> SchedulePhasePruner:
    """``pruner.kind: best_so_far``: successive halving's epoch rungs, each trial judged by
    its best value up to the rung."""
    return SchedulePhasePruner(
        phase_fractions(min_resource, reduction_factor, epochs),
        reduction_factor,
        epochs,
        default_t_max=epochs,  # every trial's "T_max" is the epochs: plain epoch rungs
        t_max_param=None,
        running_best=True,
    )


def schedule_aware_pruner(
    min_resource: int,
    reduction_factor: int,
    epochs: int,
    *,
    default_t_max: float,
    t_max_param: str | None,
) -> SchedulePhasePruner:
    """``pruner.kind: schedule_aware``: successive halving's rungs as fractions of each
    trial's own ``T_max``."""
    return SchedulePhasePruner(
        phase_fractions(min_resource, reduction_factor, epochs),
        reduction_factor,
        epochs,
        default_t_max=default_t_max,
        t_max_param=t_max_param,
    )
