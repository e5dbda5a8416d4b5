"""The supervisor: restarts on a rate limit with a growing delay, never a failure that repeats,
and the history in its output when that is not a terminal."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from rich.console import Console

from sweeper.dispatch import Slot, run_workers


def _supervise(tmp_path: Path, script: str, max_restarts: int) -> tuple[int, str]:
    output = io.StringIO()
    code = run_workers(
        "s",
        f"sqlite:///{tmp_path / 'unused.db'}",
        [Slot(0, None, 1)],
        artifacts=tmp_path / "artifacts",
        child_options={},
        max_restarts=max_restarts,
        console=Console(file=output, width=200),  # a file: not a terminal
        study_key="s-0123456789ab",
        child_command=(sys.executable, "-c", script),
    )
    return code, output.getvalue()


def test_a_crashing_child_is_restarted_with_a_growing_delay_then_left(tmp_path: Path) -> None:
    code, text = _supervise(tmp_path, "import sys; sys.exit(1)", max_restarts=2)
    assert code == 1
    history = [line.split(" ", 1)[1] for line in text.splitlines() if " worker 0: " in line]
    assert history[:3] == [
        "worker 0: died (exit 1); restart 1 in 1 s",
        "worker 0: died (exit 1); restart 2 in 2 s",
        f"worker 0: exited 1: 2 restarts in the last 600 s (see {tmp_path / 'artifacts' / 'logs'})",
    ]
    [log] = (tmp_path / "artifacts" / "logs").glob("*.log")
    assert log.name.startswith("s-0123456789ab-") and log.name.endswith("-worker-0.log")


def test_a_child_that_stopped_on_bad_data_is_not_restarted(tmp_path: Path) -> None:
    status = json.dumps({"event": "fatal", "reason": "bad data: no such folder"})
    code, text = _supervise(
        tmp_path, f"import sys; print({status!r}, flush=True); sys.exit(2)", max_restarts=3
    )
    assert code == 2
    assert "restart" not in text
    assert "worker 0: exited 2: bad data: no such folder" in text
