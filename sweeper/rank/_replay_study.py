"""``sweeper replay``: would this pruner have cut the winner? Asked of a study's own curves.

The trials of a finished study that trained every epoch (completed ones, and promoted ones
with the curve of the pruned trial they continue) are replayed in many random orders under
each pruner setting (:func:`sweeper.rank.replay`: an in-memory study, 4 simulated
workers, Optuna's real pruners). Nothing is trained and nothing is written to the study.
Per setting: the epochs and device-hours the sweep would have spent against no pruning, how
often the study's actual winner (its first trial under the spec's ranking rule) would have
been cut, and how well each rung's val H-mean ranks the trials as they finally ranked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.attrs import PROMOTED_FROM_ATTR
from sweeper.define import StudySpec
from sweeper.errors import StudyError
from sweeper.rank._policies import POLICIES, make_policy
from sweeper.rank._ranking import rank_study
from sweeper.rank._replay import replay, rung_correlation

__all__ = ["MIN_REPLAY_TRIALS", "SettingReplay", "StudyReplay", "replay_study"]

MIN_REPLAY_TRIALS = 4
"""Fewest complete curves a replay needs (fewer, and a rung has nothing to compare)."""


@dataclass(frozen=True)
class SettingReplay:
    """One pruner setting over all the replayed orders."""

    pruner: str
    min_resource: int
    reduction_factor: int
    epochs: float
    """Mean epochs the sweep trains."""
    fewer: float
    """How many times fewer epochs than no pruning."""
    device_hours: float
    winner_cut: float
    """Fraction of the orders in which the actual winner was pruned."""
    rung_epochs: list[float]
    """Where the rungs fall (for the schedule-aware pruner: at the mean ``T_max``)."""
    rung_rho: list[float]
    """Spearman correlation of each rung's val H-mean with the final ranking."""


@dataclass(frozen=True)
class StudyReplay:
    """What each pruner setting would have done to the study's complete trials."""

    study: str
    trials: int
    epochs: int
    winner: int
    """The actual winner's trial number."""
    orders: int
    unpruned_epochs: int
    unpruned_hours: float
    hours_per_epoch: float
    settings: list[SettingReplay] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _complete_curves(
    trials: list[FrozenTrial], epochs: int
) -> dict[int, tuple[FrozenTrial, list[float]]]:
    """Trial number -> (trial, its val H-mean at epochs 1..E) for every complete curve."""
    by_number = {t.number: t for t in trials}
    curves = {}
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        values = dict(t.intermediate_values)
        source = t.user_attrs.get(PROMOTED_FROM_ATTR)
        if source in by_number:  # a promoted trial: its source's epochs under its own
            values = {**by_number[source].intermediate_values, **values}
        if all(e in values for e in range(1, epochs + 1)):
            curves[t.number] = (t, [float(values[e]) for e in range(1, epochs + 1)])
    return curves


def _hours_per_epoch(trials: list[FrozenTrial]) -> float:
    """Device-hours an epoch took, over the trials with a start and an end (one device each)."""
    seconds, epochs = 0.0, 0
    for t in trials:
        if t.datetime_start is None or t.datetime_complete is None or not t.intermediate_values:
            continue
        seconds += (t.datetime_complete - t.datetime_start).total_seconds()
        epochs += len(t.intermediate_values)
    return seconds / epochs / 3600 if epochs else float("nan")


