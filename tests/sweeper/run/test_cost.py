"""The cost ledger and the trackers on real tiny trials (CPU, 64 px, SQLite).

A trial interrupted after its first epoch and resumed by its retry: each attempt records
its own device-seconds, the chain's cost is their sum, status shows it, and the retry
continues the chain's MLflow run and TensorBoard folder instead of opening new ones. A
tracker that is down never fails a trial.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from optuna_dashboard import get_note
from typer.testing import CliRunner

from storage import open_storage
from sweeper.attrs import INTERRUPTED_ATTR, TRACKING_RUNS_ATTR
from sweeper.cli import app
from sweeper.define import load_study
from sweeper.rank import chain_costs, study_status
from sweeper.run import WorkerContext, WorkerLimits, run_worker
from sweeper.trial_result import TrialCost, TrialResult, own_cost
from tests.sweeper.tiny_sweep import create, make_data, run_trials, tiny_spec


def _interrupt_after_first_epoch(ctx: WorkerContext) -> None:
    """Stop the worker (as SIGTERM does) once its trial has reported epoch 1."""

    def on_status(event: dict[str, Any]) -> None:
        if event.get("event") == "epoch":
            ctx.stop.set()

    ctx.on_status = on_status


def test_a_resumed_chain_adds_up_its_cost_and_continues_its_tracker_runs(
    tmp_path: Path, sqlite_url: str
) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_data(tmp_path)
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"mlflow": {"tracking_uri": mlflow_uri}, "tensorboard": {"log_dir": "tb"}}
    create(
        tmp_path,
        sqlite_url,
        tiny_spec("chain", n_trials=1, pruner={"kind": "none"}, tracking=tracking),
    )

    first = WorkerContext("chain", tmp_path / "artifacts", "test:1/0.aaaaaa", data_root=tmp_path)
    _interrupt_after_first_epoch(first)
    run_worker("chain", sqlite_url, first, WorkerLimits(n_trials=1))
    second = WorkerContext("chain", tmp_path / "artifacts", "test:1/0.bbbbbb", data_root=tmp_path)
    run_worker("chain", sqlite_url, second, WorkerLimits(n_trials=1))

    study, _ = load_study("chain", open_storage(sqlite_url))
    cut, resumed = study.get_trials()
    assert cut.state == TrialState.FAIL and cut.user_attrs[INTERRUPTED_ATTR]
    assert resumed.state == TrialState.COMPLETE
    before, after = own_cost(0, cut.user_attrs), own_cost(1, resumed.user_attrs)
    assert before is not None and after is not None
    assert list(before.epoch_device_s) == ["1"] and list(after.epoch_device_s) == ["2"]
    for cost in (before, after):
        assert cost.kind == "cpu" and cost.devices == 1.0 and cost.device_name.startswith("cpu")
        assert cost.utilization_pct is None and cost.peak_memory_mb is None  # no GPU: unknown
        assert cost.training_device_s > 0 and cost.evaluation_device_s > 0
        parts = cost.training_device_s + cost.evaluation_device_s + cost.overhead_device_s
        assert parts == pytest.approx(cost.device_s, abs=0.01)
    # The retry inherited its predecessor's cost as an attribute copy: counted once.
    assert own_cost(1, cut.user_attrs) is None
    assert TrialResult.from_attrs(resumed.user_attrs).cost == after

    (chain,) = chain_costs(study.get_trials()).values()
    assert chain.device_s == pytest.approx(before.device_s + after.device_s, abs=0.002)
    assert set(chain.epoch_device_s) == {"1", "2"}
    status = study_status("chain", open_storage(sqlite_url))
    assert status.cost is not None
    assert status.cost.spent_s == pytest.approx(chain.device_s, abs=0.002)
    assert status.cost.lines()[0].startswith("cost: ")
    for command in ("status", "rank"):
        shown = CliRunner().invoke(app, [command, "chain", "--storage", sqlite_url])
        assert shown.exit_code == 0, shown.output
        assert status.cost.lines()[0].split(" spent")[0] in shown.output
    note = get_note(optuna.Trial(study, resumed._trial_id))
    # The note was written with the result, before the last ledger write: the chain so far.
    (line,) = [x for x in note.splitlines() if x.startswith("cost (its retry chain): ")]
    assert " device-h (training " in line and line.endswith(" · cpu (x86_64)")

    # One MLflow run for the chain, its val H-mean history over both attempts.
    ids = resumed.user_attrs[TRACKING_RUNS_ATTR]
    assert ids == cut.user_attrs[TRACKING_RUNS_ATTR]
    client = MlflowClient(tracking_uri=mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("chain").experiment_id])
    assert run.info.run_id == ids["mlflow"] and run.info.run_name == "chain/trial-0"
    assert run.info.status == "FINISHED" and run.data.tags["retried"] == "true"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/hmean")] == [1, 2]
    assert run.data.params["optimizer.lr"] == repr(cut.params["lr"])
    assert run.data.metrics["final.gpu_hours"] == pytest.approx(after.device_s / 3600, abs=1e-5)
    # One TensorBoard folder: the interrupted events file and the resumed one.
    folder = tmp_path / "artifacts" / "tb" / "chain" / "trial-0"
    assert ids["tensorboard"] == str(folder)
    events = EventAccumulator(str(folder))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2]


def test_a_tracker_that_is_down_never_fails_the_trial(
    tmp_path: Path,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow's server does not answer (nothing listens); W&B writes offline. The trial
    completes, W&B has its run files, and the log has one line about MLflow."""
    import socket

    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracking = {
        "wandb": {"project": "receipts", "mode": "offline"},
        "mlflow": {"tracking_uri": f"http://127.0.0.1:{port}"},
        "timeout_s": 2,
    }
    spec = tiny_spec("down", n_trials=1, epochs=1, tracking=tracking)
    with caplog.at_level(logging.WARNING):
        run_trials(make_data(tmp_path), sqlite_url, spec, n_trials=1)
    (trial,) = optuna.load_study(study_name="down", storage=sqlite_url).get_trials()
    assert trial.state == TrialState.COMPLETE
    assert set(trial.user_attrs[TRACKING_RUNS_ATTR]) == {"wandb"}
    run_id = trial.user_attrs[TRACKING_RUNS_ATTR]["wandb"]
    assert list((tmp_path / "artifacts" / "wandb" / "wandb").glob(f"offline-run-*-{run_id}"))
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.run._tracking"]
    assert lines == [
        "tracker mlflow disabled for this trial: no answer within 2 s; the trial goes on without it"
    ]


def test_cost_sums_along_a_chain_once_each() -> None:
    a = TrialCost(0, "cuda", 1.0, 10.0, 10.0, 7.0, 2.0, 1.0, "H100", 80.0, 900.0, {"1": 9.0})
    b = TrialCost(1, "cuda", 0.5, 20.0, 10.0, 8.0, 1.0, 1.0, "H100", 40.0, 1200.0, {"2": 9.5})
    total = a + b
    assert (total.device_s, total.training_device_s, total.wall_s) == (20.0, 15.0, 30.0)
    assert total.utilization_pct == 60.0  # weighted by device-seconds
    assert total.peak_memory_mb == 1200.0 and total.epoch_device_s == {"1": 9.0, "2": 9.5}
    assert (TrialCost.zero() + a).device_s == a.device_s  # the start of a sum adds nothing
    assert own_cost(1, {"cost": a.__dict__}) is None  # another trial's copy
    assert "0.00278 GPU-h (training 70%, evaluation 20%, overhead 10%) · H100 · util 80%" in (
        a.describe()
    )
