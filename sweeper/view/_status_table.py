"""What ``sweeper studies`` and ``sweeper status`` print: counts by state, the best trial,
the running trials, what pruning saved and the disk the checkpoints take."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from storage import redact
from sweeper.rank import STATES, StudyStatus, StudySummary
from sweeper.text import number
from sweeper.view._tables import Column, fit_table, print_fitted


def print_studies(summaries: list[StudySummary], url: str, console: Console) -> None:
    """One row a study: trial counts by state and the best value."""
    if not summaries:
        console.print(f"no studies in {redact(url)}", markup=False, soft_wrap=True)
        return
    columns = [
        Column("study", [s.name for s in summaries], justify="left", required=True),
        *(
            Column(state.name.lower(), [str(s.counts[state]) for s in summaries], required=True)
            for state in STATES
        ),
        Column("best", [number(s.best_value) for s in summaries], required=True),
    ]
    print_fitted(console, fit_table(columns, console.width, redact(url)))


def print_status(status: StudyStatus, url: str, disk: str, console: Console) -> None:
    """One study: its headline, counts, the best so far, the running trials, the saving and
    ``disk`` (a line on its checkpoints)."""
    s = status.summary
    budget = f"/{s.n_trials_budget}" if s.n_trials_budget is not None else ""
    console.print(
        f"study {s.name} in {redact(url)}: {s.finished}{budget} trials finished",
        markup=False,
        soft_wrap=True,
    )
    counts = Table(show_header=True)
    for state in STATES:
        counts.add_column(state.name.lower(), justify="right")
    counts.add_row(*(str(s.counts[state]) for state in STATES))
    console.print(counts)
    if s.given_back:
        console.print(f"given back untrained (started past the budget): {s.given_back}")
    if status.best_number is None:
        console.print(f"best by {s.best_by}: none yet", markup=False, soft_wrap=True)
    else:
        params = ", ".join(f"{k}={number(v)}" for k, v in status.best_params.items())
        console.print(
            f"best by {s.best_by}: trial {status.best_number}, {number(s.best_value)} ({params})",
            markup=False,
            soft_wrap=True,
        )
    _print_running(status, console)
    if status.saving is not None and status.saving.trials:
        console.print(status.saving.describe(), markup=False, soft_wrap=True)
    for line in status.cost.lines() if status.cost is not None else []:
        console.print(line, markup=False, soft_wrap=True)
    console.print(disk, markup=False, soft_wrap=True)


def _print_running(status: StudyStatus, console: Console) -> None:
    rows = status.running
    if not rows:
        console.print("running: none")
        return
    columns = [
        Column("trial", [str(r.number) for r in rows], required=True),
        Column("epoch", ["-" if r.last_epoch is None else str(r.last_epoch) for r in rows]),
        Column("worker", [r.worker_id or "-" for r in rows], justify="left"),
        Column("device", [r.device or "-" for r in rows], justify="left"),
        Column("started", [f"{r.started:%m-%d %H:%M:%S}" if r.started else "-" for r in rows]),
        Column("host", [r.host or "-" for r in rows], justify="left"),
    ]
    hint = "a wider terminal shows them"
    print_fitted(console, fit_table(columns, console.width, "running"), hint=hint)
