"""Adding many finished trials at once: one transaction instead of one per trial."""

from __future__ import annotations

from collections.abc import Sequence

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial

__all__ = ["add_finished_trials"]


def add_finished_trials(storage: BaseStorage, study_id: int, trials: Sequence[FrozenTrial]) -> None:
    """Copy finished ``trials`` (from another study) into study ``study_id``.

    On a SQL storage they go in one transaction, numbered after the study's trials: a
    post-processing search of 300 trials costs one commit, where ``optimize`` on the SQL
    storage costs about seven per trial (on SQLite, each an fsync: most of a search's time,
    benchmarks/postprocess_search.py). This uses Optuna's own trial preparation
    (``RDBStorage._get_prepared_new_trial``, private but stable through optuna 5, which
    uv.lock pins), as :func:`storage.set_trial_user_attrs` does; other storages, the gRPC
    proxy included, get one call per trial.
    """
    backend = getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in a cache
    if not isinstance(backend, RDBStorage):
        for trial in trials:
            storage.create_new_trial(study_id, template_trial=trial)
        return
    with _create_scoped_session(backend.scoped_session) as session:
        # The study row is locked so concurrent trial numbering stays unique, as Optuna does.
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        for trial in trials:
            backend._get_prepared_new_trial(study_id, trial, session)
