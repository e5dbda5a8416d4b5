"""``sweeper worker``: one child process per GPU (or N on the CPU), supervised.

Each child is pinned to its GPU with ``CUDA_VISIBLE_DEVICES`` before it imports torch, runs
:func:`sweeper.run._worker.worker_process_main`, and prints one JSON status line per event. The
parent shows a live line per child, restarts a child that died (at most ``max_restarts``
times in :data:`RESTART_WINDOW_S`, with a growing delay; never one that stopped on bad data,
bad config or a storage gone for too long), prints each death and restart as its own line,
forwards SIGTERM/SIGINT, and exits 0 when every child finished cleanly, 2 when one stopped on
bad input, 3 when one gave up on an unreachable storage (past ``--storage-wait``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from storage import ENV_VAR, resolve_url
from sweeper.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_STORAGE_GONE, OptionError
from sweeper.paths import log_file, safe_component
from sweeper.run._options import WorkerOptions

STOP_GRACE_S = 30.0
RESTART_WINDOW_S = 600.0
"""A child may be restarted ``max_restarts`` times within this many seconds; crashes spread
over a week-long sweep never take its slot offline for good."""
# Exits a restart would only repeat: bad data or config, a storage gone for too long.
_FINAL_EXITS = (0, EXIT_BAD_INPUT, EXIT_STORAGE_GONE)


@dataclass(frozen=True)
class Slot:
    """One child process: its index and the GPU it sees (None: CPU only)."""

    index: int
    gpu: str | None
    threads: int | None = None
    devices: float = 1.0
    """The devices it holds: its GPU's share (1/K for K children a GPU), or 1 on the CPU."""

    @property
    def label(self) -> str:
        return f"gpu {self.gpu}" if self.gpu is not None else "cpu"


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    import torch  # only here: the parent never touches CUDA otherwise

    return [str(i) for i in range(torch.cuda.device_count())]


def plan_slots(gpus: str = "auto", procs: int | None = None, procs_per_gpu: int = 1) -> list[Slot]:
    """Which children to start.

    Args:
        gpus: ``auto`` (every visible GPU, else the CPU), ``cpu``, or a list like ``0,1,3``
            of GPUs this node has (as ``CUDA_VISIBLE_DEVICES`` names them, when it is set).
        procs: number of CPU processes (CPU only; default 1).
        procs_per_gpu: children per GPU, for models small enough to share one.

    Raises:
        OptionError: a malformed GPU list, a GPU this node does not have, or a count below 1.
    """
    if procs is not None and procs < 1:
        raise OptionError(f"--procs {procs}: must be 1 or more")
    if procs_per_gpu < 1:
        raise OptionError(f"--procs-per-gpu {procs_per_gpu}: must be 1 or more")
    if gpus == "auto":
        devices = _visible_gpus()
    elif gpus == "cpu":
        devices = []
    else:
        devices = [g.strip() for g in gpus.split(",")]
        if not all(g.isdigit() for g in devices):
            raise OptionError(f"--gpus {gpus!r}: use auto, cpu, or GPU indices like 0,1,3")
        _check_present(gpus, devices)
    if devices:
        return [
            Slot(i * procs_per_gpu + k, gpu, devices=1 / procs_per_gpu)
            for i, gpu in enumerate(devices)
            for k in range(procs_per_gpu)
        ]
    n = procs or 1
    # Split the cores so CPU children do not oversubscribe each other.
    threads = max(1, (os.cpu_count() or 1) // n)
    return [Slot(i, None, threads) for i in range(n)]


def _check_present(gpus: str, devices: list[str]) -> None:
    """OptionError unless this node has every GPU of ``devices``: a child given a GPU that is
    not there would train on the CPU under that GPU's label."""
    visible = _visible_gpus()
    missing = [g for g in devices if g not in visible]
    if missing:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = "CUDA_VISIBLE_DEVICES not set" if env is None else f"CUDA_VISIBLE_DEVICES={env}"
        raise OptionError(
            f"--gpus {gpus}: no GPU {', '.join(missing)}: this node has {len(visible)} ({shown})"
        )


@dataclass
class ChildState:
    """What the parent knows of one child, from its status lines."""

    slot: Slot
    process: subprocess.Popen | None = None
    restarts: int = 0
    restart_times: list[float] = field(default_factory=list)  # monotonic, recent ones
    restart_at: float | None = None  # a restart waiting out its backoff
    reason: str | None = None  # why the child stopped for good, from its last status
    reader: threading.Thread | None = None  # reads its status lines until it exits
    trial: int | None = None
    epoch: int | None = None
    hmean: float | None = None
    note: str = "starting"
    trials_run: int = 0
    returncode: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, event: dict[str, Any]) -> None:
        with self.lock:
            kind = event.get("event")
            if kind == "trial":
                self.trial, self.epoch, self.hmean = event["trial"], None, None
                self.note = "training"
                self.trials_run += 1
            elif kind == "epoch":
                self.epoch, self.hmean = event["epoch"], event["hmean"]
            elif kind == "failed":
                self.note = f"trial failed: {event['reason']}"
            elif kind == "waiting":
                self.note = "waiting for running trials elsewhere"
            elif kind == "done":
                self.note = "done"
            elif kind == "outage":
                self.note = f"storage unreachable, retry in {event['retry_in']} s"
            elif kind in ("gone", "fatal"):
                self.reason = event["reason"]

    def line(self) -> str:
        """Live status, short enough for 80 columns: ``#0 cpu  trial 12  epoch 7  val H 81.23
        training`` (a long failure reason wraps)."""
        with self.lock:
            parts = [f"#{self.slot.index} {self.slot.label}"]
            if self.trial is not None:
                parts.append(f"trial {self.trial}")
            if self.epoch is not None:
                parts.append(f"epoch {self.epoch}")
            if self.hmean is not None:
                parts.append(f"val H {100 * self.hmean:.2f}")
            return "  ".join([*parts, self.note])


