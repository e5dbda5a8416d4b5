"""Errors sweeper raises for bad input (the CLI prints each as one line and exits 2), and the
exit codes of its commands and worker processes, in one place."""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_STORAGE_GONE",
    "OptionError",
    "SpecError",
    "StudyError",
]
EXIT_FAILED = 1
"""A run that failed."""

EXIT_BAD_INPUT = 2
"""Bad input, or a worker whose trials fail in a way every trial would (bad data or
config): one line says why; restarting it would only repeat the failure."""

EXIT_STORAGE_GONE = 3
"""A worker whose storage stayed unreachable past ``--storage-wait``."""


class SpecError(ValueError):
    """A study spec that cannot be used; the message names the field and the rule."""


class OptionError(ValueError):
    """A command-line option this machine cannot honour (``--gpus`` it does not have, an
    ``--artifacts`` directory that cannot take a file); the message names the option."""


class StudyError(ValueError):
    """A study that is not there, already there, or was not made by ``sweeper create-study``."""
