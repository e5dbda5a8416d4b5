"""The trackers for real, offline: what each writes is read back with its own reader.

W&B in offline mode (its ``.wandb`` run file, a LevelDB-style log of protobuf records),
MLflow on a SQLite store through MLflow's own client, TensorBoard through its event
reader. A tracker that raises or hangs is disabled with one warning and the run goes on.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sweeper.define import (
    MlflowTracking,
    TensorboardTracking,
    Tracker,
    TrackingSpec,
    WandbTracking,
    missing_tracker_extra,
)
from sweeper.run._tracking import (
    MlflowBackend,
    RunInfo,
    TensorboardBackend,
    TrackedRun,
    WandbBackend,
    open_trackers,
)
from trainer_core.run_state import EpochRecord

INFO = RunInfo(
    name="demo/trial-3",
    group="demo",
    params={"optimizer.lr": 3e-4, "epochs": 3, "data.splits": "[1, 2]"},
    link={"study": "demo", "trial": 4, "storage": "postgresql://me:***@db/sweeps"},
    tags=("retried",),
)
SUMMARY = {"score": 0.71, "val_hmean": 0.74, "device": "cpu (x86_64)", "gpu_hours": 0.002}


def _epoch(epoch: int) -> EpochRecord:
    h = 0.5 + 0.1 * epoch
    return EpochRecord(epoch, 1.0 / epoch, 1e-3, 2.0, 8.0, h, h, h, 0.5, 0.1)


def _track(backend: Any, epochs: Sequence[int], resume: Mapping[str, str] = {}) -> TrackedRun:
    run = TrackedRun([backend], INFO, timeout_s=60)
    run.start(resume)
    for epoch in epochs:
        run.log_epoch(_epoch(epoch))
    run.finish(SUMMARY, ["pruned"], "PRUNED")
    assert run.active == (backend.kind,)  # nothing disabled it
    return run


# ---- W&B ---------------------------------------------------------------------------------


def _wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a ``.wandb`` file: a 7-byte header, then 32 KiB blocks of
    chunks (crc32 4, length 2, type 1: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if (left := 32768 - pos % 32768) < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _wandb_run(folder: Path) -> dict[str, Any]:
    """Run, config, history and summary of one offline run folder, as plain data.

    W&B's writer is a process of its own that may still be flushing when ``finish``
    returns: the file is read once it ends with its exit record.
    """
    (path,) = folder.glob("run-*.wandb")
    for _ in range(300):
        records = _wandb_records(path)
        if records and records[-1].WhichOneof("record_type") == "exit":
            break
        time.sleep(0.1)
    run: dict[str, Any] = {"history": {}, "summary": {}, "config": {}}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run |= {"id": r.run_id, "name": r.display_name, "group": r.run_group}
            run["tags"] = list(r.tags)
            run["config"] |= {u.key: json.loads(u.value_json) for u in r.config.update}
        elif kind == "history":
            items = {
                "/".join(i.nested_key) or i.key: json.loads(i.value_json)
                for i in record.history.item
            }
            run["history"][items["_step"]] = items
        elif kind == "summary":
            for u in record.summary.update:
                run["summary"]["/".join(u.nested_key) or u.key] = json.loads(u.value_json)
    return run


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B keeps its settings and cache in the test's folder, and never goes online."""
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


