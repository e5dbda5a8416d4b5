"""What a sweep spent, in device-hours: the figures behind ``status`` and ``rank``'s cost lines.

Every figure is read from the trials' cost ledgers (:class:`sweeper.trial_result.TrialCost`,
written by :mod:`sweeper.run._cost`), never estimated from a formula:

- **spent**: every trial's own cost, retries and given-back trials included (a trial given
  back untrained spent nothing);
- **pruning**: what the pruned chains cost, and what they would have cost unpruned: each
  one's cost so far plus, for every epoch it did not train, what that epoch cost the
  completed chains on average (their measured per-epoch device-seconds);
- **near best**: the device-hours spent by the moment the first trial came within half a
  point of the final best (by the ranking rule): finished trials count whole, trials running
  at that moment count the share of their cost their wall time had reached.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from storage import retried_numbers, retry_root
from sweeper.attrs import PROMOTED_FROM_ATTR
from sweeper.define import StudySpec
from sweeper.rank._rules import Rule, rule_value
from sweeper.text import time_split
from sweeper.trial_result import TrialCost, TrialResult, own_cost

NEAR_BEST = 0.005
"""Half a point of H-mean (figures are 0..1): "within reach of the best"."""

Figure = Callable[[TrialResult], float | None]
"""What the ranking sorts by, from a trial's result (None: not ranked)."""


def chain_costs(trials: Iterable[FrozenTrial]) -> dict[int, TrialCost]:
    """Each retry chain's cost (its members' own costs added up), by the chain's root."""
    chains: dict[int, TrialCost] = {}
    for t in trials:
        cost = own_cost(t.number, t.user_attrs)
        if cost is not None:
            root = retry_root(t)
            chains[root] = cost if root not in chains else chains[root] + cost
    return chains


@dataclass(frozen=True)
class SweepCost:
    """A study's spending, in device-seconds (``hours`` converts)."""

    unit: str
    """``GPU-h`` when every trial ran on a GPU, else ``device-h`` (a CPU process counts as
    one device)."""
    spent_s: float
    training_s: float
    evaluation_s: float
    overhead_s: float
    pruned: int = 0
    pruned_s: float = 0.0
    """What the pruned chains cost."""
    promoted_s: float = 0.0
    """What the trials continuing pruned ones (``sweeper promote``) cost."""
    unpruned_s: float | None = None
    """What the pruned chains would have cost trained to the end; None before a completed
    trial has measured the epochs they skipped."""
    priced_by: int = 0
    """Completed chains whose per-epoch costs priced the skipped epochs."""
    near_best_s: float | None = None
    near_best_trial: int | None = None
    budget_s: float | None = None

    @property
    def saved_s(self) -> float | None:
        if self.unpruned_s is None:
            return None
        return self.unpruned_s - self.pruned_s - self.promoted_s

    @property
    def left_s(self) -> float | None:
        return None if self.budget_s is None else max(0.0, self.budget_s - self.spent_s)

    def hours(self, seconds: float) -> str:
        """``seconds`` in this sweep's unit: ``1.25 GPU-h``."""
        return f"{seconds / 3600:.3g} {self.unit}"

    def lines(self) -> list[str]:
        """What status and rank print: spent (and the budget), pruning, near best."""
        h = self.hours
        split = time_split(self.training_s, self.evaluation_s, self.overhead_s)
        spent = f"cost: {h(self.spent_s)} spent ({split})"
        if self.budget_s is not None:
            spent += f"; budget {h(self.budget_s)}, {h(self.left_s or 0.0)} left"
        lines = [spent]
        if self.pruned:
            if self.unpruned_s is None:
                lines.append(
                    f"pruning: the {self.pruned} pruned trial(s) cost {h(self.pruned_s)}; what "
                    "they saved is measured once a trial completes"
                )
            else:
                promoted = f" (+{h(self.promoted_s)} to promote)" if self.promoted_s > 0 else ""
                lines.append(
                    f"pruning saved {h(self.saved_s or 0.0)}: the {self.pruned} pruned trial(s) "
                    f"cost {h(self.pruned_s)}{promoted} and would have cost "
                    f"{h(self.unpruned_s)} unpruned (epochs priced by {self.priced_by} "
                    "completed trial(s))"
                )
        if self.near_best_s is not None:
            lines.append(
                f"within {100 * NEAR_BEST:g} point of the final best after "
                f"{h(self.near_best_s)} (trial {self.near_best_trial})"
            )
        return lines


