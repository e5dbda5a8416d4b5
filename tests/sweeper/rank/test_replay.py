"""The replayer on hand-made curves whose answer is known, through Optuna's real pruners."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from sweeper.rank import POLICIES, judge, make_policy, replay, rung_correlation, spearman

EPOCHS = 10


def _progress_curve(t_max: int, start: float, gain: float) -> np.ndarray:
    """A curve that climbs linearly with the fraction of its cosine trained, then holds."""
    progress = np.minimum(np.arange(1, EPOCHS + 1) / t_max, 1.0)
    return start + gain * progress


def _run(name: str, curves: np.ndarray, params: list[dict], **kwargs: object):
    policy = make_policy(
        name, min_resource=3, reduction_factor=2, epochs=EPOCHS, default_t_max=EPOCHS
    )
    return replay(
        curves,
        policy.make(),
        params=params,
        decisions=[policy.decisions(p) for p in params],
        **kwargs,
    )


def test_a_rung_at_the_crossing_cuts_the_winner_a_phase_aligned_rung_does_not() -> None:
    # A short schedule climbs fast and ends lower; a long one is behind at every epoch rung
    # (3, 6) but ahead at the same fraction of its own T_max, and ends best.
    short = _progress_curve(8, 0.5, 0.3)
    long = _progress_curve(11, 0.5, 0.4)
    curves = np.stack([short, long])
    params = [{"T_max": 8}, {"T_max": 11}]
    assert short[2] > long[2] and short[5] > long[5] and long[-1] > short[-1]

    by_epoch = _run("successive_halving", curves, params, workers=2)
    assert by_epoch.pruned.tolist() == [False, True]
    assert by_epoch.epochs.tolist() == [EPOCHS, 3]
    outcome = judge(by_epoch, value=curves[:, -1], test=curves[:, -1])
    assert outcome.pick == 0 and not outcome.winner_survived and outcome.regret > 0

    by_phase = _run("schedule_aware", curves, params, workers=2)
    assert by_phase.pruned.tolist() == [False, False]
    outcome = judge(by_phase, value=curves[:, -1], test=curves[:, -1])
    assert outcome.pick == 1 and outcome.winner_survived and outcome.regret == 0
    assert outcome.epochs == 2 * EPOCHS

    # Measured the same way: at the epoch rungs the order is the reverse of the final one.
    finals = curves[:, -1]
    assert rung_correlation(curves, np.array([[3.0], [3.0]]), finals)[0] == pytest.approx(-1)
    phase = np.array([[0.3 * 8], [0.3 * 11]])
    assert rung_correlation(curves, phase, finals)[0] == pytest.approx(1)


@pytest.mark.parametrize("name", POLICIES)
def test_on_parallel_curves_every_policy_keeps_the_winner(name: str) -> None:
    rng = np.random.default_rng(0)
    shape = np.log1p(np.arange(1, EPOCHS + 1))
    offsets = rng.permutation(12) / 100
    curves = shape[None, :] + offsets[:, None]
    params = [{"T_max": EPOCHS} for _ in offsets]
    run = _run(name, curves, params, workers=4, order=rng.permutation(12))
    outcome = judge(run, value=curves[:, -1], test=curves[:, -1])
    assert outcome.pick == int(offsets.argmax())
    assert outcome.winner_survived and outcome.regret == 0
    if name != "none":
        assert run.pruned.any() and outcome.epochs < 12 * EPOCHS


def test_the_trial_reaching_a_rung_first_is_promoted() -> None:
    # The worse trial is promoted when it reaches the rung first (it is alone there), and
    # pruned when it gets there after the better one: the asynchrony Optuna's pruner has.
    curves = np.array([[0.5] * EPOCHS, [0.6] * EPOCHS])
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=2)
    first = replay(curves, pruner, workers=2, epoch_time=[0.5, 1.0])
    assert first.pruned.tolist() == [False, False]
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=2)
    second = replay(curves, pruner, workers=2, epoch_time=[1.5, 1.0])
    assert second.pruned.tolist() == [True, False]
    assert second.epochs.tolist() == [3, EPOCHS]


def test_one_worker_replays_in_order() -> None:
    curves = np.array([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5], [0.2, 0.3, 0.4]])
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    run = replay(curves, pruner, workers=1)
    # Trial 0 is alone at epoch 1, trial 1 beats it, trial 2 is below trial 1 there.
    assert run.epochs.tolist() == [3, 3, 1] and run.pruned.tolist() == [False, False, True]
    run = replay(curves, optuna.pruners.NopPruner(), workers=1, order=[2, 1, 0])
    assert run.order.tolist() == [2, 1, 0] and run.epochs.tolist() == [3, 3, 3]


def test_bad_arguments() -> None:
    curves = np.zeros((2, 3))
    with pytest.raises(ValueError, match="workers=0"):
        replay(curves, optuna.pruners.NopPruner(), workers=0)
    with pytest.raises(ValueError, match="order"):
        replay(curves, optuna.pruners.NopPruner(), order=[0, 0])
    with pytest.raises(ValueError, match="pruner 'asha'"):
        make_policy("asha", min_resource=1, reduction_factor=3, epochs=10, default_t_max=10)


def test_spearman() -> None:
    a = np.array([0.1, 0.4, 0.3, 0.9])
    assert spearman(a, a**2) == pytest.approx(1)
    assert spearman(a, -a) == pytest.approx(-1)
    assert spearman(a, np.ones(4)) == 0.0
