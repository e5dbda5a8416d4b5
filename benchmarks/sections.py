"""A benchmark in sections, each under its own time limit, none able to lose another's figures.

A section is a function that fills a :class:`SectionReport` (tables, notes, checks). The
runner gives each its share of the run's budget, stops one that overruns it (a signal at
the limit raises :class:`SectionTimeout` in it), records a failure with its traceback and
goes on with the next, and rewrites the markdown report after every section, so a run cut
short still leaves what it measured. Statuses: ``ok``, ``failed`` (an exception, a failed
check, the time limit) and ``skipped`` (:class:`Skip`: cannot run here, with the reason).

Example:
    >>> def hello(report: SectionReport) -> None:
    ...     report.table(["what", "figure"]).add("answer", "42")
    >>> sections = [Section("hello", "Hello", hello)]
    >>> results = run_sections(sections, out, "# demo", budget_s=60)  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "Check",
    "Section",
    "SectionReport",
    "SectionResult",
    "SectionTimeout",
    "Skip",
    "Table",
    "exit_code",
    "run_sections",
]

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "skipped"]
REPORT = "report.md"
SUMMARY = "summary.json"
LOG = "run.log"
_TIMEOUT_SIGNAL = signal.SIGUSR2  # pytest-timeout and others own SIGALRM


class Skip(Exception):
    """Raised by a section that cannot run here; its message is the reason."""


class SectionTimeout(BaseException):
    """Raised inside a section that ran past its time limit; a BaseException, as
    KeyboardInterrupt, so the section's own ``except Exception`` does not swallow it."""


@dataclass(frozen=True)
class Check:
    """A verdict a section reached: ``ok`` None means it was skipped, ``detail`` says why."""

    what: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        mark = {True: "pass", False: "FAIL", None: "skipped"}[self.ok]
        return f"- {mark}: {self.what}" + (f" ({self.detail})" if self.detail else "")


class Table:
    """A markdown table filled row by row, so the rows measured before a failure stay."""

    def __init__(self, header: Sequence[str]) -> None:
        self.header = list(header)
        self.rows: list[list[str]] = []

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.header):
            raise ValueError(f"{len(cells)} cells for {len(self.header)} columns: {cells}")
        self.rows.append([str(c).replace("|", "/").replace("\n", " ") for c in cells])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


class SectionReport:
    """What a running section has to say so far: its tables, notes and checks, in order."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.parts: list[Table | str] = []
        self.checks: list[Check] = []

    def table(self, header: Sequence[str]) -> Table:
        """A new table, shown where it was made."""
        table = Table(header)
        self.parts.append(table)
        return table

    def note(self, text: str) -> None:
        self.parts.append(text)

    def check(self, what: str, ok: bool | None, detail: str = "") -> bool | None:
        """Record a verdict; False fails the section (after it has run to its end)."""
        self.checks.append(Check(what, ok, detail))
        log.info(
            "check %s: %s %s", {True: "pass", False: "FAIL", None: "skipped"}[ok], what, detail
        )
        return ok

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def markdown(self) -> str:
        blocks = [p.markdown() if isinstance(p, Table) else p for p in self.parts]
        if self.checks:
            blocks.append("\n".join(c.line() for c in self.checks))
        return "\n\n".join(blocks)


@dataclass(frozen=True)
class Section:
    """A part of the run. ``share`` weighs its slice of the budget against the others'."""

    name: str
    title: str
    run: Callable[[SectionReport], None]
    share: float = 1.0


@dataclass
class SectionResult:
    name: str
    title: str
    status: Status
    reason: str
    seconds: float
    limit_s: float
    markdown: str = ""
    traceback: str | None = None
    checks: list[Check] = field(default_factory=list)

    def block(self, number: int) -> str:
        """The section's part of the report."""
        head = f"## {number}. {self.title}\n\n`{self.name}`: **{self.status}**"
        if self.reason:
            head += f": {self.reason}"
        head += f" ({self.seconds:.1f} s of {self.limit_s:.0f} s)"
        blocks = [head, self.markdown]
        if self.traceback:
            blocks.append("```\n" + self.traceback.rstrip() + "\n```")
        return "\n\n".join(b for b in blocks if b)


