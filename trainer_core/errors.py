"""Errors trainer_core raises for bad input; callers print them as one line."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError"]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field or file and the rule."""


class DataError(ValueError):
    """Data that cannot be trained on (an empty split, an unreadable annotation file)."""
