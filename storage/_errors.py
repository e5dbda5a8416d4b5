"""The one error type storage raises for a storage that cannot be used."""

from __future__ import annotations

__all__ = ["StorageError"]


class StorageError(RuntimeError):
    """A storage URL that cannot be opened: bad scheme, unreachable, refused, old schema.

    The message is one line and shows the URL only in redacted form; the driver's error is
    chained (``raise ... from e``) for ``--debug``.
    """
