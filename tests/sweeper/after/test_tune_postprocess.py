"""``sweeper tune-postprocess`` on real tiny trials: maps cached once and reused, a search
study named after the trial, the result stored, marked by rank, written by export-best, and
bad input refused in one line with nothing stored."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from storage import open_storage
from sweeper.after import search_study_name, trial_checkpoint
from sweeper.cli import app
from sweeper.define import load_study
from sweeper.errors import StudyError
from sweeper.rank import rank_study
from sweeper.tuned_postprocess import tuned_by_trial
from tests.sweeper.tiny_sweep import make_data, run_trials, tiny_spec
from trainer_core.prob_maps import CACHE_NAME

runner = CliRunner()
NAME = "tune"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two completed one-epoch trials; trial 0 is tuned twice (12 search trials each)."""
    root = make_data(tmp_path_factory.mktemp("tune"))
    url = f"sqlite:///{root / 'sweep.db'}"
    spec = tiny_spec(NAME, n_trials=2, epochs=1, pruner={"kind": "none"})
    spec["postprocess_search"] = {"thresh": {"low": 0.2, "high": 0.5, "step": 0.05}}
    run_trials(root, url, spec, n_trials=2)
    study, _ = load_study(NAME, open_storage(url))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    return root, url


def _tune(root: Path, url: str, *args: str) -> object:
    return runner.invoke(
        app,
        [
            "tune-postprocess",
            NAME,
            "--storage",
            url,
            "--artifacts",
            str(root / "artifacts"),
            "--data-root",
            str(root),
            *args,
        ],
    )


def test_maps_are_cached_once_and_the_search_is_its_own_study(sweep: tuple[Path, str]) -> None:
    root, url = sweep
    first = _tune(root, url, "--trial", "0", "--n-trials", "12")
    assert first.exit_code == 0, first.output
    assert "made by one inference pass" in first.output
    assert "val H" in first.output and "holdout H" in first.output
    cache = next((root / "artifacts").rglob(CACHE_NAME))
    assert (cache.parent / "best.pt").is_file()
    stamp = cache.stat().st_mtime_ns

    second = _tune(root, url, "--trial", "0", "--n-trials", "12")
    assert second.exit_code == 0, second.output
    assert "reused" in second.output
    assert cache.stat().st_mtime_ns == stamp  # no second inference pass

    storage = open_storage(url)
    search = optuna.load_study(study_name=search_study_name(NAME, 0), storage=storage)
    assert len(search.trials) == 24
    assert search.user_attrs["sweeper.postprocess_of"] == {"study": NAME, "trial": 0}
    # The spec's range is searched, the trial's own setting is the first trial.
    assert all(0.2 <= t.params["thresh"] <= 0.5 for t in search.trials)
    assert search.trials[0].params["thresh"] == pytest.approx(0.3)

    study, _ = load_study(NAME, storage)
    tuned = tuned_by_trial(study.user_attrs)[0]
    assert tuned.search_trials == 24
    assert tuned.val_after == pytest.approx(search.best_value)
    assert tuned.val_after >= tuned.val_before
    assert set(tuned.params) == {"thresh", "box_thresh", "unclip_ratio", "max_candidates"}
    assert tuned.gap_split == "holdout"


def test_rank_marks_tuned_trials_and_export_best_writes_the_values(
    sweep: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = sweep
    study, spec = load_study(NAME, open_storage(url))
    winner = rank_study(study, spec).completed[0].number
    assert _tune(root, url, "--trial", str(winner), "--n-trials", "3").exit_code == 0
    study, spec = load_study(NAME, open_storage(url))
    tuned = tuned_by_trial(study.user_attrs)
    ranking = rank_study(study, spec)
    assert {r.number for r in ranking.completed if r.postprocess_tuned} == set(tuned)
    assert len(ranking.completed) > len(tuned) or len(tuned) == 2
    table = runner.invoke(app, ["rank", NAME, "--storage", url])
    assert table.exit_code == 0, table.output
    assert f"{winner}*" in table.output and "post-processing tuned" in table.output

    out = tmp_path / "best.yaml"
    exported = runner.invoke(app, ["export-best", NAME, "--storage", url, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    config = yaml.safe_load(out.read_text())
    for name, value in tuned[winner].params.items():
        assert config["postprocess"][name] == pytest.approx(value)
    assert "postprocess tuned" in out.read_text()


def test_top_k_tunes_the_best_ranked(sweep: tuple[Path, str]) -> None:
    root, url = sweep
    result = _tune(root, url, "--top", "2", "--n-trials", "2")
    assert result.exit_code == 0, result.output
    study, _ = load_study(NAME, open_storage(url))
    assert set(tuned_by_trial(study.user_attrs)) == {0, 1}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--trial", "7"], "no trial 7"),
        (["--trial", "0", "--top", "1"], "--trial N or --top K"),
        ([], "--trial N or --top K"),
        (["--top", "0"], "--top 0"),
        (["--trial", "0", "--n-trials", "0"], "--n-trials 0"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    sweep: tuple[Path, str], args: list[str], says: str
) -> None:
    root, url = sweep
    storage = open_storage(url)
    before = {s.study_name for s in storage.get_all_studies()}
    attrs = dict(load_study(NAME, storage)[0].user_attrs)
    result = _tune(root, url, *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    storage = open_storage(url)
    assert {s.study_name for s in storage.get_all_studies()} == before
    assert load_study(NAME, storage)[0].user_attrs == attrs


def test_a_missing_checkpoint_names_the_trial(sweep: tuple[Path, str], tmp_path: Path) -> None:
    _, url = sweep
    result = runner.invoke(
        app,
        ["tune-postprocess", NAME, "--storage", url, "--trial", "1", "--artifacts", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "trial 1: no checkpoint" in result.output


@pytest.mark.parametrize("recorded", ["../outside", "checkpoints/link"])
def test_a_checkpoint_folder_outside_the_artifacts_is_refused(
    tmp_path: Path, recorded: str
) -> None:
    artifacts, elsewhere = tmp_path / "artifacts", tmp_path / "outside"
    (artifacts / "checkpoints").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "best.pt").write_bytes(b"not yours")
    (artifacts / "checkpoints" / "link").symlink_to(elsewhere)
    trial = optuna.trial.create_trial(value=0.5, user_attrs={"checkpoint_dir": recorded})
    with pytest.raises(StudyError, match=r"^trial -1: .* outside the artifacts directory"):
        trial_checkpoint(optuna.create_study(), trial, artifacts)
