"""Replaying a finished study's own curves: its figures, its bad inputs, nothing written.

The study is a real one (created from a spec on SQLite, read back by ``load_study``) whose
trials are written by hand, as tests/sweeper/test_ranking.py does: curves with a known
shape, where training a tiny model for a few epochs gives flat zeros on a loaded CPU.
"""

from __future__ import annotations

import datetime
import json

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner

from storage import open_storage
from sweeper.attrs import PROMOTED_AT_ATTR, PROMOTED_FROM_ATTR
from sweeper.cli import app
from sweeper.define import create_study, load_study, parse_spec
from sweeper.errors import StudyError
from sweeper.rank import MIN_REPLAY_TRIALS, replay_study
from tests.sweeper.tiny_sweep import tiny_spec

EPOCHS = 6
START = datetime.datetime(2026, 1, 1)


def _trial(number: int, t_max: int, curve: list[float], **kw: object) -> optuna.trial.FrozenTrial:
    final = curve[-1]
    attrs = {
        "val_precision": final,
        "val_recall": final,
        "val_hmean": final,
        "gap_precision": final,
        "gap_recall": final,
        "gap_hmean": final,
        "gap": 0.0,
        "score": final,
        "epochs_run": EPOCHS,
        "best_epoch": EPOCHS,
        "gap_split": "holdout",
        **kw.pop("attrs", {}),  # type: ignore[dict-item]
    }
    state = kw.pop("state", TrialState.COMPLETE)
    return optuna.trial.FrozenTrial(
        number=number,
        trial_id=number,
        state=state,  # type: ignore[arg-type]
        params={"lr": 1e-3, "weight_decay": 1e-4, "T_max": t_max, "eta_min": 1e-6},
        distributions={
            "lr": FloatDistribution(1e-4, 3e-3, log=True),
            "weight_decay": FloatDistribution(1e-6, 1e-3, log=True),
            "T_max": IntDistribution(1, 2 * EPOCHS),
            "eta_min": FloatDistribution(1e-7, 1e-5, log=True),
        },
        value=final if state == TrialState.COMPLETE else None,
        values=None,
        system_attrs={},
        user_attrs=attrs if state == TrialState.COMPLETE else {},
        intermediate_values=dict(enumerate(curve, 1)),
        datetime_start=START,
        datetime_complete=START + datetime.timedelta(minutes=10 * len(curve)),
    )


def _made(url: str, name: str, n_complete: int) -> None:
    """A study: ``n_complete`` climbing curves, the best a slow starter, one pruned trial
    finished by a promoted one (which reports only the epochs it added)."""
    study = create_study(parse_spec(tiny_spec(name, 10, epochs=EPOCHS)), open_storage(url))
    for i in range(n_complete):
        study.add_trial(_trial(i, 6, [0.5 + 0.02 * i + 0.01 * e for e in range(EPOCHS)]))
    # The eventual winner: last at epoch 1, first at the end.
    study.add_trial(_trial(n_complete, 7, [0.3, 0.5, 0.6, 0.7, 0.8, 0.9]))
    pruned = [0.4, 0.45]
    study.add_trial(_trial(0, 6, pruned, state=TrialState.PRUNED))
    source = n_complete + 1
    attrs = {PROMOTED_FROM_ATTR: source, PROMOTED_AT_ATTR: 2}
    study.add_trial(_trial(0, 6, [*pruned, 0.5, 0.55, 0.6, 0.62], attrs=attrs))


@pytest.fixture
def finished(sqlite_url: str) -> str:
    _made(sqlite_url, "done", 4)
    return sqlite_url


def _snapshot(url: str, name: str) -> list[tuple]:
    study = load_study(name, open_storage(url))[0]
    return [
        (t.number, t.state, dict(t.intermediate_values), t.system_attrs, t.user_attrs)
        for t in study.get_trials()
    ]


def test_replay_reports_every_setting_and_writes_nothing(finished: str) -> None:
    before = _snapshot(finished, "done")
    study, spec = load_study("done", open_storage(finished))
    result = replay_study(study, spec, ["successive_halving", "schedule_aware"], orders=30)
    assert _snapshot(finished, "done") == before
    # 4 climbers, the slow starter and the promoted trial (the pruned one is not a curve).
    assert result.trials == 6 and result.unpruned_epochs == 6 * EPOCHS
    assert result.winner == 4
    assert result.hours_per_epoch == pytest.approx(10 / 60)
    names = [s.pruner for s in result.settings]
    assert names == ["none", "successive_halving", "schedule_aware"]
    none, sha, phase = result.settings
    assert none.epochs == 6 * EPOCHS and none.winner_cut == 0 and none.fewer == 1
    assert none.device_hours == pytest.approx(6 * EPOCHS / 6)
    # Rungs at epochs 1 and 3: the slow starter is last at 1 and cut whenever it arrives
    # after two or more of the others.
    assert sha.fewer > 1 and 0 < sha.winner_cut < 1
    assert sha.rung_epochs == [1.0, 3.0] and sha.rung_rho[0] < sha.rung_rho[1]
    assert phase.rung_epochs[0] == pytest.approx((1 / 6) * (5 * 6 + 7) / 6)


def test_replay_cli_table_and_json(finished: str) -> None:
    runner = CliRunner()
    args = ["replay", "done", "--storage", finished, "--orders", "10"]
    table = runner.invoke(app, [*args, "--pruner", "hyperband"], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert "hyperband" in table.output and "none" in table.output
    assert max(len(line) for line in table.output.splitlines()) <= 80
    out = runner.invoke(app, [*args, "--pruner", "median", "--format", "json"])
    assert out.exit_code == 0, out.output
    settings = {s["pruner"]: s for s in json.loads(out.output)["settings"]}
    assert set(settings) == {"none", "median"}
    assert {"epochs", "winner_cut", "rung_rho"} <= set(settings["median"])


def test_bad_inputs_exit_2_in_one_line(finished: str) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["replay", "done", "--storage", finished, "--pruner", "asha"])
    assert bad.exit_code == 2 and "'asha'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    missing = runner.invoke(app, ["replay", "nope", "--storage", finished])
    assert missing.exit_code == 2 and "nope" in missing.output
    # A study with too few complete curves: one line with how many it has and needs.
    _made(finished, "few", 1)
    few = runner.invoke(app, ["replay", "few", "--storage", finished])
    assert few.exit_code == 2
    assert "has 3 trials with complete curves" in few.output
    assert f"needs {MIN_REPLAY_TRIALS}" in few.output
    study, spec = load_study("done", open_storage(finished))
    with pytest.raises(StudyError, match="--min-resource 6"):
        replay_study(study, spec, ["hyperband"], min_resource=EPOCHS)
