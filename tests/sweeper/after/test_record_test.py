"""``sweeper record-test``: scores people got back, kept on the study in one scale, shown by
``rank`` (table and JSON) and the dashboard note, with what validation overstated; bad input
in one line, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note, save_note
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app
from sweeper.define import create_study, load_study, parse_spec
from sweeper.rank import rank_study
from sweeper.recorded_scores import recorded_by_trial
from sweeper.trial_result import TrialResult
from tests.sweeper.tiny_sweep import tiny_spec

runner = CliRunner()
NAME = "rec"

# val, holdout H-mean of four trials: val alone and the mean of val and holdout order them
# differently.
FIGURES = [(0.90, 0.80), (0.88, 0.87), (0.86, 0.86), (0.70, 0.69)]


@pytest.fixture
def study(tmp_path: Path) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path / 'rec.db'}"
    spec = parse_spec(tiny_spec(NAME, n_trials=4))
    made = create_study(spec, open_storage(url))
    for val, holdout in FIGURES:
        result = TrialResult(
            val_precision=val, val_recall=val, val_hmean=val, gap_split="holdout",
            gap_precision=holdout, gap_recall=holdout, gap_hmean=holdout,
            gap=val - holdout, score=val, epochs_run=2, best_epoch=2,
        )  # fmt: skip
        made.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=val,
                params={},
                distributions={},
                user_attrs=result.to_attrs(),
            )
        )
    made.add_trial(create_trial(state=TrialState.FAIL))
    return url, made


def _record(url: str, *args: str):
    return runner.invoke(app, ["record-test", NAME, *args, "--storage", url])


def test_scores_round_trip_in_one_scale_with_several_labels(
    study: tuple[str, optuna.Study],
) -> None:
    url, _ = study
    done = _record(url, "1", "--hmean", "85.5", "--precision", "90", "--recall", "81.4")
    assert done.exit_code == 0, done.output
    assert "read as percent" in done.output and "H 0.8550" in done.output
    assert "val − test: +2.50" in done.output and "warning" not in done.output
    done = _record(url, "1", "--hmean", "0.8412", "--label", "LB private")
    assert done.exit_code == 0 and "read as fractions" in done.output, done.output
    args = ("--precision", "0.9", "--recall", "0.814", "--label", "test")
    done = _record(url, "1", "--hmean", "0.851", *args)
    assert "replaced test H 0.8550" in done.output, done.output

    swapped = _record(url, "2", "--hmean", "0.85", "--precision", "0.9", "--recall", "0.5")
    assert "warning: 2PR/(P+R) is 0.6429, not the H-mean 0.8500" in swapped.output

    loaded, _ = load_study(NAME, open_storage(url))
    [test, private] = recorded_by_trial(loaded.user_attrs)[1]
    assert (test.label, test.hmean, test.precision, test.recall) == ("test", 0.851, 0.9, 0.814)
    assert (private.label, private.hmean, private.precision) == ("LB private", 0.8412, None)

    # The dashboard note shows them under the trial's own figures, once.
    note = get_note(optuna.Trial(loaded, loaded.trials[1]._trial_id))
    assert note.startswith("**score 88.00**") and note.count("recorded test scores") == 1
    assert "| test | 90.00 | 81.40 | 85.10 |" in note
    assert "| LB private | - | - | 84.12 |" in note
    assert "| val − test | -2.00 | +6.60 | +2.90 |" in note


def test_the_note_the_worker_wrote_is_kept(study: tuple[str, optuna.Study]) -> None:
    url, made = study
    trial = optuna.Trial(made, made.trials[0]._trial_id)
    save_note(trial, "what the worker wrote\n\ncost: 1 device-hour\n")
    for hmean in ("0.8", "0.7"):
        assert _record(url, "0", "--hmean", hmean).exit_code == 0
    note = get_note(trial)
    assert note.startswith("what the worker wrote\n\ncost: 1 device-hour\n\n**recorded")
    assert note.count("recorded test scores") == 1 and "| test | - | - | 70.00 |" in note


def test_rank_shows_the_scores_the_drop_and_the_rule_that_orders_them(
    study: tuple[str, optuna.Study],
) -> None:
    url, _ = study
    for number, hmean in ((0, "0.79"), (1, "0.86"), (2, "0.85")):
        assert _record(url, str(number), "--hmean", hmean, "--label", "LB").exit_code == 0

    loaded, spec = load_study(NAME, open_storage(url))
    ranking = rank_study(loaded, spec, by="val")
    [agreement] = ranking.recorded_agreement
    assert agreement.label == "LB" and agreement.trials == [0, 1, 2]
    assert agreement.overstated == pytest.approx(
        ((0.90 - 0.79) + (0.88 - 0.86) + (0.86 - 0.85)) / 3
    )
    # val orders them 0, 1, 2; the LB ordered them 1, 2, 0, as the holdout, the mean and
    # the score (trial 0's gap of 10 points costs it 9.5) do.
    assert agreement.best == ["score", "holdout", "mean"]
    assert agreement.tau["holdout"] == pytest.approx(1.0)
    assert agreement.tau["val"] < 1.0

    table = runner.invoke(app, ["rank", NAME, "--storage", url, "--by", "val", "--wide"])
    assert table.exit_code == 0, table.output
    assert "LB H" in table.output and "val − LB" in table.output
    assert "79.00" in table.output and "+11.00" in table.output
    assert "validation overstated the 3 recorded LB scores by 4.67 points on average" in (
        " ".join(table.output.split())
    )
    assert "score, holdout, mean" in table.output

    data = json.loads(
        runner.invoke(app, ["rank", NAME, "--storage", url, "--format", "json"]).output
    )
    by_number = {t["number"]: t for t in data["completed"]}
    assert by_number[0]["recorded"][0]["hmean"] == 0.79 and by_number[3]["recorded"] == []
    assert data["recorded_agreement"][0]["best"] == ["score", "holdout", "mean"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["9", "--hmean", "0.9"], "has no trial 9"),
        (["4", "--hmean", "0.9"], "trial 4 of study 'rec' is fail"),
        (["1", "--hmean", "120"], "--hmean 120: must be in 0..1, or 0..100"),
        (["1", "--hmean", "-0.1"], "--hmean -0.1"),
        (["1", "--hmean", "96", "--precision", "0.97"], "--precision 0.97: a fraction among"),
        (["1", "--hmean", "0.9", "--label", " "], "--label"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    study: tuple[str, optuna.Study], args: list[str], says: str
) -> None:
    url, _ = study
    done = _record(url, *args)
    assert done.exit_code == 2, done.output
    assert says in done.output and len(done.output.strip().splitlines()) == 1
    loaded, _ = load_study(NAME, open_storage(url))
    assert recorded_by_trial(loaded.user_attrs) == {}
    unknown = runner.invoke(app, ["record-test", "nosuch", "1", "--hmean", "0.9", "--storage", url])
    assert unknown.exit_code == 2 and "nosuch" in unknown.output
