"""Errors sweeper raises for bad input; the CLI prints each as one line and exits 2."""

from __future__ import annotations

__all__ = ["SpecError", "StudyError"]


class SpecError(ValueError):
    """A study spec that cannot be used; the message names the field and the rule."""


class StudyError(ValueError):
    """A study that is not there, already there, or was not made by ``sweeper create-study``."""
