"""Rich tables for ``sweeper rank`` (and the demo's closing ranking)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sweeper.ranking import Ranking

__all__ = ["print_ranking"]


def _param(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def print_ranking(ranking: Ranking, console: Console, top: int | None = 10) -> None:
    """Completed trials ranked, then pruned trials, then failure counts."""
    names = sorted({k for t in ranking.completed + ranking.pruned for k in t.params})  # type: ignore[operator]
    sort = "score" if ranking.by == "score" else "val H-mean"
    title = (
        f"{ranking.study}: completed trials by {sort} "
        f"(score = val H - {ranking.penalty:g} x max(0, gap - {ranking.tolerance:g}))"
    )
    table = Table(title=title)
    for column in [
        "#",
        "trial",
        *names,
        "val P",
        "val R",
        "val H",
        "gap-split H",
        "gap",
        "score",
        "epochs",
    ]:
        table.add_column(column, justify="right")
    for rank, t in enumerate(ranking.completed[:top], 1):
        table.add_row(
            str(rank),
            str(t.number),
            *(_param(t.params.get(n)) for n in names),
            f"{t.val_precision:.4f}",
            f"{t.val_recall:.4f}",
            f"{t.val_hmean:.4f}",
            f"{t.gap_hmean:.4f}",
            f"{t.gap:+.4f}",
            f"[bold]{t.score:.4f}[/bold]",
            str(t.epochs),
        )
    # Wide enough for every column when the output is a file or a pipe (rich assumes 80).
    width = max(console.width, 150)
    console.print(table, width=width)
    if ranking.pruned:
        pruned = Table(title=f"pruned by Hyperband ({len(ranking.pruned)})")
        for column in ["trial", *names, "stopped at epoch", "last val H"]:
            pruned.add_column(column, justify="right")
        for p in ranking.pruned:
            last = "-" if p.last_hmean is None else f"{p.last_hmean:.4f}"
            pruned.add_row(
                str(p.number), *(_param(p.params.get(n)) for n in names), str(p.epoch), last
            )
        console.print(pruned, width=width)
    if ranking.failed:
        console.print(f"failed trials: {sum(ranking.failed.values())}")
        for reason, count in ranking.failed.most_common():
            console.print(f"  {count} x {reason}")
    if ranking.running:
        console.print(f"still running: {ranking.running}")
