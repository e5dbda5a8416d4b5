"""``sweeper promote`` follows a pruned trial's recorded checkpoint folder only inside the
artifacts directory; the worker that continues it checks again (tests/sweeper/run)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_storage
from sweeper.after import promote_trial
from sweeper.define import create_study, parse_spec
from sweeper.errors import StudyError
from tests.sweeper.tiny_sweep import tiny_spec


def _pruned_with(sqlite_url: str, checkpoint_dir: str) -> optuna.Study:
    study = create_study(parse_spec(tiny_spec("promoted", 4)), open_storage(sqlite_url))
    trial = study.ask()
    trial.set_user_attr("checkpoint_dir", checkpoint_dir)
    trial.report(0.5, 1)
    study.tell(trial, state=TrialState.PRUNED)
    return study


@pytest.mark.parametrize("recorded", ["../outside", "/srv/other/trial-0", "a\nb"])
def test_a_checkpoint_folder_outside_the_artifacts_is_refused(
    sqlite_url: str, recorded: str
) -> None:
    study = _pruned_with(sqlite_url, recorded)
    with pytest.raises(StudyError, match=r"^trial 0: recorded folder .* outside the artifacts"):
        promote_trial(study, 0)
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_a_checkpoint_folder_inside_is_promoted(sqlite_url: str) -> None:
    study = _pruned_with(sqlite_url, "checkpoints/promoted-0123/trial-0")
    new = promote_trial(study, 0)
    assert new.user_attrs["promote_checkpoint"] == "checkpoints/promoted-0123/trial-0"
