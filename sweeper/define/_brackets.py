"""Hyperband's bracket arithmetic, in epochs: the rungs, and what pruning can save at best.

Optuna's ``HyperbandPruner(min_resource=r, max_resource=E, reduction_factor=η)`` runs
``B = floor(log_η(E / r)) + 1`` brackets of successive halving. Bracket ``b`` has rungs at
``r·η^(b+k)`` (k = 0, 1, ...) and gets a share ``ceil(B·η^s / (s+1))`` (``s = B-1-b``) of the
trials, so the aggressive bracket 0 gets the most and the last bracket, whose first rung is
at ``E`` or past it, never prunes: that is Hyperband's hedge against a wrong ``r``. A trial
is never pruned at its last epoch, so only rungs below ``E`` count.

If each rung keeps exactly ``1/η`` of the trials that reach it, a trial of bracket ``b``
trains ``r_0 + Σ_k η^-(k+1) (r_{k+1} - r_k)`` epochs on average (``r_k`` its rungs, the last
``r_{k+1}`` being ``E``); the mean over brackets, weighted by their shares, against ``E`` is
the most Hyperband can save. Optuna's asynchronous version saves less while few trials have
reached a rung (the first ones are always promoted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def rungs(min_resource: int, reduction_factor: int, epochs: int, bracket: int = 0) -> list[int]:
    """Epochs below ``epochs`` where bracket ``bracket`` may prune.

    Example:
        >>> rungs(1, 3, 20)
        [1, 3, 9]
    """
    found, rung = [], min_resource * reduction_factor**bracket
    while rung < epochs:
        found.append(rung)
        rung *= reduction_factor
    return found


@dataclass(frozen=True)
class Bracket:
    """One bracket: its rungs, its share of the trials, its ideal mean epochs a trial."""

    index: int
    rungs: list[int]
    share: int
    mean_epochs: float


def _mean_epochs(rung_list: list[int], reduction_factor: int, epochs: int) -> float:
    if not rung_list:
        return float(epochs)
    total = float(rung_list[0])
    for k, rung in enumerate(rung_list):
        following = rung_list[k + 1] if k + 1 < len(rung_list) else epochs
        total += (following - rung) / reduction_factor ** (k + 1)
    return total


def brackets(
    min_resource: int, reduction_factor: int, epochs: int, kind: str = "hyperband"
) -> list[Bracket]:
    """The brackets Optuna's pruner runs for these settings (one for successive halving).

    Example:
        >>> [(b.rungs, b.share) for b in brackets(1, 3, 9)]
        [([1, 3], 9), ([3], 5), ([], 3)]
    """
    if kind == "none":
        return [Bracket(0, [], 1, float(epochs))]
    if kind == "successive_halving":
        found = rungs(min_resource, reduction_factor, epochs)
        return [Bracket(0, found, 1, _mean_epochs(found, reduction_factor, epochs))]
    # Optuna's formula, including its float log (log(9, 3) is exactly 2.0 there too).
    n = math.floor(math.log(epochs / min_resource, reduction_factor)) + 1
    out = []
    for b in range(n):
        s = n - 1 - b
        found = rungs(min_resource, reduction_factor, epochs, b)
        share = math.ceil(n * reduction_factor**s / (s + 1))
        out.append(Bracket(b, found, share, _mean_epochs(found, reduction_factor, epochs)))
    return out


def ideal_saving(
    min_resource: int, reduction_factor: int, epochs: int, kind: str = "hyperband"
) -> float:
    """``epochs`` over the share-weighted mean epochs a trial trains: the best case.

    Example:
        >>> round(ideal_saving(1, 3, 27), 2)
        3.64
    """
    found = brackets(min_resource, reduction_factor, epochs, kind)
    mean = sum(b.share * b.mean_epochs for b in found) / sum(b.share for b in found)
    return epochs / mean