@pytest.mark.usefixtures("wandb_env")
def test_wandb_offline_run_files_hold_the_trial(tmp_path: Path) -> None:
    spec = WandbTracking(project="receipts", mode="offline")
    first = _track(WandbBackend(spec, tmp_path, 30), [1, 2])
    run_id = first.run_ids()["wandb"]
    time.sleep(1.1)  # W&B names an offline run's folder by the second it started
    # The retry of the trial continues the same W&B run (synced, the two files are one run).
    _track(WandbBackend(spec, tmp_path, 30), [3], resume={"wandb": run_id})

    folders = sorted((tmp_path / "wandb" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(folders) == 2
    before, after = (_wandb_run(f) for f in folders)
    assert before["id"] == after["id"] == run_id
    assert (before["name"], before["group"]) == ("demo/trial-3", "demo")
    assert before["config"]["optimizer.lr"] == 3e-4
    assert before["config"]["sweeper"]["storage"] == "postgresql://me:***@db/sweeps"
    assert sorted(before["history"]) == [1, 2] and sorted(after["history"]) == [3]
    assert before["history"][2]["val/hmean"] == pytest.approx(0.7)
    assert before["history"][2]["epoch_seconds"] == pytest.approx(2.6)
    assert before["summary"]["score"] == 0.71 and before["summary"]["state"] == "PRUNED"
    assert before["tags"] == ["retried", "pruned"]  # at the start, and at the end


# ---- MLflow ------------------------------------------------------------------------------


def test_mlflow_run_params_and_metric_histories_read_back(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = MlflowTracking(tracking_uri=uri)
    run_id = _track(MlflowBackend(spec), [1, 2]).run_ids()["mlflow"]
    _track(MlflowBackend(spec), [3], resume={"mlflow": run_id})

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("demo")
    (run,) = client.search_runs([experiment.experiment_id])  # one run, resumed in place
    assert run.info.run_id == run_id and run.info.run_name == "demo/trial-3"
    assert run.info.status == "KILLED"  # pruned
    assert run.data.params["optimizer.lr"] == "0.0003"
    assert run.data.tags["sweeper.storage"] == "postgresql://me:***@db/sweeps"
    assert run.data.tags["retried"] == run.data.tags["pruned"] == "true"
    assert run.data.tags["final.device"] == "cpu (x86_64)"
    assert run.data.metrics["final.score"] == 0.71
    history = client.get_metric_history(run_id, "val/hmean")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.6), (2, 0.7), (3, 0.8)]


def test_a_tracking_server_that_is_down_disables_mlflow_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens on the port: MLflow's client would retry for minutes; the trial
    waits ``timeout_s`` at its end, once, and logs one line."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = MlflowTracking(tracking_uri=f"http://127.0.0.1:{port}")
    run = TrackedRun([MlflowBackend(spec)], INFO, timeout_s=1)
    with caplog.at_level(logging.WARNING, logger="sweeper.run._tracking"):
        run.start({})
        run.log_epoch(_epoch(1))
        run.finish(SUMMARY, [], "COMPLETE")
    assert run.active == () and run.run_ids() == {}
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("tracker mlflow disabled for this trial")


# ---- TensorBoard -------------------------------------------------------------------------


def test_tensorboard_events_read_back_with_its_reader(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = TensorboardTracking(log_dir="tb")
    folder = _track(TensorboardBackend(spec, tmp_path), [1, 2]).run_ids()["tensorboard"]
    assert Path(folder) == tmp_path / "tb" / "demo" / "trial-3"
    _track(TensorboardBackend(spec, tmp_path), [3], resume={"tensorboard": folder})

    events = EventAccumulator(folder)
    events.Reload()
    hmean = [(e.step, round(e.value, 6)) for e in events.Scalars("val/hmean")]
    assert hmean == [(1, 0.6), (2, 0.7), (3, 0.8)]  # one run, both events files
    assert "sweeper/text_summary" in events.Tags()["tensors"]
    summary = events.Tensors("summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| score | 0.71 |" in summary and "pruned" in summary


# ---- failures ----------------------------------------------------------------------------


class _Raising:
    """A tracker that rejects every call, as a client with a bad API key does."""

    kind: Tracker = "wandb"

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        raise PermissionError("401 Unauthorized: bad API key")

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        raise AssertionError("a disabled tracker is not called again")

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None:
        raise AssertionError("a disabled tracker is not called again")


class _Hanging:
    """A tracker whose server accepts the connection and never answers."""

    kind: Tracker = "mlflow"

    def __init__(self) -> None:
        self.release = threading.Event()

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        self.release.wait()
        return "never"

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None: ...


def test_a_raising_and_a_hanging_tracker_are_disabled_with_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hanging = _Hanging()
    tensorboard = TensorboardBackend(TensorboardTracking(log_dir="tb"), tmp_path)
    run = TrackedRun([_Raising(), hanging, tensorboard], INFO, timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="sweeper.run._tracking"):
        run.start({})
        for epoch in (1, 2):
            run.log_epoch(_epoch(epoch))
        run.finish(SUMMARY, [], "COMPLETE")
    hanging.release.set()
    assert run.active == ("tensorboard",)  # the healthy tracker kept its run
    lines = sorted(r.getMessage() for r in caplog.records)
    assert len(lines) == 2
    assert lines[0].startswith("tracker mlflow disabled for this trial: no answer within 5 s")
    assert lines[1] == (
        "tracker wandb disabled for this trial: PermissionError: 401 Unauthorized: bad API key"
    )


# ---- the spec's section ------------------------------------------------------------------


def test_the_spec_names_the_extra_a_missing_tracker_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = TrackingSpec(tensorboard=TensorboardTracking(log_dir="tb"))
    assert missing_tracker_extra(spec) is None  # installed by --all-extras
    monkeypatch.setitem(__import__("sys").modules, "tensorboard", None)  # as if uninstalled
    assert missing_tracker_extra(spec) == (
        "tracking.tensorboard: the tensorboard client is not installed; install the extra: "
        "uv sync --extra tensorboard (or pip install 'sweeper[tensorboard]')"
    )
    assert [b.kind for b in open_trackers(spec, Path("."))] == ["tensorboard"]
    assert open_trackers(None, Path(".")) == []
