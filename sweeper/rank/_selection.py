"""Ranking rules, and the simulation that measures which rule's pick holds up on unseen data.

The rules themselves are in :mod:`sweeper.rank._rules`.

:func:`simulate` answers "over many sweeps, which rule picks best on a test split no rule
saw?" from a pool of trained trials whose per-image detection counts were kept for every
evaluated epoch: each draw splits the evaluation images into val / holdout / test at random
and takes a random subset of the pool; every choice a sweep makes on val (the best epoch) is
made on that draw's val, the holdout is used only to rank, the test only for the verdict.
``benchmarks/selection.py`` builds the pool and prints the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sweeper.rank._rules import Rule, rule_value


@dataclass(frozen=True)
class RuleSpec:
    """One rule as the simulation applies it; ``gap_split`` says where the gap is measured.

    Besides the ranking rules, ``crossfit`` (a candidate that needs every epoch's holdout
    H-mean): each trial's best epoch chosen on val and scored on the holdout, and chosen on
    the holdout and scored on val, the two averaged.
    """

    rule: Rule | Literal["crossfit"]
    penalty: float = 1.0
    tolerance: float = 0.0
    gap_split: Literal["holdout", "train"] = "holdout"

    @property
    def label(self) -> str:
        if self.rule != "score":
            return self.rule
        where = "" if self.gap_split == "holdout" else ", train gap"
        return f"score(p={self.penalty:g}, tol={self.tolerance:g}{where})"


@dataclass(frozen=True)
class RuleSummary:
    """How one rule's picks did over all draws, on the test split."""

    label: str
    mean_test: float
    mean_regret: float
    beats_or_ties_val: float
    kendall_tau: float
    regret_vs_val: tuple[float, float] = (float("nan"), float("nan"))
    """95% interval of its mean regret minus val's, paired over the same draws (negative:
    better than val). It covers the randomness of the splits and the K-trial subsets, not
    of the pool itself, which every draw shares."""


def hmean_from_counts(counts: np.ndarray) -> np.ndarray:
    """Dataset H-mean from summed ``(..., 3)`` counts of (cared GT, cared predictions, matches)."""
    n_gt, n_pred, n_match = (counts[..., i].astype(np.float64) for i in range(3))
    recall = np.divide(n_match, n_gt, out=np.zeros_like(n_match), where=n_gt > 0)
    precision = np.divide(n_match, n_pred, out=np.zeros_like(n_match), where=n_pred > 0)
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b of two orderings (ties counted as neither agreeing nor not)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), k=1)
    da, db = da[upper], db[upper]
    denominator = np.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float((da * db).sum() / denominator) if denominator > 0 else 0.0


def simulate(
    counts: np.ndarray,
    rules: Sequence[RuleSpec],
    *,
    sizes: tuple[int, int, int],
    k: int,
    draws: int,
    seed: int = 0,
    train_hmean: np.ndarray | None = None,
) -> list[RuleSummary]:
    """Score each rule's pick over ``draws`` simulated sweeps of ``k`` trials.

    Args:
        counts: ``(trials, epochs, images, 3)`` per-image counts (cared GT, cared predictions,
            matches) of every trial at every evaluated epoch on the evaluation images.
        rules: the rules to compare; all see the same draws.
        sizes: ``(val, holdout, test)`` image counts of each draw's partition.
        k: trials per simulated sweep (a random subset of the pool).
        draws: number of simulated sweeps.
        seed: of the draws.
        train_hmean: ``(trials, epochs)`` H-mean on a fixed subset of training images, for
            rules whose gap split is ``train``.

    Returns:
        One summary per rule, in the order given.

    Raises:
        ValueError: sizes that do not fit the images, ``k`` larger than the pool, or a train
            gap rule without ``train_hmean``.
    """
    n_trials, _, n_images, _ = counts.shape
    if sum(sizes) > n_images or min(sizes) < 1:
        raise ValueError(f"sizes {sizes}: need 1 or more each, {n_images} images in all")
    if not 2 <= k <= n_trials:
        raise ValueError(f"k={k}: need 2 <= k <= {n_trials} (the pool)")
    if train_hmean is None and any(r.gap_split == "train" for r in rules):
        raise ValueError("a rule with gap_split 'train' needs train_hmean")
    rng = np.random.default_rng(seed)
    n_val, n_hold, n_test = sizes
    test_of_pick = np.zeros((draws, len(rules)))
    best_test, taus = np.zeros(draws), np.zeros((draws, len(rules)))
    for d in range(draws):
        order = rng.permutation(n_images)
        trials = rng.choice(n_trials, size=k, replace=False)
        pool = counts[trials]
        val = hmean_from_counts(pool[:, :, order[:n_val]].sum(axis=2))
        hold = hmean_from_counts(pool[:, :, order[n_val : n_val + n_hold]].sum(axis=2))
        test = hmean_from_counts(pool[:, :, order[n_val + n_hold :][:n_test]].sum(axis=2))
        best = val.argmax(axis=1)  # each trial's best epoch, chosen on this draw's val
        rows = np.arange(k)
        v, h, t = val[rows, best], hold[rows, best], test[rows, best]
        train = None if train_hmean is None else train_hmean[trials][rows, best]
        best_test[d] = t.max()
        crossfit = (h + val[rows, hold.argmax(axis=1)]) / 2
        for j, spec in enumerate(rules):
            if spec.rule == "crossfit":
                values = crossfit
            else:
                # With a train gap split, the gap is train - val: pass val - gap as "holdout".
                other = h if spec.gap_split == "holdout" else 2 * v - train
                values = np.array(
                    [
                        rule_value(spec.rule, a, b, spec.penalty, spec.tolerance)
                        for a, b in zip(v, other, strict=True)
                    ]
                )
            test_of_pick[d, j] = t[values.argmax()]
            taus[d, j] = kendall_tau(values, t)
    return _summarize(rules, test_of_pick, best_test, taus)


def _summarize(
    rules: Sequence[RuleSpec], test_of_pick: np.ndarray, best_test: np.ndarray, taus: np.ndarray
) -> list[RuleSummary]:
    """Each rule's figures over the draws (rows of ``test_of_pick`` and ``taus``), with its
    regret against val's as a paired 95% interval."""
    draws = len(best_test)
    val_rule = next((j for j, r in enumerate(rules) if r.rule == "val"), None)
    summaries = []
    for j, spec in enumerate(rules):
        versus, interval = float("nan"), (float("nan"), float("nan"))
        if val_rule is not None:
            versus = float(np.mean(test_of_pick[:, j] >= test_of_pick[:, val_rule]))
            # Regret minus val's regret is val's pick's test H minus this rule's pick's.
            diff = test_of_pick[:, val_rule] - test_of_pick[:, j]
            half = 1.96 * diff.std(ddof=1) / np.sqrt(draws) if draws > 1 else float("nan")
            interval = (float(diff.mean() - half), float(diff.mean() + half))
        summaries.append(
            RuleSummary(
                label=spec.label,
                mean_test=float(test_of_pick[:, j].mean()),
                mean_regret=float((best_test - test_of_pick[:, j]).mean()),
                beats_or_ties_val=versus,
                kendall_tau=float(taus[:, j].mean()),
                regret_vs_val=interval,
            )
        )
    return summaries
