"""What a sweep spent, read from its trials' cost ledgers on a real storage."""

from __future__ import annotations

import datetime

import pytest
from optuna.trial import FrozenTrial, TrialState

from storage import open_storage
from sweeper.define import create_study, load_study, parse_spec
from sweeper.rank import sweep_cost
from sweeper.trial_result import TrialCost, TrialResult
from tests.sweeper.tiny_sweep import tiny_spec

T0 = datetime.datetime(2026, 1, 1, 12, 0)


def _trial(
    number: int,
    state: TrialState,
    minutes: tuple[int, int],
    epochs: dict[int, float],
    score: float | None = None,
) -> FrozenTrial:
    """A finished trial that ran ``minutes`` after T0 and spent ``epochs`` on one GPU plus
    40 s of set-up, with val = holdout H-mean = ``score``."""
    spent = sum(epochs.values()) + 40.0
    cost = TrialCost(
        number,
        "cuda",
        1.0,
        spent,
        spent,
        spent - 40.0,
        0.0,
        40.0,
        "NVIDIA H100",
        90.0,
        epoch_device_s={str(e): s for e, s in epochs.items()},
    )
    result = TrialResult(cost=cost)
    if score is not None:
        result = TrialResult(val_hmean=score, gap_hmean=score, gap=0.0, cost=cost)
    start, end = (T0 + datetime.timedelta(minutes=m) for m in minutes)
    return FrozenTrial(
        number=number,
        state=state,
        value=score,
        values=None,
        datetime_start=start,
        datetime_complete=end,
        params={},
        distributions={},
        user_attrs=result.to_attrs(),
        system_attrs={},
        intermediate_values={e: score or 0.5 for e in epochs},
        trial_id=number,
    )


def test_spent_pruning_savings_and_near_best_from_the_ledgers(sqlite_url: str) -> None:
    spec = parse_spec(tiny_spec("spend", 10, epochs=3, budget={"n_trials": 10, "gpu_hours": 1.0}))
    create_study(spec, open_storage(sqlite_url))
    study, spec = load_study("spend", open_storage(sqlite_url))
    for trial in [
        _trial(0, TrialState.COMPLETE, (0, 10), {1: 200.0, 2: 200.0, 3: 160.0}, 0.80),
        _trial(1, TrialState.PRUNED, (0, 4), {1: 200.0}),
        _trial(2, TrialState.COMPLETE, (5, 15), {1: 100.0, 2: 300.0, 3: 160.0}, 0.90),
        _trial(3, TrialState.COMPLETE, (10, 20), {1: 100.0, 2: 100.0, 3: 160.0}, 0.897),
    ]:
        study.add_trial(trial)
    cost = sweep_cost(study.get_trials(), spec)
    assert cost is not None and cost.unit == "GPU-h"
    assert cost.spent_s == 600 + 240 + 600 + 400
    assert cost.overhead_s == 4 * 40.0
    # Trial 1 stopped after epoch 1; epochs 2 and 3 cost the completed trials 200 and 160
    # on average: unpruned it would have cost 240 + 200 + 160.
    assert (cost.pruned, cost.pruned_s, cost.priced_by) == (1, 240.0, 3)
    assert cost.unpruned_s == pytest.approx(600.0) and cost.saved_s == pytest.approx(360.0)
    # Trial 2 came first within half a point of the best (0.90, its own): by then trials 0, 1
    # and 2 had spent all of theirs, and trial 3, half-way through its run, half of its.
    assert cost.near_best_trial == 2 and cost.near_best_s == pytest.approx(1440 + 200)
    assert cost.left_s == 3600 - 1840
    assert cost.lines() == [
        "cost: 0.511 GPU-h spent (training 91%, evaluation 0%, overhead 9%); "
        "budget 1 GPU-h, 0.489 GPU-h left",
        "pruning saved 0.1 GPU-h: the 1 pruned trial(s) cost 0.0667 GPU-h and would have "
        "cost 0.167 GPU-h unpruned (epochs priced by 3 completed trial(s))",
        "within 0.5 point of the final best after 0.456 GPU-h (trial 2)",
    ]
    # Ranked by val H-mean alone the answer is the same trial; a sweep with no cost is None.
    assert sweep_cost(study.get_trials(), spec, rule="val").near_best_trial == 2
    assert sweep_cost([], spec) is None
