"""The spec's tracking section and ``sweeper train --track``: bad input is one line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.define import parse_spec, tracking_from_flags
from sweeper.errors import SpecError
from tests.sweeper.tiny_sweep import tiny_spec, write_spec


def test_a_spec_naming_a_tracker_that_is_not_installed_is_refused_in_one_line(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the extra were not installed
    spec = tiny_spec("untracked", n_trials=1, tracking={"wandb": {"project": "p"}})
    path = write_spec(tmp_path / "spec.yaml", spec)
    args = ["create-study", str(path), "--storage", sqlite_url, "--skip-check"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: tracking.wandb: the wandb client is not installed; install the extra: "
        "uv sync --extra wandb (or pip install 'sweeper[wandb]')"
    ]
    assert optuna.get_all_study_names(sqlite_url) == []  # nothing stored


def test_a_bad_tracking_field_names_it() -> None:
    spec = tiny_spec("t", n_trials=1, tracking={"wandb": {"project": "p", "mode": "sometimes"}})
    with pytest.raises(SpecError, match=r"tracking\.wandb\.mode"):
        parse_spec(spec)


def test_track_flags() -> None:
    tracking = tracking_from_flags(["wandb:receipts", "mlflow", "tensorboard:runs"])
    assert tracking is not None
    assert tracking.kinds == ("wandb", "mlflow", "tensorboard")
    assert tracking.wandb.project == "receipts" and tracking.wandb.mode is None
    assert tracking.mlflow.tracking_uri == "sqlite:///mlflow.db"
    assert tracking.tensorboard.log_dir == "runs"
    assert tracking_from_flags([]) is None
    with pytest.raises(SpecError, match=r"--track 'neptune': use wandb\[:PROJECT\]"):
        tracking_from_flags(["neptune"])
    with pytest.raises(SpecError, match="--track mlflow: named twice"):
        tracking_from_flags(["mlflow", "mlflow:http://x"])
