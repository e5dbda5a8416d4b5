"""sweeper studies / status / delete-study."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app
from sweeper.spec import load_spec
from sweeper.study import create_study, load_study, suggest_params

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "sweeper" / "specs" / "small.yaml"

runner = CliRunner(env={"COLUMNS": "200"})


def sweep_in_progress(url: str, name: str) -> None:
    """A demo study with a finished trial, a pruned one and one running on a worker."""
    create_study(load_spec(DEMO).renamed(name), open_storage(url))
    study, spec = load_study(name, open_storage(url))
    done = study.ask()  # the baseline
    suggest_params(done, spec)
    study.tell(done, 0.8125)
    pruned = study.ask()
    suggest_params(pruned, spec)
    pruned.report(0.1, 1)
    study.tell(pruned, state=TrialState.PRUNED)
    running = study.ask()
    suggest_params(running, spec)
    running.set_user_attr("host", "gpu-node-7")
    running.set_user_attr("device", "cuda:3")
    running.set_user_attr("worker_id", "gpu-node-7:3")
    running.report(0.5, 1)
    running.report(0.6, 2)


def test_status_shows_counts_best_and_running_trials(storage_url: str, study_name: str) -> None:
    sweep_in_progress(storage_url, study_name)
    result = runner.invoke(app, ["status", study_name, "--storage", storage_url])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"study {study_name} in {storage_url}: 2/12 trials finished" in out
    assert (
        "best: trial 0, value 0.8125 (lr=0.001, weight_decay=0.0001, T_max=6, eta_min=1e-05)" in out
    )
    row = next(line for line in out.splitlines() if "gpu-node-7:3" in line).split()
    assert row[:4] == ["2", "2", "gpu-node-7:3", "cuda:3"]  # trial, epoch, worker, device
    assert row[-1] == "gpu-node-7"


def test_status_reads_in_80_columns(storage_url: str, study_name: str) -> None:
    sweep_in_progress(storage_url, study_name)
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        app, ["status", study_name, "--storage", storage_url]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # sentences soft-wrap (the terminal wraps them)
    assert "…" not in result.stdout
    counts = lines.index(next(line for line in lines if "running" in line and "fail" in line))
    running = lines.index(next(line for line in lines if line.startswith("running ")))
    row = next(i for i, line in enumerate(lines) if "gpu-node-7:3" in line)
    assert all(len(line) <= 80 for line in lines[counts - 1 : counts + 4] + lines[running:row])
    assert lines[row].split()[:4] == ["2", "2", "gpu-node-7:3", "cuda:3"]


def test_studies_lists_counts_by_state(sqlite_url: str) -> None:
    sweep_in_progress(sqlite_url, "alpha")
    create_study(load_spec(DEMO).renamed("beta"), open_storage(sqlite_url))
    result = runner.invoke(app, ["studies", "--storage", sqlite_url])
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if (cells := line.split()) and cells[0] in ("alpha", "beta")
    }
    # running, waiting, complete, pruned, fail, best
    assert rows == {
        "alpha": ["1", "0", "1", "1", "0", "0.8125"],
        "beta": ["0", "1", "0", "0", "0", "-"],
    }


def test_empty_storage_and_unknown_study(sqlite_url: str) -> None:
    result = runner.invoke(app, ["studies", "--storage", sqlite_url])
    assert result.exit_code == 0
    assert result.stdout == f"no studies in {sqlite_url}\n"
    result = runner.invoke(app, ["status", "nope", "--storage", sqlite_url])
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: no study named 'nope' in this storage (sweeper studies lists them)\n"
    )


def test_delete_study_needs_yes(sqlite_url: str) -> None:
    create_study(load_spec(DEMO), open_storage(sqlite_url))
    refused = runner.invoke(app, ["delete-study", "demo", "--storage", sqlite_url])
    assert refused.exit_code == 2
    assert "pass --yes" in refused.stderr
    assert optuna.get_all_study_names(open_storage(sqlite_url)) == ["demo"]

    done = runner.invoke(app, ["delete-study", "demo", "--yes", "--storage", sqlite_url])
    assert done.exit_code == 0
    assert done.stdout == f"deleted study demo from {sqlite_url}\n"
    assert optuna.get_all_study_names(open_storage(sqlite_url)) == []