def restart_delay(
    code: int, restart_times: list[float], now: float, stopping: bool, max_restarts: int
) -> float | None:
    """Seconds to wait before restarting a child that exited ``code``; None: it stays down.

    Exits a restart would only repeat (clean, bad input, storage gone) and a node that is
    stopping restart nothing; a child restarted ``max_restarts`` times within
    :data:`RESTART_WINDOW_S` stays down; otherwise the delay doubles with each recent
    restart, up to 30 s, so a child that dies at once is not restarted in a hot loop.

    Example:
        >>> restart_delay(1, [], now=0.0, stopping=False, max_restarts=3)
        1.0
    """
    recent = [t for t in restart_times if now - t < RESTART_WINDOW_S]
    if code in _FINAL_EXITS or stopping or len(recent) >= max_restarts:
        return None
    return min(2.0 ** len(recent), 30.0)


def _why(child: ChildState, code: int) -> str:
    """Why a child that exited ``code`` is not restarted, in a few words."""
    if child.reason:
        return child.reason
    if code in _FINAL_EXITS:
        return "not restarted"
    return f"{len(child.restart_times)} restarts in the last {RESTART_WINDOW_S:.0f} s"


def _read_status(child: ChildState, stream: Any) -> None:
    for raw in stream:
        try:
            child.update(json.loads(raw))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue


def _table(children: list[ChildState]) -> Table:
    table = Table(show_header=False, box=None)
    for child in children:
        table.add_row(Text(child.line()))  # notes are data, never markup
    return table


