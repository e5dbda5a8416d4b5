"""Riding out a storage outage: which errors mean "the database is away", and a backoff."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import grpc
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError

__all__ = [
    "STORAGE_WAIT_S",
    "TRANSIENT_ERRORS",
    "Backoff",
    "StorageUnavailable",
    "outage_reason",
]

STORAGE_WAIT_S = 600.0
"""How long a worker waits out an unreachable storage by default (``--storage-wait``)."""

_logger = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StorageInternalError,
    sqlalchemy.exc.SQLAlchemyError,
    grpc.RpcError,
)
"""Errors a storage call raises while the database or the proxy does not answer."""


def outage_reason(e: BaseException) -> str | None:
    """Why the storage did not answer, in one line and the driver's own words; None when
    ``e`` (or what it was raised from) is not a storage outage.

    Optuna wraps a lost connection in its own words ("invalid data in the commit, e.g.
    exceeding max length"), or loses it behind an error of its own ("cannot access local
    variable 'updated_state'") when a trial's tell and the read after it both fail; the
    driver's error ("Connection refused", "server closed the connection", "timed out")
    is further down the chain, and is what this returns.

    Example:
        >>> outage_reason(ValueError("a bad value")) is None
        True
    """
    chain = _chain(e)
    transient = [c for c in chain if isinstance(c, (*TRANSIENT_ERRORS, ConnectionError))]
    if not transient:
        return None
    for cause in chain:
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.orig is not None:
            return _one_line(cause.orig)
        if isinstance(cause, grpc.RpcError) and callable(getattr(cause, "details", None)):
            return _one_line(cause.details() or cause)
        if isinstance(cause, ConnectionError):
            return _one_line(cause)
    return _one_line(transient[-1])


def _chain(e: BaseException) -> list[BaseException]:
    """``e``, what it was raised from, what that was raised from ... (a loop ends it)."""
    chain: list[BaseException] = []
    seen: BaseException | None = e
    while seen is not None and all(seen is not c for c in chain):
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _one_line(e: object) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


class StorageUnavailable(Exception):
    """The storage stayed unreachable for longer than the caller was willing to wait."""


@dataclass
class Backoff:
    """Waits between tries during one outage: 1, 2, 4 ... ``max_delay_s`` seconds, until
    ``wait_s`` seconds have passed since the first failure.

    Attributes:
        wait_s: how long an outage may last before :meth:`failed` gives up.
        max_delay_s: the longest single wait.
    """

    wait_s: float
    max_delay_s: float = 30.0
    _since: float | None = field(default=None, init=False)
    _delay: float = field(default=1.0, init=False)

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, reason: str, what: str = "storage") -> float:
        """Record a failed try; the seconds to wait before the next one.

        Raises:
            StorageUnavailable: the outage has lasted ``wait_s`` seconds.
        """
        now = time.monotonic()
        if self._since is None:
            self._since, self._delay = now, 1.0
        waited = now - self._since
        left = self.wait_s - waited
        if left <= 0:
            raise StorageUnavailable(
                f"{what} unreachable for {waited:.0f} s (the limit, --storage-wait, is "
                f"{self.wait_s:g} s): {reason}"
            )
        delay = min(self._delay, self.max_delay_s, left)
        self._delay *= 2
        _logger.warning(
            "%s unreachable (%s); next try in %.0f s, giving up in %.0f s",
            what,
            reason,
            delay,
            left,
        )
        return delay

    def recovered(self) -> float | None:
        """Mark the outage over; how long it lasted (None if there was none)."""
        if self._since is None:
            return None
        lasted = time.monotonic() - self._since
        self._since = None
        _logger.warning("storage answers again after %.0f s", lasted)
        return lasted
