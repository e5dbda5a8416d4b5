"""Heartbeats: how a dead worker's trial is noticed and retried, and a heartbeat that rides
out a database outage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from optuna.storages import RDBStorage

from storage._outage import TRANSIENT_ERRORS, outage_reason
from storage._trials import retry_callback

__all__ = ["HeartbeatSettings", "SteadyHeartbeatStorage"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeartbeatSettings:
    """Heartbeat and retry policy for trials whose worker stopped reporting.

    A running trial records a heartbeat every ``interval`` seconds. A trial whose last
    heartbeat is older than ``grace_period`` seconds is failed by the next worker that
    looks, and re-queued (same parameters) up to ``max_retry`` times.

    Attributes:
        interval: seconds between heartbeats; one small UPDATE per running trial.
        grace_period: seconds of silence before a trial counts as dead. Keep it a few
            intervals, and longer than the slowest pause a live worker can take between
            heartbeats (the heartbeat runs in a thread, so a long epoch does not stop it).
        max_retry: how often one trial is re-queued after going stale; None = no limit.
    """

    interval: int = 60
    grace_period: int = 180
    max_retry: int | None = 2

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"interval={self.interval}: must be at least 1 second")
        if self.grace_period <= self.interval:
            raise ValueError(
                f"grace_period={self.grace_period} must exceed interval={self.interval}, "
                "or every trial looks dead between two heartbeats"
            )
        if self.max_retry is not None and self.max_retry < 0:
            raise ValueError(f"max_retry={self.max_retry}: must be 0 or more (None = no limit)")

    def rdb_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``optuna.storages.RDBStorage`` that switch the heartbeat on."""
        return {
            "heartbeat_interval": self.interval,
            "grace_period": self.grace_period,
            "heartbeat_stale_trial_callback": retry_callback(self.max_retry),
        }


class SteadyHeartbeatStorage(RDBStorage):
    """Optuna's RDBStorage whose heartbeat outlives a database outage, quietly.

    Optuna records heartbeats from a thread of its own that ends at the first error, and
    Python prints that thread's traceback into the worker's log. Here a heartbeat the
    database does not take is one warning line with the driver's reason (once an outage),
    and the thread goes on beating, so the trial does not look dead once the database is
    back. Everything else is Optuna's.
    """

    _beats_failing = False  # a race between two beating threads costs one line more

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except TRANSIENT_ERRORS as e:
            if not self._beats_failing:
                self._beats_failing = True
                _logger.warning("heartbeat not written: %s; trying on", outage_reason(e))
            return
        if self._beats_failing:
            self._beats_failing = False
            _logger.warning("heartbeats written again")
