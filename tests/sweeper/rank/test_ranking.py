"""Ranking and export on a study built by hand, and through the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution, IntDistribution
from rich.console import Console
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app
from sweeper.define import create_study, parse_spec
from sweeper.errors import SpecError, StudyError
from sweeper.rank import export_best, rank_study
from sweeper.view import print_ranking
from tests.sweeper.tiny_sweep import make_data, tiny_spec

runner = CliRunner()

DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 3e-3, log=True),
    "weight_decay": FloatDistribution(1e-6, 1e-3, log=True),
    "T_max": IntDistribution(1, 4),
    "eta_min": FloatDistribution(1e-7, 1e-5, log=True),
}


def _trial(lr: float, val: float, gap: float, state=optuna.trial.TrialState.COMPLETE, **kw):
    params = {"lr": lr, "weight_decay": 1e-4, "T_max": 2, "eta_min": 1e-6}
    attrs = {
        "val_precision": val,
        "val_recall": val,
        "val_hmean": val,
        "gap_precision": val,  # all of the gap is recall, as in the team's sweep
        "gap_recall": val - 2 * gap,
        "gap_hmean": val - gap,
        "gap": gap,
        "score": val - max(0.0, gap - 0.005),
        "epochs_run": 2,
        "best_epoch": 2,
        "gap_split": "holdout",
        **kw.pop("attrs", {}),
    }
    return optuna.trial.create_trial(
        state=state,
        params=params,
        distributions=DISTRIBUTIONS,
        value=attrs["score"] if state == optuna.trial.TrialState.COMPLETE else None,
        user_attrs=attrs,
        **kw,
    )


@pytest.fixture
def built(sqlite_url: str) -> tuple[optuna.Study, object, str]:
    """A high-val, large-gap trial (the over-fitted one) and a generalizing one."""
    spec = parse_spec(tiny_spec("ranked", 4))
    study = create_study(spec, open_storage(sqlite_url))
    study.add_trial(_trial(2e-3, val=0.966, gap=0.030))  # trial 0: tops validation
    study.add_trial(_trial(5e-4, val=0.960, gap=0.002))  # trial 1: generalizes
    study.add_trial(
        _trial(
            1e-4,
            val=0.5,
            gap=0.0,
            state=optuna.trial.TrialState.PRUNED,
            intermediate_values={1: 0.3, 2: 0.5},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, user_attrs={"fail_reason": "non-finite loss"}
        )
    )
    return study, spec, sqlite_url


def test_penalty_ranks_the_generalizing_trial_first(built) -> None:
    study, spec, _ = built
    assert [t.number for t in rank_study(study, spec).completed] == [1, 0]
    assert [t.number for t in rank_study(study, spec, by="val").completed] == [0, 1]
    # Without a penalty the score is val H-mean again.
    assert [t.number for t in rank_study(study, spec, penalty=0.0).completed] == [0, 1]
    # A tolerance wider than the gap forgives it.
    assert [t.number for t in rank_study(study, spec, tolerance=0.05).completed] == [0, 1]


def test_pruned_and_failed_stay_visible(built) -> None:
    study, spec, _ = built
    ranking = rank_study(study, spec)
    assert [(p.number, p.epoch, p.last_hmean) for p in ranking.pruned] == [(2, 2, 0.5)]
    assert ranking.failed == {"non-finite loss": 1}


def _rendered(ranking, width: int, wide: bool = False) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False)
    print_ranking(ranking, console, wide=wide)
    return console.file.getvalue()


def _row(text: str, first: str, second: str) -> list[str]:
    """The cells of the table row whose first two cells are ``first`` and ``second``."""
    return next(line.split() for line in text.splitlines() if line.split()[:2] == [first, second])


def test_ranking_reads_in_80_columns(built) -> None:
    study, spec, _ = built
    text = _rendered(rank_study(study, spec), 80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    # rank, trial, score, val H, gap, recall gap (percentage points), the four parameters.
    assert _row(text, "1", "1") == [
        *("1", "1", "96.00", "96.00", "+0.20", "+0.40"),
        *("2", "1e-6", "5e-4", "1e-4"),
    ]
    assert _row(text, "2", "0")[2:6] == ["94.10", "96.60", "+3.00", "+6.00"]
    assert "not shown: P gap, epochs, val P, val R, gap-split H (--wide shows them)" in text
    assert _row(text, "2", "2") == ["2", "2", "50.00", "2", "1e-6", "1e-4", "1e-4"]
    assert "1 x non-finite loss" in text


def test_ranking_wide_shows_every_column_and_narrow_keeps_the_score(built) -> None:
    study, spec, _ = built
    wide = _rendered(rank_study(study, spec), 80, wide=True)
    assert "not shown" not in wide and "gap-split H" in wide and "val R" in wide
    assert _row(wide, "1", "1")[-3:] == ["96.00", "96.00", "95.80"]
    narrow = _rendered(rank_study(study, spec), 40)
    assert "…" not in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 40
    assert _row(narrow, "1", "1")[:3] == ["1", "1", "96.00"]


def test_rank_cli_table_at_80_columns(built) -> None:
    _, _, url = built
    result = runner.invoke(app, ["rank", "ranked", "--storage", url], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert _row(result.stdout, "1", "1")[2] == "96.00"


def test_the_console_width_follows_the_terminal_from_one_command_to_the_next(built) -> None:
    # One process, two terminals (as in a test run or a notebook): the second table is
    # fitted to the second width, not to the first one's.
    _, _, url = built
    first = runner.invoke(app, ["rank", "ranked", "--storage", url], env={"COLUMNS": "200"})
    assert "not shown" not in first.stdout
    second = runner.invoke(app, ["rank", "ranked", "--storage", url], env={"COLUMNS": "80"})
    assert max(len(line) for line in second.stdout.splitlines()) <= 80


def test_rank_by_holdout_and_mean(built, sqlite_url: str) -> None:
    study, spec, _ = built
    # Trial 0: val 0.966, holdout 0.936; trial 1: val 0.960, holdout 0.958.
    assert [t.number for t in rank_study(study, spec, by="holdout").completed] == [1, 0]
    assert [t.number for t in rank_study(study, spec, by="mean").completed] == [1, 0]
    [first, _] = rank_study(study, spec).completed
    assert first.recall_gap == pytest.approx(0.004) and first.precision_gap == 0.0
    no_holdout = parse_spec(tiny_spec("ranked-train", 4, ranking={"gap_source": "train"}))
    train_study = create_study(no_holdout, open_storage(sqlite_url))
    with pytest.raises(StudyError, match="--by holdout: study 'ranked-train' has no holdout"):
        rank_study(train_study, no_holdout, by="holdout")
    with pytest.raises(StudyError, match="--by 'best': use score, val, holdout, mean"):
        rank_study(study, spec, by="best")  # type: ignore[arg-type]


def test_the_spec_names_the_default_rule(built) -> None:
    study, spec, _ = built
    by_val = spec.model_copy(update={"ranking": spec.ranking.model_copy(update={"rule": "val"})})
    ranking = rank_study(study, by_val)  # no --by: the spec's ranking.rule
    assert ranking.by == "val" and [t.number for t in ranking.completed] == [0, 1]
    assert [t.number for t in rank_study(study, by_val, by="score").completed] == [1, 0]
    with pytest.raises(SpecError, match=r"ranking\.rule: mean ranks by the holdout H-mean"):
        parse_spec(tiny_spec("x", 4, ranking={"gap_source": "train", "rule": "mean"}))


def test_rank_plot_marks_the_val_winner_and_the_pick(built, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from sweeper.view import selection_png

    study, spec, url = built
    labels: list[str] = []
    savefig = plt.Figure.savefig

    def keep_labels(fig, *args, **kwargs):  # read the drawn text back from the figure
        labels.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        labels.extend(t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts())
        return savefig(fig, *args, **kwargs)

    plt.Figure.savefig = keep_labels  # type: ignore[method-assign]
    try:
        png = selection_png(rank_study(study, spec), tmp_path / "picked.png")
    finally:
        plt.Figure.savefig = savefig  # type: ignore[method-assign]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "top by val: trial 0" in labels and "top by score: trial 1" in labels
    assert "completed (2)" in labels and "pruned (1)" in labels

    artifacts = tmp_path / "artifacts"
    result = runner.invoke(
        app,
        [
            "rank",
            "ranked",
            "--storage",
            url,
            "--plot",
            str(tmp_path / "cli.png"),
            "--artifacts",
            str(artifacts),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "cli.png").read_bytes()[:4] == b"\x89PNG"
    [meta] = optuna.artifacts.get_all_artifact_meta(study)
    assert meta.filename == "cli.png"
    assert sum(1 for p in artifacts.rglob("*") if p.is_file()) == 1


def test_rank_cli_json_and_csv(built) -> None:
    _, _, url = built
    result = runner.invoke(app, ["rank", "ranked", "--storage", url, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [t["number"] for t in data["completed"]] == [1, 0]
    assert data["pruned"][0]["epoch"] == 2
    csv = ["rank", "ranked", "--storage", url, "--format", "csv", "--penalty", "0"]
    result = runner.invoke(app, csv)
    assert result.stdout.splitlines()[1].split(",")[1] == "0"
    bad = runner.invoke(app, ["rank", "ranked", "--storage", url, "--format", "xml"])
    assert bad.exit_code == 2 and "--format" in bad.stderr


def test_export_best_then_train_one_epoch(
    built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, spec, _ = built
    out = tmp_path / "best.yaml"
    trial = export_best(study, spec, out)
    assert trial.number == 1
    text = out.read_text()
    assert text.startswith("# sweeper export-best: study 'ranked', trial 1")
    config = yaml.safe_load(text)
    assert config["optimizer"]["lr"] == pytest.approx(5e-4)

    make_data(tmp_path)  # the spec's data paths are relative: run from the data root
    monkeypatch.chdir(tmp_path)
    train = ["train", str(out), "--set", "epochs=1", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "best.pt").exists()
    assert (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        ("checkpoints/ranked-0123/trial-1", "ARTIFACTS/checkpoints/ranked-0123/trial-1/best.pt"),
        ("x\nmodel: {backbone: injected}", None),
        ("../../home/someone", None),
    ],
)
def test_export_best_names_the_weights_only_inside_the_artifacts(
    sqlite_url: str, tmp_path: Path, recorded: str, shown: str | None
) -> None:
    """The recorded folder goes into a comment of the exported YAML: a value with a line
    break would write config lines, one outside the artifacts would send people there."""
    spec = parse_spec(tiny_spec("ranked", 4))
    study = create_study(spec, open_storage(sqlite_url))
    study.add_trial(_trial(5e-4, val=0.96, gap=0.002, attrs={"checkpoint_dir": recorded}))
    out = tmp_path / "best.yaml"
    export_best(study, spec, out)
    text = out.read_text()
    weights = [line for line in text.splitlines() if "its weights" in line]
    assert weights == ([] if shown is None else [weights[0]])
    if shown is not None:
        assert f"its weights: {shown}" in weights[0]
    assert "injected" not in text and "someone" not in text
    assert yaml.safe_load(text)["model"]["backbone"] == spec.base.model.backbone
