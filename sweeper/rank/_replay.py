"""Replays of a sweep on complete learning curves, through Optuna's own pruners.

A replay trains nothing. It runs an in-memory Optuna study whose trials are the curves given,
in a given order, with ``workers`` simulated asynchronous workers advancing in simulated time
(one epoch of a trial takes its ``epoch_time``): a free worker asks for the next trial, and
each trial reports its curve epoch by epoch and stops when the pruner says so, exactly as a
worker of a real fleet does. So the order in which trials reach a rung, and what has reached
it before them, is what a real fleet sees: the first trial at a rung is promoted, as Optuna
does. Then :func:`judge` says what the pruned sweep would have cost and picked.

Example:
    >>> import numpy as np, optuna
    >>> curves = np.array([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5], [0.2, 0.3, 0.4]])
    >>> run = replay(curves, optuna.pruners.SuccessiveHalvingPruner(1, 3), workers=1)
    >>> run.epochs.tolist(), run.pruned.tolist()
    ([3, 3, 1], [False, False, True])
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

__all__ = [
    "Replay",
    "ReplayOutcome",
    "judge",
    "replay",
    "rung_correlation",
    "spearman",
]


@dataclass(frozen=True)
class Replay:
    """What one replayed sweep did to each curve (indexed like the curves, not by order)."""

    epochs: np.ndarray
    """``(trials,)`` epochs each trial trained before it finished or was pruned."""
    pruned: np.ndarray
    """``(trials,)`` True where the pruner stopped the trial."""
    order: np.ndarray
    """The curves in the order their trials were asked for."""


def replay(
    curves: np.ndarray,
    pruner: optuna.pruners.BasePruner,
    *,
    workers: int = 4,
    order: Sequence[int] | None = None,
    params: Sequence[Mapping[str, float]] | None = None,
    epoch_time: Sequence[float] | None = None,
    decisions: Sequence[Collection[int] | None] | None = None,
) -> Replay:
    """Replay one sweep of the ``curves`` under ``pruner``.

    Args:
        curves: ``(trials, epochs)`` the value each trial reports after each epoch (higher
            is better; the study maximises).
        pruner: a fresh pruner (Optuna's or sweeper's); it sees an in-memory study.
        workers: simulated workers; each takes the next trial as soon as it is free.
        order: the curves in the order the sweep asks for them (default: as given).
        params: each curve's parameters, put on its trial (pruners that read them, such as
            the schedule-aware one, need them); indexed like the curves.
        epoch_time: each curve's time per epoch (default 1: workers in lockstep, ties
            broken by the order trials were asked for).
        decisions: each curve's epochs at which the pruner can decide anything (its rungs);
            the pruner is asked only there. A speed-up that changes no outcome when the
            pruner cannot prune elsewhere; None (for all, or for one curve) asks after every
            epoch (the median pruner).

    Raises:
        ValueError: ``workers`` below 1 or an ``order`` that is not a permutation.
    """
    n, n_epochs = curves.shape
    order = np.arange(n) if order is None else np.asarray(order)
    if workers < 1:
        raise ValueError(f"workers={workers}: need 1 or more")
    if sorted(order.tolist()) != list(range(n)):
        raise ValueError(f"order {order.tolist()}: must be a permutation of 0..{n - 1}")
    storage = optuna.storages.InMemoryStorage()
    with _quiet():  # not one "new study created in memory" line a replay
        study = optuna.create_study(
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=0),  # samples nothing: params are fixed
            pruner=pruner,
            study_name="replay",  # Hyperband's brackets hash it with the trial number
            direction="maximize",
        )
    study_id = storage.get_study_id_from_name(study.study_name)
    times = np.ones(n) if epoch_time is None else np.asarray(epoch_time, float)
    epochs = np.zeros(n, np.int64)
    pruned = np.zeros(n, bool)
    events: list[tuple[float, int, int]] = []  # (time, ask order, curve); ties: first asked
    trial_ids: dict[int, int] = {}
    asked = 0

    def start(now: float) -> None:
        nonlocal asked
        i = int(order[asked])
        trial = study.ask()
        for name, value in (params[i] if params is not None else {}).items():
            trial.suggest_float(name, value, value)  # a one-value range: nothing sampled
        trial_ids[i] = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        heapq.heappush(events, (now + times[i], asked, i))
        asked += 1

    # Storage calls instead of Trial.report/should_prune and Study.tell: the same writes,
    # without the copies of every trial those make (a replay is thousands of reports).
    for _ in range(min(workers, n)):
        start(0.0)
    while events:
        now, rank, i = heapq.heappop(events)
        epochs[i] += 1
        step, value = int(epochs[i]), float(curves[i, epochs[i] - 1])
        storage.set_trial_intermediate_value(trial_ids[i], step, value)
        if step == n_epochs:
            storage.set_trial_state_values(trial_ids[i], TrialState.COMPLETE, [value])
        elif _asked_at(decisions, i, step) and pruner.prune(study, storage.get_trial(trial_ids[i])):
            storage.set_trial_state_values(trial_ids[i], TrialState.PRUNED)
            pruned[i] = True
        else:
            heapq.heappush(events, (now + times[i], rank, i))
            continue
        if asked < n:
            start(now)
    return Replay(epochs, pruned, order)


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's INFO lines off for the block."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _asked_at(decisions: Sequence[Collection[int] | None] | None, i: int, step: int) -> bool:
    """Whether the pruner is asked about curve ``i`` after epoch ``step``."""
    return decisions is None or decisions[i] is None or step in decisions[i]


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replayed sweep cost and picked, judged on curves no choice saw."""

    epochs: int
    """Epochs trained in all."""
    pick: int
    """The curve the ranking rule picks among the trials that completed."""
    pick_test: float
    regret: float
    """Best test value among the sweep's trials (each at its best epoch) minus the pick's."""
    winner_survived: bool
    """Whether the trial the rule picks with no pruning completed."""


def judge(
    run: Replay,
    value: np.ndarray,
    test: np.ndarray,
) -> ReplayOutcome:
    """Cost and pick of ``run``.

    Args:
        run: a replay.
        value: ``(trials,)`` what the ranking rule ranks each trial by once complete.
        test: ``(trials,)`` each trial's figure on data no choice saw (its test H-mean at
            the epoch its checkpoint keeps).
    """
    completed = ~run.pruned
    unpruned_pick = int(np.argmax(value))
    ranked = np.where(completed, value, -np.inf)
    pick = int(np.argmax(ranked))
    return ReplayOutcome(
        epochs=int(run.epochs.sum()),
        pick=pick,
        pick_test=float(test[pick]),
        regret=float(test.max() - test[pick]),
        winner_survived=bool(completed[unpruned_pick]),
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either is constant."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their mean rank
        same = x == v
        if same.sum() > 1:
            ranks[same] = ranks[same].mean()
    return ranks


def rung_correlation(curves: np.ndarray, rung_epochs: np.ndarray, final: np.ndarray) -> np.ndarray:
    """Spearman correlation of each rung's values with the final values, over the trials.

    Args:
        curves: ``(trials, epochs)`` reported values.
        rung_epochs: ``(trials, rungs)`` where each trial's rungs fall, in (fractional,
            1-based) epochs; linear between epochs, as the schedule-aware pruner reads them.
        final: ``(trials,)`` what the trials are finally ranked by.
    """
    n, n_epochs = curves.shape
    steps = np.arange(1, n_epochs + 1, dtype=float)
    values = np.array([[np.interp(e, steps, curves[i]) for e in rung_epochs[i]] for i in range(n)])
    return np.array([spearman(values[:, k], final) for k in range(rung_epochs.shape[1])])
