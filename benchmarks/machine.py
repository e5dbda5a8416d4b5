"""What every benchmark prints first, the machine its figures come from, and how it times."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["Timing", "describe", "median_ms"]


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


class Timing(NamedTuple):
    """Median milliseconds per call: wall time, and CPU time of the calling thread."""

    wall_ms: float
    cpu_ms: float


def median_ms(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> Timing:
    """Median wall and CPU (this thread) milliseconds of ``repeats`` calls of ``fn``, after
    one untimed call unless ``warm_up`` is False; CPU time shrugs off a busy machine's other
    processes.

    Example:
        >>> median_ms(lambda: sum(range(1000)), repeats=5).wall_ms < 1000
        True
    """
    if warm_up:
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return Timing(statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3)
