"""``sweeper verify``: the top configs re-run over seeds or folds in STUDY.verify by the real
worker loop, idempotently; ``rank STUDY.verify`` groups them and flags the lucky."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from storage import open_storage
from sweeper.after import enqueue_verify, verify_report, verify_study_name
from sweeper.attrs import VERIFY_SOURCE_ATTR
from sweeper.cli import app
from sweeper.define import create_study, load_study, parse_spec
from sweeper.rank import rank_study
from sweeper.run import WorkerContext, WorkerLimits, run_worker
from tests.sweeper.tiny_sweep import make_data, run_trials, tiny_spec
from trainer_core.checkpoint import load_checkpoint

runner = CliRunner()
NAME = "ver"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A sweep with two completed one-epoch trials."""
    root = make_data(tmp_path_factory.mktemp("verify"))
    url = f"sqlite:///{root / 'sweep.db'}"
    run_trials(root, url, tiny_spec(NAME, n_trials=2, epochs=1), n_trials=2)
    study, _ = load_study(NAME, open_storage(url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    return root, url


def _verify(url: str, *args: str):
    return runner.invoke(app, ["verify", NAME, "--storage", url, *args])


def test_reruns_are_enqueued_once_and_the_real_worker_runs_exactly_them(
    sweep: tuple[Path, str],
) -> None:
    root, url = sweep
    first = _verify(url, "--top", "1", "--seeds", "2")
    assert first.exit_code == 0, first.output
    assert "2 re-run(s) enqueued" in first.output
    again = _verify(url, "--top", "1", "--seeds", "2")
    assert "0 re-run(s) enqueued" in again.output and "2 already there" in again.output
    more = _verify(url, "--top", "2", "--seeds", "2")
    assert "2 re-run(s) enqueued" in more.output, more.output

    storage = open_storage(url)
    study, spec = load_study(NAME, storage)
    verify, vspec = load_study(verify_study_name(NAME), storage)
    assert vspec.pruner.kind == "none" and vspec.budget.n_trials == 4 and not vspec.baselines
    order = [r.number for r in rank_study(study, spec).completed]
    waiting = verify.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[VERIFY_SOURCE_ATTR] for t in waiting] == [order[0]] * 2 + [order[1]] * 2
    seed = spec.base.seed
    assert [t.user_attrs["config_overrides"] for t in waiting[:2]] == [
        {"seed": seed + 1},
        {"seed": seed + 2},
    ]

    ctx = WorkerContext(verify.study_name, root / "artifacts", "test/v", data_root=root)
    assert run_worker(verify.study_name, url, ctx, WorkerLimits()) == 4
    verify, _ = load_study(verify_study_name(NAME), open_storage(url))
    done = verify.get_trials()
    assert [t.state for t in done] == [TrialState.COMPLETE] * 4  # nothing sampled beyond
    for trial in done:
        folder = root / "artifacts" / trial.user_attrs["checkpoint_dir"]
        # The worker's retention: a completed trial keeps its weights only.
        assert not (folder / "last.pt").exists()
        state = load_checkpoint(folder / "best.pt")
        assert json.loads(state["config"])["seed"] == trial.user_attrs["config_overrides"]["seed"]
        source = study.trials[trial.user_attrs[VERIFY_SOURCE_ATTR]]
        assert trial.params == source.params

    table = runner.invoke(app, ["rank", verify.study_name, "--storage", url])
    assert table.exit_code == 0, table.output
    assert "±" in table.output and "winner by mean score: trial" in table.output
    report = json.loads(
        runner.invoke(app, ["rank", verify.study_name, "--storage", url, "--format", "json"]).output
    )
    assert report["source"] == NAME and report["varied"] == "seeds"
    assert [c["runs"] for c in report["configs"]] == [2, 2]
    means = [c["score"]["mean"] for c in report["configs"]]
    assert (
        means == sorted(means, reverse=True) and report["winner"] == report["configs"][0]["source"]
    )


def test_folds_rerun_each_fold_of_the_non_holdout_images(sweep: tuple[Path, str]) -> None:
    _, url = sweep
    storage = open_storage(url)
    study, spec = load_study(NAME, storage)
    done = enqueue_verify(study, spec, top=1, folds=3)
    assert done.added == 3
    verify, vspec = load_study(verify_study_name(NAME), storage)
    folds = [
        t.user_attrs["config_overrides"] for t in verify.get_trials(states=(TrialState.WAITING,))
    ]
    assert folds == [{"data.n_folds": 3, "data.fold": k} for k in range(3)]
    assert vspec.budget.n_trials == 7  # the four seed re-runs and these three


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--top", "0"], "--top 0"),
        (["--top", "1", "--seeds", "0"], "--seeds 0"),
        (["--top", "1", "--folds", "1"], "--folds 1"),
        (["--top", "1", "--seeds", "2", "--folds", "2"], "--seeds and --folds"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    tmp_path: Path, args: list[str], says: str
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    create_study(parse_spec(tiny_spec(NAME, n_trials=2)), open_storage(url))
    result = _verify(url, *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert [s.study_name for s in open_storage(url).get_all_studies()] == [NAME]
    nothing = _verify(url, "--top", "1")
    assert nothing.exit_code == 2 and "no completed trial" in nothing.output
    assert [s.study_name for s in open_storage(url).get_all_studies()] == [NAME]


def _done(number_or_source: dict, val: float, gap: float) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.COMPLETE,
        value=val,
        params={"lr": 1e-3},
        distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)},
        user_attrs={"val_hmean": val, "gap_hmean": val - gap, "gap": gap, **number_or_source},
    )


def test_the_report_gives_mean_and_std_and_flags_a_lucky_original(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    spec = parse_spec(tiny_spec(NAME, n_trials=4))
    study = create_study(spec, open_storage(url))
    study.add_trial(_done({}, 0.90, 0.0))  # trial 0: a lucky winner
    study.add_trial(_done({}, 0.80, 0.0))  # trial 1: steady
    for t in study.get_trials(states=(TrialState.WAITING,)):  # no baselines in tiny_spec
        raise AssertionError(t)
    verify = create_study(spec.renamed(verify_study_name(NAME)), open_storage(url))
    verify.set_user_attr("sweeper.verify_of", NAME)
    for val in (0.70, 0.74, 0.72):
        verify.add_trial(_done({VERIFY_SOURCE_ATTR: 0}, val, 0.0))
    for val in (0.79, 0.83):
        verify.add_trial(_done({VERIFY_SOURCE_ATTR: 1}, val, 0.0))
    report = verify_report(verify, spec)
    first, second = report.configs
    assert (first.source, second.source) == (1, 0)  # by mean score: 0.81 beats 0.72
    assert report.winner is first and first.flag is None
    assert second.flag == "lucky" and second.runs == 3
    assert second.score.mean == pytest.approx(0.72) and second.score.std == pytest.approx(0.02)
    assert second.val.low == pytest.approx(0.70) and second.original_score == pytest.approx(0.90)
