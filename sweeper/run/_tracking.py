"""Experiment trackers: each trial is one run in W&B, MLflow or TensorBoard.

One small interface, :class:`Backend` (``start`` / ``log_epoch`` / ``finish``, ``start``
taking the id of the run to resume), three backends, and :class:`TrackedRun`, which fans a
trial out to the configured ones. A backend's client is imported only when a spec (or
``sweeper train --track``) names it.

A tracker must never fail or slow a trial: every backend runs in a daemon thread of its
own, fed through a queue, so the training loop only ever enqueues. The first call that
raises disables that backend for the trial with one warning line in the worker's log, and
:meth:`TrackedRun.finish` waits at most ``timeout_s`` for the queue to drain; a backend
still busy then (a server that does not answer) is left behind, disabled, with one warning.

Runs are named ``STUDY/trial-N`` after the trial's retry root, so a retried or resumed
trial continues the run its chain started: the ids to resume by
(:meth:`TrackedRun.run_ids`: the W&B run id, the MLflow run id, the TensorBoard folder)
are stored on the trial and copied to its retries.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sweeper.define import (
    MlflowTracking,
    TensorboardTracking,
    Tracker,
    TrackingSpec,
    WandbTracking,
)
from trainer_core.run_state import EpochRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInfo:
    """What a tracker needs to open a trial's run."""

    name: str
    """``STUDY/trial-N`` (N: the retry chain's first trial)."""
    group: str
    """The study's name: W&B's group, MLflow's default experiment, TensorBoard's folder."""
    params: Mapping[str, Any]
    """The full train config, flattened to dotted keys."""
    link: Mapping[str, Any]
    """Back to the sweep: study, trial number, storage URL with the password masked."""
    tags: tuple[str, ...] = ()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists become JSON text.

    Example:
        >>> flatten({"optimizer": {"lr": 0.1}, "milestones": [1, 2]})
        {'optimizer.lr': 0.1, 'milestones': '[1, 2]'}
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def epoch_metrics(record: EpochRecord) -> dict[str, float]:
    """An epoch's metrics as every tracker logs them; val figures only where it validated."""
    metrics = {"loss": record.train_loss, "lr": record.lr, "train_seconds": record.seconds}
    if record.wall_seconds is not None:
        metrics["epoch_seconds"] = record.wall_seconds
    if record.eval_seconds is not None:
        metrics["eval_seconds"] = record.eval_seconds
    if record.hmean is not None:
        metrics |= {
            "val/precision": record.precision or 0.0,
            "val/recall": record.recall or 0.0,
            "val/hmean": record.hmean,
        }
    return metrics


class Backend(Protocol):
    """One tracker's side of a trial's run; every call may raise (the caller contains it)."""

    kind: Tracker

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        """Open the run (or continue ``resume_id``); return the id that resumes it."""
        ...

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log one epoch's metrics at step ``epoch``."""
        ...

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None:
        """Write the summary and tags and close the run; ``state`` is Optuna's
        (COMPLETE, PRUNED, FAIL)."""
        ...


class WandbBackend:
    """Weights & Biases; offline mode writes run files that ``wandb sync`` uploads later.

    W&B takes the run id from us, so it is known before the client answers; a resumed
    trial passes it back with ``resume="allow"``.
    """

    kind: Tracker = "wandb"

    def __init__(self, spec: WandbTracking, root: Path, timeout_s: float) -> None:
        self.spec, self.timeout_s = spec, timeout_s
        self.dir = root / (spec.dir or "wandb")
        self.run: Any = None

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        _quiet_client_logs()
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        run_id = resume_id or new_wandb_id()
        settings = wandb.Settings(init_timeout=self.timeout_s, console="off", silent=True)
        self.run = wandb.init(
            project=self.spec.project,
            entity=self.spec.entity,
            mode=self.spec.mode,
            dir=str(self.dir),
            group=info.group,
            name=info.name,
            id=run_id,
            resume="allow",
            config={**info.params, "sweeper": dict(info.link)},
            tags=list(info.tags),
            settings=settings,
        )
        return run_id

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics) | {"epoch": epoch}, step=epoch)

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None:
        run = self.run
        run.summary.update(dict(summary) | {"state": state})
        run.tags = tuple(dict.fromkeys([*run.tags, *tags]))
        run.finish(exit_code=1 if state == "FAIL" else 0)


