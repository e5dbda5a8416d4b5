"""sweeper studies / status / delete-study."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner

from storage import open_storage
from sweeper.cli import app
from sweeper.define import create_study, load_spec, load_study, suggest_params

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "tests" / "sweeper" / "specs" / "small.yaml"

runner = CliRunner(env={"COLUMNS": "200"})


def sweep_in_progress(url: str, name: str) -> None:
    """A demo study with a finished trial, a pruned one and one running on a worker."""
    create_study(load_spec(DEMO).renamed(name), open_storage(url))
    study, spec = load_study(name, open_storage(url))
    done = study.ask()  # the baseline
    suggest_params(done, spec)
    done.set_user_attr("val_hmean", 0.8125)
    done.set_user_attr("gap_hmean", 0.8125)
    done.set_user_attr("gap", 0.0)
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
        "best by score (ranking.rule: score): trial 0, 0.8125 "
        "(lr=0.001, weight_decay=0.0001, T_max=6, eta_min=1e-05)" in out
    )
    row = next(line for line in out.splitlines() if "gpu-node-7:3" in line).split()
    assert row[:4] == ["2", "2", "gpu-node-7:3", "cuda:3"]  # trial, epoch, worker, device
    assert row[-1] == "gpu-node-7"


def test_status_names_the_best_as_rank_does(sqlite_url: str) -> None:
    """One study, one notion of best: the spec's ranking rule (here the mean of val and
    holdout H-mean), not the trial value, which rank does not sort by."""
    spec = load_spec(DEMO).renamed("ruled")
    spec = spec.model_copy(update={"ranking": spec.ranking.model_copy(update={"rule": "mean"})})
    study = create_study(spec, open_storage(sqlite_url))
    params = {"lr": 1e-3, "weight_decay": 1e-4, "T_max": 6, "eta_min": 1e-5}
    distributions = {
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-3, log=True),
        "T_max": IntDistribution(1, 12),
        "eta_min": FloatDistribution(1e-7, 1e-4, log=True),
    }
    for val, holdout, value in [(0.96, 0.90, 0.99), (0.95, 0.95, 0.95)]:  # trials 1 and 2
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=value,  # the penalized score TPE optimises, here to disagree
                user_attrs={"val_hmean": val, "gap_hmean": holdout, "gap": val - holdout},
            )
        )
    status = runner.invoke(app, ["status", "ruled", "--storage", sqlite_url])
    assert status.exit_code == 0, status.output
    [best] = [line for line in status.stdout.splitlines() if line.startswith("best")]
    assert best.startswith(
        "best by mean of val and holdout H-mean (ranking.rule: mean): trial 2, 0.95 ("
    )
    ranked = runner.invoke(app, ["rank", "ruled", "--storage", sqlite_url, "--format", "csv"])
    assert ranked.stdout.splitlines()[1].split(",")[1] == "2"  # rank's first, too
    studies = runner.invoke(app, ["studies", "--storage", sqlite_url])
    assert studies.stdout.split("ruled")[1].split()[-1] == "0.95"


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
    open_storage(sqlite_url)  # an empty Optuna database
    result = runner.invoke(app, ["studies", "--storage", sqlite_url])
    assert result.exit_code == 0
    assert result.stdout == f"no studies in {sqlite_url}\n"
    result = runner.invoke(app, ["status", "nope", "--storage", sqlite_url])
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: no study named 'nope' in this storage (sweeper studies lists them)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["studies"],
        ["status", "demo"],
        ["rank", "demo"],
        ["export-best", "demo", "-o", "best.yaml"],
        ["reap", "demo"],
        ["delete-study", "demo", "--yes"],
        ["worker", "--study", "demo"],
    ],
)
def test_commands_that_need_a_storage_do_not_create_one(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "sweps.db"
    result = runner.invoke(app, [*args, "--storage", f"sqlite:///{typo}"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: storage sqlite:///{typo}: no SQLite file at {typo}; check the path "
        "(sweeper create-study makes the file)\n"
    )
    assert not typo.exists()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_status_counts_a_retry_chain_once_and_never_a_given_back_trial(
    sqlite_url: str, study_name: str
) -> None:
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from sweeper.attrs import OVER_BUDGET_ATTR

    create_study(load_spec(DEMO).renamed(study_name), open_storage(sqlite_url))
    study, spec = load_study(study_name, open_storage(sqlite_url))
    retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    first = study.ask()  # the baseline; fails twice, then its second retry completes
    suggest_params(first, spec)
    study.tell(first, state=TrialState.FAIL)
    retry(study, study.trials[first.number])
    again = study.ask()
    study.tell(again, state=TrialState.FAIL)
    retry(study, study.trials[again.number])
    study.tell(study.ask(), 0.5)
    given_back = study.ask()
    given_back.set_user_attr(OVER_BUDGET_ATTR, True)
    study.tell(given_back, state=TrialState.FAIL)
    result = runner.invoke(app, ["status", study_name, "--storage", sqlite_url])
    assert result.exit_code == 0, result.output
    assert f"{study_name} in {sqlite_url}: 1/12 trials finished" in result.stdout
    assert "given back untrained (started past the budget): 1" in result.stdout
    ranked = runner.invoke(app, ["rank", study_name, "--storage", sqlite_url, "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    report = json.loads(ranked.stdout)
    assert report["given_back"] == 1
    assert sum(report["failed"].values()) == 2  # the two failed members of the chain


def test_delete_study_needs_yes(sqlite_url: str) -> None:
    create_study(load_spec(DEMO), open_storage(sqlite_url))
    refused = runner.invoke(app, ["delete-study", "demo", "--storage", sqlite_url])
    assert refused.exit_code == 2
    assert "pass --yes" in refused.stderr
    assert optuna.get_all_study_names(open_storage(sqlite_url)) == ["demo"]

    done = runner.invoke(
        app,
        ["delete-study", "demo", "--yes", "--storage", sqlite_url, "--artifacts", "nowhere"],
    )
    assert done.exit_code == 0
    assert done.stdout == (
        f"deleted study demo from {sqlite_url}; removed their checkpoints, logs and pictures "
        "under nowhere (0 bytes)\n"
    )
    assert optuna.get_all_study_names(open_storage(sqlite_url)) == []


def test_delete_study_takes_the_studies_made_from_it_along(sqlite_url: str) -> None:
    from sweeper.attrs import POSTPROCESS_OF_ATTR, VERIFY_OF_ATTR

    storage = open_storage(sqlite_url)
    create_study(load_spec(DEMO), storage)
    made_from = {
        "demo.verify": (VERIFY_OF_ATTR, "demo"),
        "demo.trial-3.postprocess": (POSTPROCESS_OF_ATTR, {"study": "demo", "trial": 3}),
        "demo.verify.trial-0.postprocess": (
            POSTPROCESS_OF_ATTR,
            {"study": "demo.verify", "trial": 0},
        ),
        "demo-2.verify": (VERIFY_OF_ATTR, "demo-2"),  # another sweep's: stays
    }
    for name, (key, value) in made_from.items():
        optuna.create_study(storage=storage, study_name=name).set_user_attr(key, value)
    done = runner.invoke(
        app,
        ["delete-study", "demo", "--yes", "--storage", sqlite_url, "--artifacts", "nowhere"],
    )
    assert done.exit_code == 0, done.output
    assert (
        "deleted study demo and the studies made from it (demo.trial-3.postprocess, "
        "demo.verify, demo.verify.trial-0.postprocess)"
    ) in " ".join(done.stdout.split())
    assert optuna.get_all_study_names(open_storage(sqlite_url)) == ["demo-2.verify"]


def test_delete_study_removes_its_checkpoints_and_logs_only(
    tmp_path: Path, sqlite_url: str
) -> None:
    from optuna.artifacts import upload_artifact

    from storage import open_artifact_store
    from sweeper.define import study_key
    from sweeper.paths import checkpoints_dir, log_file

    storage = open_storage(sqlite_url)
    artifacts = tmp_path / "artifacts"
    files = {}
    for name in ("demo", "demo-2"):
        create_study(load_spec(DEMO).renamed(name), storage)
        key = study_key(name, storage)
        last = checkpoints_dir(artifacts, key) / "trial-0" / "last.pt"
        last.parent.mkdir(parents=True)
        last.write_bytes(b"x" * 1500)
        log = log_file(artifacts, key, "node-1", 0)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("y" * 500)
        picture = tmp_path / f"{name}.png"
        picture.write_bytes(b"z" * 1000)
        study, _ = load_study(name, storage)
        trial = study.ask()
        artifact = upload_artifact(
            artifact_store=open_artifact_store(artifacts),
            file_path=str(picture),
            study_or_trial=trial,
        )
        files[name] = (last, log, artifacts / "store" / artifact)
    done = runner.invoke(
        app,
        ["delete-study", "demo", "--yes", "--storage", sqlite_url, "--artifacts", str(artifacts)],
    )
    assert done.exit_code == 0, done.output
    assert "(3.0 kB)" in done.stdout
    assert not any(p.exists() for p in files["demo"])
    assert all(p.exists() for p in files["demo-2"])
