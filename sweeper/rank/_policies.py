"""The pruning policies a replay can compare, each with the rungs where it decides.

A policy is a pruner factory (a fresh pruner for every replayed sweep) plus where, in each
trial's epochs, its rungs fall: the replay asks the pruner only there (it can decide nothing
elsewhere), and :func:`sweeper.rank.rung_correlation` reads each trial's curve there.

- ``none``: no pruning, the baseline.
- ``hyperband``, ``successive_halving``: Optuna's, with rungs at ``r * eta**k`` epochs.
- ``best_so_far``: successive halving's rungs, comparing each trial's best value so far.
- ``median``: Optuna's median pruner from epoch ``r`` on (5 startup trials).
- ``first_rung``: keep the top third after epoch ``r``, never prune again (the
  multi-fidelity literature's one-epoch baseline).
- ``schedule_aware``: successive halving with the same rungs as fractions of each trial's own
  ``T_max`` (:class:`sweeper.define.SchedulePhasePruner`), so trials are
  compared at the same phase of their cosine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import optuna

from sweeper.define import (
    SchedulePhasePruner,
    best_so_far_pruner,
    brackets,
    schedule_aware_pruner,
)

__all__ = ["POLICIES", "Policy", "make_policy"]

POLICIES = (
    "none",
    "hyperband",
    "successive_halving",
    "best_so_far",
    "median",
    "first_rung",
    "schedule_aware",
)


@dataclass(frozen=True)
class Policy:
    """One pruning setting a replay runs (see the module)."""

    name: str
    make: Callable[[], optuna.pruners.BasePruner]
    """A fresh pruner: each replayed sweep gets its own."""
    rungs: Callable[[Mapping[str, float]], list[float]]
    """A trial's rungs (from its parameters), in fractional 1-based epochs."""
    every_epoch: bool = False
    """The pruner may decide after any epoch (the median pruner), not only at rungs."""

    def decisions(self, params: Mapping[str, float]) -> set[int] | None:
        """The epochs at which the pruner is asked about a trial; None: every epoch."""
        if self.every_epoch:
            return None
        return {math.ceil(e) for e in self.rungs(params)}


def make_policy(
    name: str,
    *,
    min_resource: int,
    reduction_factor: int,
    epochs: int,
    default_t_max: float,
    t_max_param: str = "T_max",
) -> Policy:
    """The policy ``name`` (one of :data:`POLICIES`) for a sweep of ``epochs`` epochs.

    Raises:
        ValueError: an unknown name, or rungs that do not fit the epochs.
    """
    r, eta = min_resource, reduction_factor
    if not 1 <= r < epochs:
        raise ValueError(f"min_resource={r}: need 1 <= min_resource < epochs ({epochs})")
    epoch_rungs = [float(e) for e in brackets(r, eta, epochs)[0].rungs]

    def fixed(_: Mapping[str, float]) -> list[float]:
        return epoch_rungs

    if name == "none":
        return Policy(name, optuna.pruners.NopPruner, lambda _: [])
    if name == "hyperband":
        every = sorted({float(e) for b in brackets(r, eta, epochs) for e in b.rungs})
        return Policy(
            name,
            lambda: optuna.pruners.HyperbandPruner(r, epochs, eta),
            lambda _: every,
        )
    if name == "successive_halving":
        return Policy(name, lambda: optuna.pruners.SuccessiveHalvingPruner(r, eta), fixed)
    if name == "median":
        return Policy(
            name, lambda: optuna.pruners.MedianPruner(n_warmup_steps=r), fixed, every_epoch=True
        )
    if name == "first_rung":
        return Policy(
            name,
            lambda: SchedulePhasePruner(
                [r / epochs], 3, epochs, default_t_max=epochs, t_max_param=None
            ),
            lambda _: [float(r)],
        )
    if name == "best_so_far":
        return Policy(name, lambda: best_so_far_pruner(r, eta, epochs), fixed)
    if name == "schedule_aware":

        def make() -> SchedulePhasePruner:
            return schedule_aware_pruner(
                r, eta, epochs, default_t_max=default_t_max, t_max_param=t_max_param
            )

        probe = make()
        return Policy(name, make, lambda params: probe.rung_epochs_of(params))
    raise ValueError(f"pruner {name!r}: use one of {', '.join(POLICIES)}")
