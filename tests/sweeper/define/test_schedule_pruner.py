"""The schedule-aware pruner as workers use it: a real Optuna study, report, should_prune."""

from __future__ import annotations

import optuna
import pytest

from sweeper.define import (
    SchedulePhasePruner,
    best_so_far_pruner,
    build_pruner,
    interpolated_value,
    parse_spec,
    phase_fractions,
)
from tests.sweeper.tiny_sweep import tiny_spec


def test_phase_fractions_are_the_spec_rungs_over_the_epochs() -> None:
    assert phase_fractions(2, 3, 22) == pytest.approx((2 / 22, 6 / 22, 18 / 22))
    assert phase_fractions(1, 3, 3) == pytest.approx((1 / 3,))


def test_interpolated_value() -> None:
    values = {1: 0.2, 2: 0.4, 3: 0.5}
    assert interpolated_value(values, 1.5) == pytest.approx(0.3)
    assert interpolated_value(values, 0.4) == 0.2  # before the first epoch: the first
    assert interpolated_value(values, 3.0) == 0.5
    assert interpolated_value(values, 3.5) is None  # epoch 4 not reported yet


def _report(study: optuna.Study, t_max: int, curve: list[float]) -> bool:
    """One trial: report ``curve`` epoch by epoch as a worker does; True if pruned."""
    trial = study.ask()
    trial.suggest_int("T_max", 1, 20)  # fixed by enqueue_trial
    for epoch, value in enumerate(curve, 1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    study.tell(trial, curve[-1])
    return False


def test_trials_are_compared_at_the_same_fraction_of_their_cosine() -> None:
    pruner = SchedulePhasePruner([0.5], 2, 10, default_t_max=10)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    # Rungs at half of each T_max: the short schedule is judged at epoch 2 (0.6), the long
    # ones at epoch 4: 0.55 is below 0.6 and cut, 0.65 is above and kept. (At epoch 4 the
    # short one stands at 0.7: an epoch rung would have cut both long ones.)
    study.enqueue_trial({"T_max": 4})
    assert not _report(study, 4, [0.5, 0.6, 0.7, 0.7, 0.7])
    study.enqueue_trial({"T_max": 8})
    assert _report(study, 8, [0.3, 0.4, 0.5, 0.55, 0.6])
    study.enqueue_trial({"T_max": 8})
    assert not _report(study, 8, [0.3, 0.4, 0.5, 0.65, 0.9])
    assert [t.last_step for t in study.trials] == [5, 4, 5]


def test_best_so_far_judges_a_trial_by_its_best_epoch_up_to_the_rung() -> None:
    study = optuna.create_study(direction="maximize", pruner=best_so_far_pruner(2, 2, 6))
    study.enqueue_trial({"T_max": 6})
    assert not _report(study, 6, [0.5, 0.55, 0.6, 0.6, 0.6, 0.6])
    # At epoch 2 this one stands at 0.5, below 0.55, but it reached 0.7 at epoch 1: kept.
    study.enqueue_trial({"T_max": 6})
    assert not _report(study, 6, [0.7, 0.5, 0.6, 0.6, 0.6, 0.6])
    study.enqueue_trial({"T_max": 6})
    assert _report(study, 6, [0.4, 0.5, 0.6, 0.6, 0.6, 0.6])


def test_the_spec_builds_it_and_auto_resolves() -> None:
    raw = tiny_spec("p", 4, epochs=6)
    raw["pruner"] = {"kind": "schedule_aware", "min_resource": 1, "reduction_factor": 3}
    spec = parse_spec(raw)
    pruner = build_pruner(spec)
    assert isinstance(pruner, SchedulePhasePruner)
    assert pruner.rung_epochs_of({"T_max": 12}) == pytest.approx([2.0])  # 1/6 of 12; 3/6 is 6
    assert "schedule-aware successive halving" in spec.describe_pruning()
    raw["pruner"] = {"min_resource": 1}
    auto = parse_spec(raw)
    assert auto.pruner.kind == "auto" and auto.pruner_kind == "best_so_far"
    assert "chosen for a T_max search by pruner.kind: auto" in auto.describe_pruning()
    del raw["search_space"]["T_max"]
    assert parse_spec(raw).pruner_kind == "hyperband"
    assert "chosen" not in parse_spec(raw).describe_pruning()