def sweep_cost(
    trials: Sequence[FrozenTrial],
    spec: StudySpec,
    rule: Rule | None = None,
    penalty: float | None = None,
    tolerance: float | None = None,
    now: datetime.datetime | None = None,
) -> SweepCost | None:
    """The spending of a study's ``trials``; None before any trial recorded a cost.

    Args:
        trials: every trial of the study.
        spec: its spec: the epochs a trial trains, the budget, the ranking rule.
        rule: what "the best" is judged by (default: the spec's ``ranking.rule``), with
            ``penalty`` and ``tolerance`` overriding the spec's for the score.
        now: where running trials' wall time ends (tests pin it).

    Example:
        >>> sweep_cost(study.get_trials(), spec).lines()  # doctest: +SKIP
        ['cost: 1.8 GPU-h spent (training 83%, evaluation 11%, overhead 6%)', ...]
    """
    epochs = spec.base.epochs
    ranking = spec.ranking
    figure = _figure(
        rule or ranking.rule,
        ranking.penalty if penalty is None else penalty,
        ranking.tolerance if tolerance is None else tolerance,
    )
    chains = chain_costs(trials)
    if not chains:
        return None
    total = sum(chains.values(), start=TrialCost.zero())
    last = _last_members(trials)
    completed = [c for root, c in chains.items() if last[root].state == TrialState.COMPLETE]
    pruned = {root: c for root, c in chains.items() if last[root].state == TrialState.PRUNED}
    promoted = [c for root, c in chains.items() if PROMOTED_FROM_ATTR in last[root].user_attrs]
    unpruned, priced_by = _unpruned(pruned, completed, epochs)
    near = _near_best(trials, figure, now or datetime.datetime.now())
    return SweepCost(
        unit="GPU-h" if all(c.kind == "cuda" for c in chains.values()) else "device-h",
        spent_s=total.device_s,
        training_s=total.training_device_s,
        evaluation_s=total.evaluation_device_s,
        overhead_s=total.overhead_device_s,
        pruned=len(pruned),
        pruned_s=sum(c.device_s for c in pruned.values()),
        promoted_s=sum(c.device_s for c in promoted),
        unpruned_s=unpruned,
        priced_by=priced_by,
        near_best_s=None if near is None else near[0],
        near_best_trial=None if near is None else near[1],
        budget_s=None if spec.budget.gpu_hours is None else spec.budget.gpu_hours * 3600,
    )


def _figure(rule: Rule, penalty: float, tolerance: float) -> Figure:
    """A completed trial's ranking figure under ``rule`` (None: it has none)."""

    def figure(result: TrialResult) -> float | None:
        if not result.scored or result.val_hmean is None or result.gap_hmean is None:
            return None
        if rule == "score":
            return result.rescored(penalty, tolerance)
        return rule_value(rule, result.val_hmean, result.gap_hmean)

    return figure


def _last_members(trials: Sequence[FrozenTrial]) -> dict[int, FrozenTrial]:
    """Each chain's latest member (the one no later trial retries), by root."""
    retried = retried_numbers(trials)
    return {retry_root(t): t for t in trials if t.number not in retried}


def _unpruned(
    pruned: dict[int, TrialCost], completed: list[TrialCost], epochs: int
) -> tuple[float | None, int]:
    """What the pruned chains would have cost trained to ``epochs``, and how many completed
    chains priced their skipped epochs; (None, 0) while none has."""
    priced = [c for c in completed if c.epoch_device_s]
    if not priced:
        return None, 0
    by_epoch: dict[int, list[float]] = {}
    for c in priced:
        for epoch, seconds in c.epoch_device_s.items():
            by_epoch.setdefault(int(epoch), []).append(seconds)
    mean = {e: sum(v) / len(v) for e, v in by_epoch.items()}
    fallback = sum(mean.values()) / len(mean)  # an epoch no completed chain reached
    total = 0.0
    for cost in pruned.values():
        reached = max((int(e) for e in cost.epoch_device_s), default=0)
        total += cost.device_s + sum(mean.get(e, fallback) for e in range(reached + 1, epochs + 1))
    return total, len(priced)


def _near_best(
    trials: Sequence[FrozenTrial], figure: Figure, now: datetime.datetime
) -> tuple[float, int] | None:
    """(device-seconds spent by then, trial number) at the first completion within
    :data:`NEAR_BEST` of the final best figure; None without a ranked trial."""
    ranked = [
        (t.datetime_complete, t.number, value)
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.datetime_complete is not None
        and (value := figure(TrialResult.from_attrs(t.user_attrs))) is not None
    ]
    if not ranked:
        return None
    best = max(value for _, _, value in ranked)
    moment, number, _ = min(r for r in ranked if r[2] >= best - NEAR_BEST)
    spent = 0.0
    for t in trials:
        cost = own_cost(t.number, t.user_attrs)
        if cost is None or t.datetime_start is None or t.datetime_start >= moment:
            continue
        end = t.datetime_complete or now
        if end <= moment or end <= t.datetime_start:
            spent += cost.device_s
        else:
            spent += cost.device_s * (moment - t.datetime_start) / (end - t.datetime_start)
    return spent, number