@dataclass(frozen=True)
class _Launcher:
    """Starts one slot's child: pinned to its GPU, logging to its own file."""

    command: tuple[str, ...]
    options: WorkerOptions
    env: dict[str, str]
    log_path: Callable[[int], Path]

    def start(self, child: ChildState) -> None:
        env = {**self.env, "CUDA_VISIBLE_DEVICES": child.slot.gpu or ""}
        slot = child.slot
        options = self.options.for_slot(slot.index, slot.threads, slot.devices)
        with open(self.log_path(child.slot.index), "a") as log:  # the child keeps its own fd
            child.process = subprocess.Popen(
                [*self.command, options.to_json()],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        child.reader = threading.Thread(
            target=_read_status, args=(child, child.process.stdout), daemon=True
        )
        child.reader.start()


def _settle(
    child: ChildState, launcher: _Launcher, stopping: bool, max_restarts: int, logs: Path
) -> tuple[bool, bool]:
    """Look after one child once: restart it when its backoff is over, decide the fate of
    one that exited. Returns (still running or waiting to restart, worth a printed line)."""
    code = child.process.poll() if child.process else None
    if code is None:
        return True, False
    if child.returncode is not None:
        return False, False
    now = time.monotonic()
    if child.restart_at is not None:
        if now >= child.restart_at:
            child.restart_at = None
            launcher.start(child)
        return True, False
    if child.reader is not None:
        child.reader.join(timeout=2.0)  # its last status line says why
    child.restart_times = [t for t in child.restart_times if now - t < RESTART_WINDOW_S]
    delay = restart_delay(code, child.restart_times, now, stopping, max_restarts)
    if delay is not None:
        child.restart_times.append(now)
        child.restarts += 1
        child.restart_at = now + delay
        child.note = f"died (exit {code}); restart {child.restarts} in {delay:.0f} s"
        return True, code != 0
    child.returncode = code
    if code != 0:
        child.note = f"exited {code}: {_why(child, code)} (see {logs})"
    return False, code != 0


def run_workers(
    options: WorkerOptions,
    storage_url: str | None,
    slots: list[Slot],
    *,
    max_restarts: int = 3,
    console: Console | None = None,
    child_command: tuple[str, ...] = (sys.executable, "-m", "sweeper.run._child"),
) -> int:
    """Start a child per slot with ``options`` and supervise them; return the exit code
    (0 all clean, 2 if one stopped on bad input, 3 if one gave up on the storage, else 1).

    Each slot logs to its own file, named by the study's key (``options.study_key``)
    and by this node and process, so nodes sharing the artifacts directory never mix logs.
    ``child_command`` is the child's argv before its JSON options.
    """
    console = console or Console(stderr=True)
    logs = options.artifacts / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    node = f"{socket.gethostname()}-{os.getpid()}"
    key = options.study_key or safe_component(options.study_name)
    launcher = _Launcher(
        child_command,
        options,
        # The URL travels in the environment, not on the command line where `ps` shows it.
        {**os.environ, ENV_VAR: resolve_url(storage_url), "PYTHONUNBUFFERED": "1"},
        lambda slot: log_file(options.artifacts, key, node, slot),
    )
    children = [ChildState(slot) for slot in slots]
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            launcher.start(child)
        with Live(_table(children), console=console, refresh_per_second=2) as live:
            stop_deadline = None
            while True:
                running = 0
                for child in children:
                    alive, news = _settle(child, launcher, stopping.is_set(), max_restarts, logs)
                    running += alive
                    if news:  # kept in the output when it is not a terminal
                        stamp = time.strftime("%H:%M:%S")
                        line = f"{stamp} worker {child.slot.index}: {child.note}"
                        live.console.print(line, markup=False, soft_wrap=True)
                live.update(_table(children))
                if running == 0:
                    break
                if stopping.is_set():
                    stop_deadline = stop_deadline or time.monotonic() + STOP_GRACE_S
                    if time.monotonic() > stop_deadline:
                        _kill_all(children)
                time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = {c.returncode for c in children}
    if codes == {0}:
        return 0
    for code in (EXIT_BAD_INPUT, EXIT_STORAGE_GONE):  # the first that applies says why
        if code in codes:
            return code
    return EXIT_FAILED


def _kill_all(children: list[ChildState]) -> None:
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.kill()
