"""What every benchmark prints first: the machine its figures come from."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["describe"]


def describe(*libraries: str) -> str:
    """CPU model, architecture, cores and load, plus ``libraries`` (e.g. "torch 2.14.1")."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), ""
    )
    parts = [
        f"{model or platform.processor() or 'unknown CPU'} ({platform.machine()})",
        f"{os.cpu_count()} cores",
        f"load average {os.getloadavg()[0]:.2f}",
        *libraries,
    ]
    return ", ".join(parts)
