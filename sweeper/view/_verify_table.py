"""The table of ``sweeper rank STUDY.verify``: each config's re-runs, mean ± std, beside the
original trial."""

from __future__ import annotations

from rich.console import Console

from sweeper.after import Spread, VerifyReport
from sweeper.text import compact, percent
from sweeper.view._tables import Column, fit_table, print_fitted


def _pm(spread: Spread) -> str:
    """``96.60 ± 0.41`` in percentage points, ``-`` with no re-run done."""
    if spread.mean is None or spread.std is None:
        return "-"
    return f"{100 * spread.mean:.2f} ± {100 * spread.std:.2f}"


def print_verify(report: VerifyReport, console: Console, wide: bool = False) -> None:
    """The verified configs as a table (percentage points), the winner, the lucky ones."""
    rows = report.configs
    names = sorted({k for c in rows for k in c.params})
    gap = f"{report.gap_split} H"
    columns = [
        Column("trial", [str(c.source) for c in rows], required=True),
        Column("runs", [f"{c.runs}/{c.runs + c.pending + c.failed}" for c in rows], required=True),
        Column("score", [_pm(c.score) for c in rows], required=True, style="bold"),
        Column("orig score", [percent(c.original_score) for c in rows], required=True),
        Column("flag", [c.flag or "" for c in rows], justify="left", required=True),
        Column("val H", [_pm(c.val) for c in rows]),
        Column("orig val", [percent(c.original_val) for c in rows]),
        Column(gap, [_pm(c.gap) for c in rows]),
        Column(f"orig {gap}", [percent(c.original_gap) for c in rows]),
        *(Column(n, [compact(c.params.get(n, "-")) for c in rows]) for n in names),
    ]
    title = (
        f"{report.study}: re-runs of {report.source}'s top configs over {report.varied}, "
        "mean ± std (in %), best mean score first"
    )
    print_fitted(console, fit_table(columns, None if wide else console.width, title))
    winner = report.winner
    if winner is None:
        console.print("no re-run finished yet: sweeper worker --study " + report.study)
        return
    console.print(
        f"winner by mean score: trial {winner.source} ({_pm(winner.score)} over "
        f"{winner.runs} re-runs; originally {percent(winner.original_score)})",
        markup=False,
    )
    lucky = [c.source for c in rows if c.flag == "lucky"]
    if lucky:
        console.print(
            f"lucky: trial(s) {', '.join(map(str, lucky))} scored above every one of their "
            "re-runs in the sweep",
            markup=False,
        )
    pending = sum(c.pending for c in rows)
    if pending:
        console.print(f"still to run: {pending} re-run(s)", markup=False)
