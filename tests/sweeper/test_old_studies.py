"""A study made before sweeper/ moved into phase folders still ranks, reports, exports and
verifies, and its checkpoints are found where the old code put them.

``data/old_main_study.db`` was made by sweeper 26e5434 (three one-epoch trials of the tiny
spec, run by that version's objective); ``old_main_study.json`` holds what that version
computed for it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app
from sweeper.define import load_study, study_key
from sweeper.paths import trial_checkpoints
from trainer_core.config import load_train_config

DATA = Path(__file__).resolve().parent / "data"
OLD = json.loads((DATA / "old_main_study.json").read_text())
runner = CliRunner()


@pytest.fixture
def old_url(tmp_path: Path) -> str:
    db = tmp_path / "old.db"
    shutil.copyfile(DATA / "old_main_study.db", db)  # never write to the fixture
    return f"sqlite:///{db}"


def test_an_old_study_ranks_reports_and_exports(old_url: str, tmp_path: Path) -> None:
    name = OLD["study"]
    ranked = runner.invoke(app, ["rank", name, "--storage", old_url, "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    rows = json.loads(ranked.output)["completed"]
    assert sorted(r["number"] for r in rows) == [0, 1, 2]
    study, _ = load_study(name, open_storage(old_url))
    stored = {t.number: t.user_attrs["score"] for t in study.trials}
    assert {r["number"]: r["score"] for r in rows} == stored

    status = runner.invoke(app, ["status", name, "--storage", old_url], env={"COLUMNS": "120"})
    assert status.exit_code == 0, status.output
    assert "3/3 trials finished" in status.output

    out = tmp_path / "best.yaml"
    exported = runner.invoke(app, ["export-best", name, "--storage", old_url, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    best = rows[0]
    assert load_train_config(out).optimizer.lr == pytest.approx(best["params"]["lr"])

    verify = runner.invoke(
        app, ["verify", name, "--storage", old_url, "--top", "1", "--seeds", "1"]
    )
    assert verify.exit_code == 0, verify.output
    assert "1 re-run(s) enqueued" in verify.output


def test_an_old_studys_checkpoints_are_where_the_old_code_put_them(
    old_url: str, tmp_path: Path
) -> None:
    storage = open_storage(old_url)
    assert study_key(OLD["study"], storage) == OLD["study_key"]
    folder = trial_checkpoints(tmp_path, study_key(OLD["study"], storage), 1)
    assert folder == (tmp_path / "checkpoints" / OLD["study_key"] / "trial-1").resolve()