def replay_study(
    study: optuna.Study,
    spec: StudySpec,
    pruners: list[str],
    *,
    min_resource: int | None = None,
    reduction_factor: int | None = None,
    orders: int = 200,
    workers: int = 4,
    seed: int = 0,
) -> StudyReplay:
    """Replay ``study``'s complete trials in ``orders`` random orders under each pruner.

    Args:
        study: a sweeper study (read only).
        spec: its spec: the epochs, the ranking rule, ``T_max``'s name and default.
        pruners: names from :data:`sweeper.rank.POLICIES`; ``none`` is always
            measured as the baseline.
        min_resource: first rung, in epochs (default: the spec's).
        reduction_factor: keep 1 of this many per rung (default: the spec's).
        orders: random orders replayed per setting.
        workers: simulated workers.
        seed: of the orders and the workers' epoch times (10% apart).

    Raises:
        StudyError: an unknown pruner, settings that do not fit the epochs, or fewer than
            :data:`MIN_REPLAY_TRIALS` complete trials.

    Example:
        >>> replay_study(*load_study("demo", open_storage()), ["hyperband"])  # doctest: +SKIP
    """
    for name in pruners:
        if name not in POLICIES:
            raise StudyError(f"--pruner {name!r}: use one of {', '.join(POLICIES)}")
    if orders < 1:
        raise StudyError(f"--orders {orders}: need 1 or more")
    epochs = spec.base.epochs
    r = spec.pruner.min_resource if min_resource is None else min_resource
    eta = spec.pruner.reduction_factor if reduction_factor is None else reduction_factor
    if eta < 2:
        raise StudyError(f"--reduction-factor {eta}: need 2 or more")
    if not 1 <= r < epochs:
        raise StudyError(f"--min-resource {r}: need 1 <= it < the epochs trained ({epochs})")
    trials = study.get_trials(deepcopy=False)
    curves = _complete_curves(trials, epochs)
    ranking = rank_study(study, spec)
    ranked = [t.number for t in ranking.completed if t.number in curves]
    if len(ranked) < MIN_REPLAY_TRIALS:
        raise StudyError(
            f"study {study.study_name!r} has {len(ranked)} trials with complete curves "
            f"({epochs} epochs, completed or promoted); a replay needs {MIN_REPLAY_TRIALS}"
        )
    values = np.array([curves[n][1] for n in ranked])
    final = -np.arange(len(ranked), dtype=float)  # the ranking's order: first is best
    t_max_param = spec.t_max_param or "T_max"
    default_t_max = spec.base.scheduler.T_max or epochs
    params = [
        {t_max_param: float(p[t_max_param])} if t_max_param in (p := curves[n][0].params) else {}
        for n in ranked
    ]
    hours = _hours_per_epoch(trials)
    rng = np.random.default_rng(seed)
    plans = [
        (rng.permutation(len(ranked)), rng.uniform(0.9, 1.1, len(ranked))) for _ in range(orders)
    ]
    result = StudyReplay(
        study=study.study_name,
        trials=len(ranked),
        epochs=epochs,
        winner=ranked[0],
        orders=orders,
        unpruned_epochs=values.size,
        unpruned_hours=values.size * hours,
        hours_per_epoch=hours,
    )
    for name in dict.fromkeys(["none", *pruners]):
        policy = make_policy(
            name,
            min_resource=r,
            reduction_factor=eta,
            epochs=epochs,
            default_t_max=default_t_max,
            t_max_param=t_max_param,
        )
        decisions = [policy.decisions(p) for p in params]
        spent, cut = [], 0
        for order, times in plans:
            run = replay(
                values,
                policy.make(),
                workers=workers,
                order=order,
                params=params,
                epoch_time=times,
                decisions=decisions,
            )
            spent.append(int(run.epochs.sum()))
            cut += bool(run.pruned[0])
        rungs = [policy.rungs(p) for p in params]
        width = min(len(x) for x in rungs)
        rho = rung_correlation(values, np.array([x[:width] for x in rungs]), final)
        mean = float(np.mean(spent))
        result.settings.append(
            SettingReplay(
                pruner=name,
                min_resource=r,
                reduction_factor=eta,
                epochs=mean,
                fewer=values.size / mean,
                device_hours=mean * hours,
                winner_cut=cut / orders,
                rung_epochs=[float(np.mean([x[k] for x in rungs])) for k in range(width)],
                rung_rho=[float(x) for x in rho],
            )
        )
    return result
