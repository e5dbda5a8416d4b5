"""How sweeper writes numbers and errors for people: one helper each, used by every command."""

from __future__ import annotations

import math

import yaml

__all__ = ["compact", "human_bytes", "number", "one_line", "percent", "time_split"]


def percent(value: float | None, signed: bool = False) -> str:
    """An H-mean, precision or recall as percentage points with two decimals: ``96.60``."""
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def time_split(training: float, evaluation: float, overhead: float) -> str:
    """Where time (or device-seconds) went, in shares of the three's sum.

    Example:
        >>> time_split(81.0, 12.0, 7.0)
        'training 81%, evaluation 12%, overhead 7%'
    """
    total = (training + evaluation + overhead) or 1.0
    parts = (("training", training), ("evaluation", evaluation), ("overhead", overhead))
    return ", ".join(f"{name} {100 * part / total:.0f}%" for name, part in parts)


def compact(value: object) -> str:
    """A parameter value in at most 7 characters where it can be: ``3.85e-4``, ``0.25``, ``22``."""
    if not isinstance(value, float):
        return str(value)
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def number(value: object) -> str:
    """A trial value or parameter in a sentence: ``0.8123``, ``22``, ``-`` for none."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def human_bytes(n: int) -> str:
    """``n`` bytes for people: ``812 bytes``, ``3.4 MB``."""
    if n < 1000:
        return f"{n} bytes"
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


def one_line(e: BaseException, limit: int | None = None) -> str:
    """The message of ``e`` on one line (at most ``limit`` characters): what a log line or a
    command's error shows."""
    if isinstance(e, FileNotFoundError) and e.filename:
        text = f"{e.filename}: no such file"
    elif isinstance(e, yaml.YAMLError):
        text = f"not valid YAML ({' '.join(str(e).split())})"
    else:
        text = " ".join(str(e).split()) or type(e).__name__
    return text if limit is None else text[:limit]