class _Alarm:
    """Raises :class:`SectionTimeout` in the main thread at a deadline (a timer thread
    signals it), so a section stuck in one long call is still stopped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False
        self.timer: threading.Timer | None = None
        self.previous: object = None

    def _fire(self, signum: int, frame: object) -> None:
        if self.armed:  # a signal that lands as the section returns is too late to count
            raise SectionTimeout(f"stopped at its time limit of {self.seconds:.0f} s")

    def __enter__(self) -> _Alarm:
        self.previous = signal.signal(_TIMEOUT_SIGNAL, self._fire)
        main = threading.main_thread().ident
        self.timer = threading.Timer(self.seconds, signal.pthread_kill, (main, _TIMEOUT_SIGNAL))
        self.timer.daemon = True
        self.armed = True
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()  # a signal it sent has been delivered once it has ended
        signal.signal(_TIMEOUT_SIGNAL, self.previous)  # type: ignore[arg-type]


def _run_one(section: Section, limit_s: float, grace_s: float) -> SectionResult:
    """Run ``section`` under its limit; whatever happens, return what it recorded."""
    start = time.monotonic()
    report = SectionReport(start + limit_s)
    status: Status = "ok"
    reason, trace = "", None
    log.info("=== section %s (limit %.0f s) ===", section.name, limit_s)
    try:
        with _Alarm(limit_s + grace_s):
            section.run(report)
    except Skip as e:
        status, reason = "skipped", str(e)
    except (Exception, SectionTimeout) as e:
        status = "failed"
        reason = f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]
        trace = traceback.format_exc()
        log.error("section %s failed:\n%s", section.name, trace)
        del e  # its frames hold the section's tensors
    failed = [c.what for c in report.checks if c.ok is False]
    if status != "failed" and failed:  # a skip says what could not run, not what broke
        status, reason = "failed", "check failed: " + "; ".join(failed)
    seconds = time.monotonic() - start
    log.info("=== section %s: %s %s (%.1f s) ===", section.name, status, reason, seconds)
    return SectionResult(
        section.name,
        section.title,
        status,
        reason,
        seconds,
        limit_s,
        report.markdown(),
        trace,
        list(report.checks),
    )


def _write(out: Path, header: str, results: list[SectionResult], pending: list[Section]) -> None:
    """The report and summary as they stand: finished sections, then those still to run."""
    blocks = [header] + [r.block(i) for i, r in enumerate(results, 1)]
    blocks += [
        f"## {len(results) + i}. {s.title}\n\n`{s.name}`: not run yet"
        for i, s in enumerate(pending, 1)
    ]
    (out / REPORT).write_text("\n\n".join(blocks) + "\n")
    summary = {
        "sections": [asdict(r) for r in results],
        "pending": [s.name for s in pending],
        "exit_code": exit_code(results),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")


def exit_code(results: Sequence[SectionResult]) -> int:
    """1 if any section failed (skipped ones do not count), else 0."""
    return 1 if any(r.status == "failed" for r in results) else 0


def run_sections(
    sections: Sequence[Section],
    out: Path,
    header: str,
    budget_s: float,
    *,
    grace_s: float = 20.0,
    min_s: float = 5.0,
    cleanup: Callable[[], None] | None = None,
) -> list[SectionResult]:
    """Run ``sections`` in order into ``out`` (``report.md``, ``summary.json``).

    Each section's limit is its ``share`` of the budget still left, weighed against the
    shares of the sections still to run (time one saves goes to the next); it is stopped
    ``grace_s`` after that limit if it has not returned. Once less than ``min_s`` is left,
    the remaining sections are skipped. ``cleanup`` runs after every section (free memory).
    """
    out.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + budget_s
    results: list[SectionResult] = []
    for i, section in enumerate(sections):
        _write(out, header, results, list(sections[i:]))
        left = end - time.monotonic()
        shares = sum(s.share for s in sections[i:])
        limit = left * section.share / shares if shares > 0 else left
        if left < min_s:
            reason = f"the run's budget of {budget_s:.0f} s was spent"
            results.append(SectionResult(section.name, section.title, "skipped", reason, 0, 0))
            continue
        results.append(_run_one(section, limit, grace_s))
        gc.collect()
        if cleanup is not None:
            cleanup()
    _write(out, header, results, [])
    return results
