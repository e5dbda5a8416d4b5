"""Tables that fit the terminal: the columns that matter first, never a cell cut short.

Rich shrinks columns that do not fit and cuts their cells to ``0.…``. Here a table is
built from columns in order of importance; a column joins only if it fits whole in the
width left, and the caller names the ones left out (``--wide`` shows them all).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

_PAD = 3  # a space either side of every cell and one between columns (box.SIMPLE_HEAD)


@dataclass(frozen=True)
class Column:
    """One column: its header, its cells as text, and whether it may be left out."""

    header: str
    cells: Sequence[str]
    justify: str = "right"
    required: bool = False
    style: str | None = None

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


@dataclass(frozen=True)
class FittedTable:
    """A table, the headers of the columns left out of it, and the width it needs."""

    table: Table
    left_out: list[str]
    width: int


def fit_table(
    columns: Sequence[Column], width: int | None, title: str | None = None
) -> FittedTable:
    """A table of the columns that fit in ``width`` characters, in their given order.

    Args:
        columns: most important first; ``required`` ones are always shown.
        width: the characters available (a console's width); None shows every column.
        title: shown above the table, wrapped to the width.

    Returns:
        The table, the headers of the columns left out, and the width the table needs.
    """
    # n columns take their widths plus _PAD each, less the one separator they do not need.
    required = sum(c.width + _PAD for c in columns if c.required)
    room = math.inf if width is None else width + _PAD - required
    shown, left_out = [], []
    for column in columns:
        if column.required:
            shown.append(column)
        elif column.width + _PAD <= room:
            shown.append(column)
            room -= column.width + _PAD
        else:
            left_out.append(column.header)
    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left"
    )
    for column in shown:
        # fold, not ellipsis: on a terminal narrower than the required columns a cell wraps.
        table.add_column(
            column.header,
            justify=column.justify,  # type: ignore[arg-type]
            style=column.style,
            overflow="fold",
        )
    for row in zip(*(c.cells for c in shown), strict=True):
        table.add_row(*(Text(cell) for cell in row))  # cells are data, never markup
    return FittedTable(table, left_out, sum(c.width + _PAD for c in shown) - _PAD)


def print_fitted(console: Console, fitted: FittedTable, hint: str = "--wide shows them") -> None:
    """Print at the width the table needs (wider than the console only with every column),
    then name the columns left out."""
    if fitted.width <= console.width:
        console.print(fitted.table)
    else:
        # rich clamps print(width=...) to the console's width, and setting the width would
        # pin it for good (it then stops following the terminal): a wider sibling prints it.
        wide = Console(
            file=console.file,
            width=fitted.width,
            force_terminal=console.is_terminal,
            color_system=console.color_system,
            no_color=console.no_color,
            highlight=False,
        )
        wide.print(fitted.table)
    if fitted.left_out:
        console.print(
            f"  not shown: {', '.join(fitted.left_out)} ({hint})",
            markup=False,
            highlight=False,
        )
