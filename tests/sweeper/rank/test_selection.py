"""Ranking rules and the selection simulation, on a hand-made pool whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.rank import RuleSpec, kendall_tau, rule_value, simulate


def test_rule_values() -> None:
    assert rule_value("val", 0.9, 0.8) == 0.9
    assert rule_value("holdout", 0.9, 0.8) == 0.8
    assert rule_value("mean", 0.9, 0.8) == pytest.approx(0.85)
    # gap 0.1, 0.02 of it tolerated, the rest penalised twice.
    assert rule_value("score", 0.9, 0.8, penalty=2.0, tolerance=0.02) == pytest.approx(0.74)
    with pytest.raises(ValueError, match="rule 'best'"):
        rule_value("best", 0.9, 0.8)  # type: ignore[arg-type]


def test_kendall_tau() -> None:
    a = np.array([0.1, 0.5, 0.3, 0.9])
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)


def _noisy_and_steady_pool(epochs: int = 20, images: int = 120) -> np.ndarray:
    """Trial 0 matches a fresh random half of the images each epoch: its best epoch on val
    tops val by luck alone and is worth 0.5 anywhere else. Trial 1 matches the same 60% of
    the images every epoch. One cared box and one prediction per image."""
    rng = np.random.default_rng(1)
    counts = np.ones((2, epochs, images, 3), np.int64)
    counts[0, :, :, 2] = rng.random((epochs, images)) < 0.5
    counts[1, :, :, 2] = rng.random(images) < 0.6
    return counts


def test_val_picks_the_lucky_trial_and_holdout_does_not() -> None:
    rules = [RuleSpec("val"), RuleSpec("holdout"), RuleSpec("score", 1.0, 0.0), RuleSpec("mean")]
    val, holdout, score, mean = simulate(
        _noisy_and_steady_pool(), rules, sizes=(20, 40, 60), k=2, draws=200, seed=0
    )
    # Val's pick is mostly the lucky trial (0.5 on test), the holdout's the steady one (0.6).
    assert val.mean_test < 0.54
    assert holdout.mean_test > 0.57
    assert holdout.mean_regret < val.mean_regret - 0.03
    # ... and surely so: the paired interval of the regret difference lies below zero.
    assert holdout.regret_vs_val[1] < 0
    low, high = holdout.regret_vs_val
    assert low < holdout.mean_regret - val.mean_regret < high
    assert val.regret_vs_val == (0.0, 0.0)
    assert score.mean_test > val.mean_test + 0.03
    assert val.beats_or_ties_val == 1.0
    assert holdout.beats_or_ties_val > 0.9
    # Two trials: tau is +1 when the order agrees with the test's, -1 when not.
    assert holdout.kendall_tau > val.kendall_tau + 0.3
    assert val.mean_test <= mean.mean_test <= holdout.mean_test + 0.01
    assert [s.label for s in (val, holdout, score, mean)] == [
        "val",
        "holdout",
        "score(p=1, tol=0)",
        "mean",
    ]


def test_crossfit_scores_each_choice_on_the_other_split() -> None:
    rules = [RuleSpec("val"), RuleSpec("mean"), RuleSpec("crossfit")]
    val, mean, crossfit = simulate(
        _noisy_and_steady_pool(), rules, sizes=(40, 40, 40), k=2, draws=200, seed=0
    )
    # The lucky trial's best epoch on one split is worth 0.5 on the other: the cross-fitted
    # figure has no luck in it, so it picks the steady trial (0.6 on test) nearly always.
    assert crossfit.mean_test > 0.59
    assert crossfit.mean_regret < mean.mean_regret <= val.mean_regret
    assert crossfit.regret_vs_val[1] < 0 and crossfit.label == "crossfit"


def test_train_gap_rules_need_the_train_figures() -> None:
    pool = _noisy_and_steady_pool()
    rule = RuleSpec("score", 1.0, 0.0, gap_split="train")
    with pytest.raises(ValueError, match="train_hmean"):
        simulate(pool, [rule], sizes=(20, 40, 60), k=2, draws=1)
    # Trial 0 scores 1.0 on its training images: a gap of about 0.3-0.5 the score removes.
    train = np.stack([np.ones(20), np.full(20, 0.62)])
    [penalised] = simulate(pool, [rule], sizes=(20, 40, 60), k=2, draws=100, train_hmean=train)
    assert penalised.mean_test > 0.57


@pytest.mark.parametrize(
    "sizes, k, message", [((100, 40, 60), 2, "sizes"), ((20, 40, 60), 3, "k=3")]
)
def test_bad_simulation_arguments(sizes: tuple[int, int, int], k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(_noisy_and_steady_pool(), [RuleSpec("val")], sizes=sizes, k=k, draws=1)