def new_wandb_id() -> str:
    """A fresh W&B run id (lower-case letters and digits, as W&B's own)."""
    return secrets.token_hex(6)


class MlflowBackend:
    """MLflow through its client: any tracking URI (a server, SQLite, a database).

    The experiment is the study's (or the spec's), so the study's runs sit together; the
    run id is MLflow's, stored on the trial once the run exists. Params are logged once:
    a resumed run has them already. The summary is ``final.*`` metrics and tags.
    """

    kind: Tracker = "mlflow"

    def __init__(self, spec: MlflowTracking) -> None:
        self.spec = spec
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        _quiet_client_logs()
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=self.spec.tracking_uri)
        if resume_id is not None:
            client.update_run(resume_id, status="RUNNING")
            self.run_id = resume_id
            return resume_id
        experiment = _mlflow_experiment(client, self.spec.experiment or info.group)
        tags = {f"sweeper.{k}": str(v) for k, v in info.link.items()}
        tags |= dict.fromkeys(info.tags, "true")
        run = client.create_run(experiment, run_name=info.name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in info.params.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            client.log_batch(self.run_id, params=params[i : i + 100])
        return self.run_id

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        batch = [Metric(k, float(v), stamp, epoch) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None:
        from mlflow.entities import Metric, RunTag

        stamp = _now_ms()
        numbers = {k: v for k, v in summary.items() if _is_number(v)}
        texts = {k: v for k, v in summary.items() if not _is_number(v) and v is not None}
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"final.{k}", float(v), stamp, 0) for k, v in numbers.items()],
            tags=[RunTag(f"final.{k}", str(v)) for k, v in texts.items()]
            + [RunTag(t, "true") for t in tags]
            + [RunTag("sweeper.state", state)],
        )
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(self.run_id, status)


def _mlflow_experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing (two workers may race to it)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


class TensorboardBackend:
    """TensorBoard event files in ``log_dir/STUDY/trial-N``; a resumed trial writes a
    second events file into the same folder, which TensorBoard shows as one run."""

    kind: Tracker = "tensorboard"

    def __init__(self, spec: TensorboardTracking, root: Path) -> None:
        self.log_dir = root / spec.log_dir
        self.writer: Any = None
        self.params: dict[str, Any] = {}

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        from torch.utils.tensorboard import SummaryWriter

        folder = resume_id or str(self.log_dir / info.name)
        self.writer = SummaryWriter(log_dir=folder)
        self.params = {k: v if _is_scalar(v) else str(v) for k, v in info.params.items()}
        link = "\n".join(f"- {k}: {v}" for k, v in info.link.items())
        self.writer.add_text("sweeper", f"**{info.name}**\n\n{link}")
        self.writer.add_text("config", _markdown_table(info.params))
        return folder

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None:
        writer = self.writer
        numbers = {f"final/{k}": float(v) for k, v in summary.items() if _is_number(v)}
        if numbers:  # TensorBoard's HParams tab: the config beside the final figures
            writer.add_hparams(self.params | {"state": state}, numbers, run_name=".")
        writer.add_text("summary", _markdown_table({**summary, "state": state, "tags": tags}))
        writer.close()


