"""``sweeper --help`` and each command's help: on/off flags show no value to type."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sweeper.cli import app

runner = CliRunner()
COMMANDS = [c.name for c in app.registered_commands]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_flags_show_no_metavar(command: str | None) -> None:
    args = [command, "--help"] if command else ["--help"]
    result = runner.invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    # typer writes <bool> beside every flag, its own --help too (which it owns).
    shown = [ln for ln in result.stdout.splitlines() if "<bool>" in ln and "--help" not in ln]
    assert shown == []


def test_debug_is_listed_as_a_flag() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    [line] = [ln for ln in result.stdout.splitlines() if "--debug" in ln]
    assert "show tracebacks of errors" in line
    assert "<" not in line
