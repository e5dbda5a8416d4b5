"""The typed contracts between sweeper's parts: a trial's stored result, a worker's options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage import HeartbeatSettings
from sweeper.rank import RankedTrial
from sweeper.run import WorkerLimits, WorkerOptions
from sweeper.trial_result import METRIC_ATTRS, RESULT_ATTRS, TrialCost, TrialResult

FULL = TrialResult(
    stop_reason="completed",
    epochs_run=4,
    images_per_s=12.5,
    peak_memory_mb=1024.0,
    device="cuda:0",
    precision="bf16",
    batch_size=2,
    checkpoint_dir="checkpoints/s-0123/trial-3",
    val_precision=0.97,
    val_recall=0.96,
    val_hmean=0.965,
    gap_split="holdout",
    gap_precision=0.975,
    gap_recall=0.93,
    gap_hmean=0.952,
    gap=0.013,
    score=0.957,
    best_epoch=3,
    cost=TrialCost(3, "cuda", 0.5, 7200.0, 3600.0, 3000.0, 400.0, 200.0, "NVIDIA H100", 91.5),
)


def test_a_result_survives_its_attributes_and_ignores_the_others() -> None:
    attrs = {**FULL.to_attrs(), "host": "gpu-7", "fail_reason": "n/a"}
    assert json.loads(json.dumps(attrs)) == attrs  # storable as Optuna user attributes
    assert TrialResult.from_attrs(attrs) == FULL
    assert set(FULL.to_attrs()) == set(RESULT_ATTRS)


def test_a_run_that_never_validated_stores_no_metrics_and_is_not_ranked() -> None:
    early = TrialResult(stop_reason="pruned", epochs_run=0, device="cpu")
    assert early.to_attrs() == {"stop_reason": "pruned", "epochs_run": 0, "device": "cpu"}
    assert not TrialResult.from_attrs(early.to_attrs()).scored
    with pytest.raises(ValueError, match="no val H-mean"):
        early.rescored(0.5, 0.005)


def test_a_result_from_an_older_sweeper_still_ranks() -> None:
    # Trials recorded before the gap split's precision and recall were kept.
    old = {k: v for k, v in FULL.to_attrs().items() if k not in ("gap_precision", "gap_recall")}
    result = TrialResult.from_attrs(old)
    assert result.scored and result.gap_recall is None
    assert result.rescored(0.5, 0.005) == pytest.approx(0.965 - 0.5 * (0.013 - 0.005))


def test_the_dashboard_note_shows_where_val_overstates() -> None:
    lines = FULL.note().splitlines()
    assert lines[0] == "**score 95.70** · val H 96.50 · holdout H 95.20 · gap +1.30"
    assert "| val − holdout | -0.50 | +3.00 | +1.30 |" in lines  # all of the gap is recall
    assert lines[-3].startswith("completed after 4 epoch(s) · best epoch 3 · cuda:0 bf16")
    assert lines[-1] == (
        "cost: 1 GPU-h (training 83%, evaluation 11%, overhead 6%) · NVIDIA H100 · util 91.5%"
    )
    early = TrialResult(stop_reason="pruned", epochs_run=1, device="cpu").note()
    assert early == "pruned after 1 epoch(s) · cpu\n"


def test_every_metric_is_a_ranked_trial_field() -> None:
    # rank --format csv writes METRIC_ATTRS off RankedTrial: a rename breaks here, not there.
    assert set(METRIC_ATTRS) <= set(RankedTrial.__dataclass_fields__)
    assert "val_hmean" in METRIC_ATTRS and "stop_reason" not in METRIC_ATTRS


def test_worker_options_round_trip_through_json(tmp_path: Path) -> None:
    options = WorkerOptions(
        study_name="receipts",
        artifacts=tmp_path / "artifacts",
        limits=WorkerLimits(n_trials=3, timeout_s=60.0, storage_wait_s=5.0),
        data_root=tmp_path / "data",
        heartbeat=HeartbeatSettings(2, 7, 1),
    ).for_slot(3, threads=2)
    assert options.worker_index == 3 and options.threads == 2
    assert WorkerOptions.from_json(options.to_json()) == options
    bare = WorkerOptions("receipts", tmp_path)
    assert WorkerOptions.from_json(bare.to_json()) == bare
