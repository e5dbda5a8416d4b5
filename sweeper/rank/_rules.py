"""The ranking rules: what number a sweep sorts its trials by.

A rule turns a trial's validation and gap-split figures into the number a sweep sorts by:

- ``val``: validation H-mean alone;
- ``holdout``: H-mean on the holdout split (never used for pruning or the best epoch);
- ``mean``: the mean of the two;
- ``score``: ``val - penalty * max(0, gap - tolerance)``
  (:func:`sweeper.trial_result.penalized_score`).
"""

from __future__ import annotations

from typing import Literal

from sweeper.trial_result import penalized_score

Rule = Literal["score", "val", "holdout", "mean"]
RULES: tuple[Rule, ...] = ("score", "val", "holdout", "mean")
RULE_LABELS: dict[Rule, str] = {
    "score": "score",
    "val": "val H-mean",
    "holdout": "holdout H-mean",
    "mean": "mean of val and holdout H-mean",
}
"""What each rule sorts by, in words for tables and sentences."""


def rule_value(
    rule: Rule, val: float, holdout: float, penalty: float = 1.0, tolerance: float = 0.0
) -> float:
    """The number ``rule`` ranks a trial by (higher is better).

    Args:
        rule: ``score``, ``val``, ``holdout`` or ``mean``.
        val: the trial's validation H-mean at its best epoch.
        holdout: its H-mean on the gap split at that epoch (for ``score`` with a train gap
            split, pass ``val - gap`` so that ``gap = val - holdout``).
        penalty: of ``score``.
        tolerance: of ``score``.

    Raises:
        ValueError: an unknown rule.
    """
    if rule == "val":
        return val
    if rule == "holdout":
        return holdout
    if rule == "mean":
        return (val + holdout) / 2
    if rule == "score":
        return penalized_score(val, val - holdout, penalty, tolerance)
    raise ValueError(f"rule {rule!r}: use one of {', '.join(RULES)}")
