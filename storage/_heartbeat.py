"""Heartbeat settings: how a dead worker's trial is noticed and retried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage._trials import retry_callback

__all__ = ["HeartbeatSettings"]


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
