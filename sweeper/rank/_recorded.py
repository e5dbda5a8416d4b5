"""What recorded test scores say about the sweep: how far validation overstated them, and
which ranking rule would have put the recorded trials in the order the test did.

With two or more trials scored under one label (``sweeper record-test``), each rule's
order of those trials is compared with the recorded H-means' order by Kendall's tau; the
rule(s) with the highest tau ordered them best. A handful of trials is weak evidence: the
tau of two trials is +1 or -1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sweeper.rank._rules import Rule
from sweeper.rank._selection import kendall_tau
from sweeper.text import percent

if TYPE_CHECKING:
    from sweeper.rank._ranking import RankedTrial

__all__ = ["RecordedAgreement", "recorded_agreement"]


@dataclass(frozen=True)
class RecordedAgreement:
    """One label's recorded scores against the sweep's own figures."""

    label: str
    trials: list[int]
    """The completed trials with a score under this label, by trial number."""
    overstated: float
    """Mean of val H-mean minus the recorded H-mean over them (positive: val overstated)."""
    tau: dict[str, float]
    """Per ranking rule: Kendall's tau of its order of the trials with the recorded order."""
    best: list[str]
    """The rule(s) with the highest tau."""

    def describe(self) -> str:
        """Two sentences for the rank table."""
        others = ", ".join(f"{rule} {tau:+.2f}" for rule, tau in self.tau.items())
        return (
            f"{self.label}: validation overstated the {len(self.trials)} recorded {self.label} "
            f"scores by {percent(self.overstated)} points on average (val H − {self.label} H); "
            f"the ranking rule that orders them best: {', '.join(self.best)} "
            f"(Kendall tau with the recorded order: {others})"
        )


def recorded_agreement(
    trials: Sequence[RankedTrial],
    rules: Sequence[Rule],
    value: Callable[[Rule, RankedTrial], float],
) -> list[RecordedAgreement]:
    """Per label recorded on two or more of ``trials``: the overstatement and each rule's tau.

    Args:
        trials: completed trials with their recorded scores.
        rules: the rules that apply to the study (holdout and mean need a holdout split).
        value: the number a rule ranks a trial by.
    """
    labels = list(dict.fromkeys(s.label for t in trials for s in t.recorded))
    found = []
    for label in labels:
        scored = sorted(
            ((t, s.hmean) for t in trials for s in t.recorded if s.label == label),
            key=lambda pair: pair[0].number,
        )
        if len(scored) < 2:
            continue
        test = np.array([h for _, h in scored])
        tau = {
            rule: kendall_tau(np.array([value(rule, t) for t, _ in scored]), test) for rule in rules
        }
        top = max(tau.values())
        found.append(
            RecordedAgreement(
                label=label,
                trials=[t.number for t, _ in scored],
                overstated=float(np.mean([t.val_hmean - h for t, h in scored])),
                tau=tau,
                best=[rule for rule, v in tau.items() if v >= top - 1e-12],
            )
        )
    return found
