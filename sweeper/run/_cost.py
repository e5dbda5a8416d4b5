"""The per-trial cost ledger: what a trial spent on its slot, in device-seconds.

A trial's attempt is timed on a monotonic clock from the moment its objective starts to
the moment it ends, and its wall time is multiplied by the devices its slot holds (a GPU,
half of one with ``--procs-per-gpu 2``, one CPU process). ``fit`` splits the time it runs
into training, evaluation and overhead (:class:`trainer_core.fit.RunTiming`); everything
outside ``fit`` (the config, the result's writes, the pictures) is overhead too. The GPU's
name, mean utilisation and peak memory come from ``fit``'s NVML sampling.

The objective writes the ledger as the trial's result's ``cost``
(:class:`sweeper.trial_result.TrialCost`) at an epoch's end once :data:`WRITE_EVERY_S` have
passed since its last write, and once more when the attempt ends, however it ends: a worker
killed mid-trial leaves what it spent up to that write. One write is one transaction
(2 ms on SQLite, up to 20 on a loaded PostgreSQL); at most one every 30 s keeps the ledger
under 1% of even a 1-second epoch (``benchmarks/cost_ledger.py``). Each trial records only its
own attempt; a retry chain's cost is the sum of its members' (``TrialCost.__add__``), so a
retried or resumed trial's cost is what its whole chain spent.
"""

from __future__ import annotations

import time

import torch

from sweeper.trial_result import TrialCost
from trainer_core.fit import FitResult, RunTiming
from trainer_core.run_state import EpochRecord
from trainer_core.usage import DeviceUsage, describe_device

WRITE_EVERY_S = 30.0
"""Seconds between two writes of a running attempt's ledger, at epoch ends."""


class CostLedger:
    """One attempt of one trial: started when made, read with :meth:`cost` at any time.

    Pass :attr:`timing` to every ``fit`` call of the attempt (the out-of-memory retry makes
    several); feed it each epoch (:meth:`epoch`) and each result (:meth:`fitted`).
    """

    def __init__(self, trial: int, devices: float) -> None:
        self.trial, self.devices = trial, devices
        self.kind = "cpu"
        self.device_name: str | None = None
        self.started = time.perf_counter()
        self.timing = RunTiming()
        self.usage: DeviceUsage | None = None
        self.epochs: dict[int, float] = {}
        self.written = self.started
        """When the ledger was last stored (the objective writes it)."""

    def on_device(self, device: torch.device) -> None:
        """The device the attempt trains on, known before any ``fit`` returns."""
        self.kind, self.device_name = device.type, describe_device(device)

    def epoch(self, record: EpochRecord) -> None:
        """Note an epoch's wall time (its training, validation and checkpoint writes)."""
        if record.wall_seconds is not None:
            self.epochs[record.epoch] = record.wall_seconds

    def fitted(self, result: FitResult) -> None:
        """Keep the device figures of a finished ``fit`` (the highest peak over retries)."""
        usage = result.usage
        if usage is None:
            return
        old = self.usage
        if old is not None and old.peak_memory_mb and usage.peak_memory_mb:
            usage = DeviceUsage(
                usage.kind,
                usage.name,
                usage.source,
                usage.utilization_pct,
                max(old.peak_memory_mb, usage.peak_memory_mb),
                usage.samples,
            )
        self.usage = usage

    def due(self) -> bool:
        """Whether :data:`WRITE_EVERY_S` have passed since the last write."""
        return time.perf_counter() - self.written >= WRITE_EVERY_S

    def cost(self) -> TrialCost:
        """What the attempt has spent so far, in device-seconds."""
        wall = time.perf_counter() - self.started
        timing, usage, k = self.timing, self.usage, self.devices
        overhead = max(0.0, wall - timing.training_s - timing.evaluation_s)
        return TrialCost(
            trial=self.trial,
            kind=self.kind,
            devices=k,
            wall_s=round(wall, 3),
            device_s=round(wall * k, 3),
            training_device_s=round(timing.training_s * k, 3),
            evaluation_device_s=round(timing.evaluation_s * k, 3),
            overhead_device_s=round(overhead * k, 3),
            device_name=self.device_name if usage is None else usage.name,
            utilization_pct=None if usage is None else _round(usage.utilization_pct, 1),
            peak_memory_mb=None if usage is None else _round(usage.peak_memory_mb, 1),
            epoch_device_s={str(e): round(s * k, 3) for e, s in sorted(self.epochs.items())},
        )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
