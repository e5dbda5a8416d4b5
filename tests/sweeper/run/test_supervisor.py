"""The worker parent: its live status lines, as a person reads them in an 80-column terminal;
restarts on a rate limit with a growing delay, never of a failure that repeats, and the
history in its output when that is not a terminal."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app
from sweeper.define import create_study, parse_spec
from sweeper.errors import EXIT_BAD_INPUT, EXIT_STORAGE_GONE, OptionError
from sweeper.run import ChildState, Slot, WorkerOptions, plan_slots, restart_delay, run_workers
from sweeper.run._supervisor import _table
from tests.sweeper.tiny_sweep import tiny_spec, worker_args


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


def _supervise(tmp_path: Path, script: str, max_restarts: int) -> tuple[int, str]:
    output = io.StringIO()
    code = run_workers(
        WorkerOptions("s", tmp_path / "artifacts", study_key="s-0123456789ab"),
        f"sqlite:///{tmp_path / 'unused.db'}",
        [Slot(0, None, 1)],
        max_restarts=max_restarts,
        console=Console(file=output, width=200),  # a file: not a terminal
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


def test_a_child_that_gave_up_on_the_storage_makes_the_node_exit_3(tmp_path: Path) -> None:
    """docs/cluster.md: past --storage-wait the worker exits 3 (not 1, a crash)."""
    status = json.dumps({"event": "gone", "reason": "storage unreachable for 600 s"})
    code, text = _supervise(
        tmp_path,
        f"import sys; print({status!r}, flush=True); sys.exit({EXIT_STORAGE_GONE})",
        max_restarts=3,
    )
    assert code == EXIT_STORAGE_GONE
    assert "restart" not in text
    assert "worker 0: exited 3: storage unreachable for 600 s" in text


@pytest.mark.parametrize(
    ("visible", "gpus", "message"),
    [
        (None, "7", r"--gpus 7: no GPU 7: this node has \d+ \(CUDA_VISIBLE_DEVICES not set\)"),
        ("", "0", r"--gpus 0: no GPU 0: this node has 0 \(CUDA_VISIBLE_DEVICES=\)"),
        ("2,3", "3,7", r"--gpus 3,7: no GPU 7: this node has 2 \(CUDA_VISIBLE_DEVICES=2,3\)"),
    ],
)
def test_a_gpu_the_node_does_not_have_is_refused(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, gpus: str, message: str
) -> None:
    """Not a child labelled "gpu 7" that trains on the CPU and exits 0."""
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with pytest.raises(OptionError, match=f"^{message}$"):
        plan_slots(gpus)


def test_gpus_the_node_has_get_a_slot_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [s.gpu for s in plan_slots("3,2", procs_per_gpu=2)] == ["3", "3", "2", "2"]


def test_the_worker_command_exits_2_on_a_missing_gpu(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    create_study(parse_spec(tiny_spec("nogpu", 1)), open_storage(sqlite_url))
    result = CliRunner().invoke(app, [*worker_args(tmp_path, sqlite_url, "nogpu"), "--gpus", "7"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: --gpus 7: no GPU 7: this node has 0 (CUDA_VISIBLE_DEVICES=)"
    )


def test_the_restart_decision_backs_off_and_gives_up_without_waiting() -> None:
    """The pure decision run_workers makes for an exited child, at chosen clock values."""
    assert restart_delay(1, [], now=100.0, stopping=False, max_restarts=3) == 1.0
    assert restart_delay(1, [90.0], now=100.0, stopping=False, max_restarts=3) == 2.0
    assert restart_delay(1, [80.0, 90.0], now=100.0, stopping=False, max_restarts=3) == 4.0
    # The limit counts restarts inside the window only: old crashes are forgiven.
    assert restart_delay(1, [1.0, 2.0, 90.0], now=650.0, stopping=False, max_restarts=3) == 2.0
    assert restart_delay(1, [80.0, 85.0, 90.0], now=100.0, stopping=False, max_restarts=3) is None
    # The delay never grows past 30 s.
    many = [float(t) for t in range(10)]
    assert restart_delay(1, many, now=20.0, stopping=False, max_restarts=99) == 30.0
    # Exits a restart would only repeat, and a node that is stopping, restart nothing.
    for final in (0, EXIT_BAD_INPUT, EXIT_STORAGE_GONE):
        assert restart_delay(final, [], now=0.0, stopping=False, max_restarts=3) is None
    assert restart_delay(1, [], now=0.0, stopping=True, max_restarts=3) is None


def test_a_slot_holds_its_share_of_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its trials' device-seconds count the share: two processes on a GPU hold half each."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # a node with two GPUs, as plan_slots sees it
    assert [s.devices for s in plan_slots("0,1", procs_per_gpu=2)] == [0.5] * 4
    assert [s.devices for s in plan_slots("cpu", procs=2)] == [1.0, 1.0]
