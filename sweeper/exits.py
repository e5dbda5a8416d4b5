"""Exit codes of sweeper's commands and worker processes, in one place."""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_STORAGE_GONE"]

EXIT_FAILED = 1
"""A run that failed."""

EXIT_BAD_INPUT = 2
"""Bad input, or a worker whose trials fail in a way every trial would (bad data or
config): one line says why; restarting it would only repeat the failure."""

EXIT_STORAGE_GONE = 3
"""A worker whose storage stayed unreachable past ``--storage-wait``."""
