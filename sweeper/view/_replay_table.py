"""``sweeper replay STUDY``: per pruner setting, what the study's own curves say it would have
cost and cut, as a table (or the same figures as JSON)."""

from __future__ import annotations

from typing import Literal

from rich.console import Console

from sweeper.rank import StudyReplay
from sweeper.view._tables import Column, fit_table, print_fitted

ReplayFormat = Literal["table", "json"]


def _rungs(epochs: list[float]) -> str:
    return " ".join(f"{e:g}" if e == int(e) else f"{e:.1f}" for e in epochs) or "-"


def print_replay(result: StudyReplay, console: Console, fmt: ReplayFormat = "table") -> None:
    """One row a pruner setting (``none`` first), then what the figures mean, in a line."""
    if fmt == "json":
        print(result.to_json())
        return
    rows = result.settings
    columns = [
        Column("pruner", [s.pruner for s in rows], justify="left", required=True),
        Column("epochs", [f"{s.epochs:.0f}" for s in rows], required=True),
        Column("fewer", [f"{s.fewer:.2f}x" for s in rows], required=True),
        Column("winner cut", [f"{100 * s.winner_cut:.0f}%" for s in rows], required=True),
        Column(
            "rung rho",
            [" ".join(f"{r:.2f}" for r in s.rung_rho) or "-" for s in rows],
            justify="left",
        ),
        Column("GPU-h", [f"{s.device_hours:.2g}" for s in rows]),
        Column(
            "rungs (epoch)",
            [_rungs(s.rung_epochs) for s in rows],
            justify="left",
        ),
    ]
    console.print(
        f"{result.study}: {result.trials} complete trials of {result.epochs} epochs, replayed "
        f"in {result.orders} random orders; the winner is trial {result.winner}; an epoch "
        f"took {60 * result.hours_per_epoch:.1f} device-minutes",
        markup=False,
        highlight=False,
    )
    print_fitted(console, fit_table(columns, console.width), hint="--format json has them")
    console.print(
        "winner cut: share of orders in which the pruner stops the actual winner; rung rho: "
        "Spearman of each rung's val H-mean with the final ranking",
        markup=False,
        highlight=False,
    )