def _quiet_client_logs() -> None:
    """Keep the clients' chatter (MLflow's table creation, urllib3's retry lines) out of
    the worker's log: a tracker's trouble is the one line :class:`_Guarded` writes.
    An ``MLFLOW_LOGGING_LEVEL`` the user set wins."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def _markdown_table(rows: Mapping[str, Any]) -> str:
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float | str | bool)


def _now_ms() -> int:
    return int(time.time() * 1000)


_STOP = object()


@dataclass
class _Guarded:
    """One backend behind a queue and a daemon thread; disabled at its first failure."""

    backend: Backend
    timeout_s: float
    jobs: queue.Queue = field(default_factory=queue.Queue)
    run_id: str | None = None
    disabled: bool = False
    thread: threading.Thread | None = None

    def submit(self, call: Callable[[], Any]) -> None:
        if self.disabled:
            return
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._work, name=f"tracker-{self.backend.kind}", daemon=True
            )
            self.thread.start()
        self.jobs.put(call)

    def _work(self) -> None:
        while (call := self.jobs.get()) is not _STOP:
            try:
                if not self.disabled:
                    call()
            except Exception as e:  # any client error: disable, never fail the trial
                self.disable(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
            finally:
                self.jobs.task_done()
        self.jobs.task_done()

    def disable(self, why: str) -> None:
        if not self.disabled:
            self.disabled = True
            log.warning("tracker %s disabled for this trial: %s", self.backend.kind, why)

    def close(self) -> None:
        """Let the thread end once the calls queued so far ran."""
        if self.thread is not None:
            self.jobs.put(_STOP)

    def wait(self, seconds: float) -> None:
        """Wait at most ``seconds`` for the thread to end; a thread still busy then is left
        behind and the backend disabled."""
        if self.thread is None:
            return
        self.thread.join(seconds)
        if self.thread.is_alive():
            self.disable(f"no answer within {self.timeout_s:g} s; the trial goes on without it")


class TrackedRun:
    """A trial's run in every configured tracker; each call only queues work.

    Example:
        >>> run = TrackedRun([], RunInfo("demo/trial-0", "demo", {}, {}))  # no trackers
        >>> run.start({}); run.finish({}, [], "COMPLETE")
        >>> run.run_ids()
        {}
    """

    def __init__(self, backends: Sequence[Backend], info: RunInfo, timeout_s: float = 10.0):
        self.info = info
        self.timeout_s = timeout_s
        self._guarded = [_Guarded(b, timeout_s) for b in backends]

    def start(self, resume_ids: Mapping[str, str]) -> None:
        """Open (or continue, where ``resume_ids`` has the tracker's id) every run."""
        for guarded in self._guarded:
            guarded.submit(lambda g=guarded: self._start(g, resume_ids.get(g.backend.kind)))

    def _start(self, guarded: _Guarded, resume_id: str | None) -> None:
        guarded.run_id = guarded.backend.start(self.info, resume_id)

    def log_epoch(self, record: EpochRecord) -> None:
        metrics = epoch_metrics(record)
        for guarded in self._guarded:
            guarded.submit(lambda g=guarded: g.backend.log_epoch(record.epoch, metrics))

    def finish(self, summary: Mapping[str, Any], tags: Sequence[str], state: str) -> None:
        """Close every run with ``tags`` besides the start's, waiting at most ``timeout_s``
        in all for the trackers."""
        tags = list(dict.fromkeys([*self.info.tags, *tags]))  # a resumed run gets the start's
        for guarded in self._guarded:
            guarded.submit(lambda g=guarded: g.backend.finish(summary, tags, state))
            guarded.close()
        deadline = time.monotonic() + self.timeout_s
        for guarded in self._guarded:
            guarded.wait(max(0.0, deadline - time.monotonic()))

    def run_ids(self) -> dict[str, str]:
        """The id each started tracker resumes its run by (MLflow's arrives when its
        server has answered)."""
        return {g.backend.kind: g.run_id for g in self._guarded if g.run_id is not None}

    @property
    def active(self) -> tuple[Tracker, ...]:
        """The trackers not disabled so far."""
        return tuple(g.backend.kind for g in self._guarded if not g.disabled)


def open_trackers(spec: TrackingSpec | None, root: Path) -> list[Backend]:
    """The backends ``spec`` configures; relative folders live under ``root`` (the
    worker's ``--artifacts``). Nothing is imported or contacted yet."""
    if spec is None:
        return []
    backends: list[Backend] = []
    if spec.wandb is not None:
        backends.append(WandbBackend(spec.wandb, root, spec.timeout_s))
    if spec.mlflow is not None:
        backends.append(MlflowBackend(spec.mlflow))
    if spec.tensorboard is not None:
        backends.append(TensorboardBackend(spec.tensorboard, root))
    return backends
