"""The worker parent's live status lines, as a person reads them in an 80-column terminal."""

from __future__ import annotations

import io

from rich.console import Console

from sweeper.dispatch import ChildState, Slot, _table


def _rendered(children: list[ChildState], width: int = 80) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False)
    console.print(_table(children))
    return console.file.getvalue().splitlines()


def test_status_lines_read_in_80_columns() -> None:
    training, starting = ChildState(Slot(3, "1")), ChildState(Slot(0, None, 2))
    training.update({"event": "trial", "trial": 12, "params": {"lr": 1e-3}})
    training.update({"event": "epoch", "trial": 12, "epoch": 7, "hmean": 0.81234})
    failed = ChildState(Slot(1, None, 2))
    failed.update({"event": "trial", "trial": 4, "params": {}})
    reason = "bad data: [data] tiny-data/annotations.json: no usable box in split val " * 2
    failed.update({"event": "failed", "trial": 4, "reason": reason})

    lines = _rendered([training, starting, failed])
    assert lines[0].split() == [
        "#3",
        "gpu",
        "1",
        "trial",
        "12",
        "epoch",
        "7",
        "val",
        "H",
        "81.23",
        "training",
    ]
    assert lines[1].split() == ["#0", "cpu", "starting"]
    assert all(len(line) <= 80 for line in lines)
    # A long reason wraps onto further lines instead of being cut, markup-like text and all.
    text = " ".join(" ".join(lines[2:]).split())
    assert text == f"#1 cpu trial 4 trial failed: {' '.join(reason.split())}"
