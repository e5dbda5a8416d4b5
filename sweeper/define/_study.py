"""Studies from specs: create one, load one (with its sampler and pruner), delete one.

The validated spec is stored on the study (user attribute ``sweeper.spec``, with
``sweeper.schema_version``), so a worker needs only the storage URL and the study name.
Optuna does not persist samplers or pruners: :func:`load_study` rebuilds them from the
stored spec every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import BaseStorage

from sweeper.attrs import (
    BASELINE_ATTR,
    POSTPROCESS_OF_ATTR,
    SCHEMA_ATTR,
    SPEC_ATTR,
    UUID_ATTR,
    VERIFY_OF_ATTR,
)
from sweeper.define._schedule_pruner import best_so_far_pruner, schedule_aware_pruner
from sweeper.define._spec import SCHEMA_VERSION, StudySpec, parse_spec
from sweeper.define._tracking_spec import missing_tracker_extra
from sweeper.errors import SpecError, StudyError
from sweeper.paths import remove_study_files, safe_component

METRIC_NAME = "score"
"""The objective's name in optuna-dashboard: the trial's value is its penalized score."""

# A concurrent create-study of the same name may have made the study but not yet stored
# its spec; the second caller waits this long for it before calling the study foreign.
_SPEC_WAIT_S = 10.0


def sampler_seed(seed: int | None, worker_id: str = "") -> int | None:
    """The seed a worker's sampler uses: the spec's ``seed`` mixed with the worker's id.

    Every worker of the fleet has its own id (host, process, slot and a random token; see
    :func:`sweeper.run._worker.worker_identity`), so no two of them, on any node, draw the same
    random startup trials. ``worker_id=""`` (create-study) keeps the spec's seed.
    """
    if seed is None or not worker_id:
        return seed
    digest = hashlib.sha256(f"{seed}/{worker_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def build_sampler(spec: StudySpec, worker_id: str = "") -> optuna.samplers.TPESampler:
    """The TPE sampler the spec describes.

    Args:
        spec: the study spec.
        worker_id: the worker's fleet-unique id; its sampler's seed derives from it
            (:func:`sampler_seed`), so parallel workers seeded alike draw different
            startup trials.
    """
    s = spec.sampler
    return optuna.samplers.TPESampler(
        seed=sampler_seed(s.seed, worker_id),
        n_startup_trials=s.n_startup_trials,
        multivariate=s.multivariate,
        constant_liar=s.constant_liar,
    )


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The pruner the spec describes; resources are epochs, max_resource the epochs trained.

    ``successive_halving`` is Hyperband's most aggressive bracket alone; ``best_so_far`` its
    rungs on each trial's best value so far; ``schedule_aware`` its rungs at fractions of each
    trial's own ``T_max``; ``none`` never prunes.
    """
    p, kind = spec.pruner, spec.pruner_kind
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if kind == "best_so_far":
        return best_so_far_pruner(p.min_resource, p.reduction_factor, spec.base.epochs)
    if kind == "schedule_aware":
        return schedule_aware_pruner(
            p.min_resource,
            p.reduction_factor,
            spec.base.epochs,
            default_t_max=spec.base.scheduler.T_max or spec.base.epochs,
            t_max_param=spec.t_max_param,
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource,
        max_resource=spec.max_resource,
        reduction_factor=p.reduction_factor,
    )


def create_study(spec: StudySpec, storage: BaseStorage, exist_ok: bool = False) -> optuna.Study:
    """Create the study a spec describes, store the spec on it and enqueue its baselines.

    Args:
        spec: a validated spec (:func:`sweeper.define.load_spec`).
        storage: from :func:`storage.open_storage`.
        exist_ok: when a study of this name exists with an identical stored spec, return it
            (baselines are not enqueued twice) instead of failing.

    Raises:
        StudyError: the name is taken (by a different spec, or without ``exist_ok``).
        SpecError: the spec names a tracker whose client (an extra) is not installed.

    Example:
        >>> study = create_study(load_spec("studies/demo.yaml"), open_storage())  # doctest: +SKIP
    """
    if spec.tracking is not None and (missing := missing_tracker_extra(spec.tracking)):
        raise SpecError(missing)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=spec.name,
            direction="maximize",
            sampler=build_sampler(spec),
            pruner=build_pruner(spec),
        )
    except DuplicatedStudyError as e:
        return _existing(spec, storage, exist_ok, e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # experimental in optuna 5
            study.set_metric_names([METRIC_NAME])  # the dashboard's name for the objective
        study.set_user_attr(SCHEMA_ATTR, SCHEMA_VERSION)
        study.set_user_attr(UUID_ATTR, uuid.uuid4().hex)
        for i, params in enumerate(spec.baselines):
            study.enqueue_trial(params, user_attrs={BASELINE_ATTR: i})
        # The spec goes last: its presence tells workers the study is complete.
        study.set_user_attr(SPEC_ATTR, spec.model_dump(mode="json"))
    except BaseException:
        # Leave no half-made study behind for workers to trip over.
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=spec.name, storage=storage)
        raise
    return study


def load_study(
    name: str, storage: BaseStorage, worker_id: str = ""
) -> tuple[optuna.Study, StudySpec]:
    """Load a study made by :func:`create_study`, with its spec, sampler and pruner.

    Args:
        name: the study name.
        storage: from :func:`storage.open_storage`.
        worker_id: see :func:`build_sampler`.

    Raises:
        StudyError: no such study, or it carries no (or an unreadable) sweeper spec.

    Example:
        >>> study, spec = load_study("demo", open_storage())  # doctest: +SKIP
    """
    spec = _stored_spec(name, storage)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=build_sampler(spec, worker_id),
        pruner=build_pruner(spec),
    )
    return study, spec


def delete_study(name: str, storage: BaseStorage) -> None:
    """Delete a study and all its trials.

    Raises:
        StudyError: no such study.
    """
    find_study_id(name, storage)
    optuna.delete_study(study_name=name, storage=storage)


def linked_studies(name: str, storage: BaseStorage) -> list[str]:
    """The studies made from study ``name``, and from those in turn, parents first: its
    verify study and the post-processing searches of its trials (known by their attributes).
    """
    children: dict[str, list[str]] = {}
    for s in storage.get_all_studies():
        parent = _made_from(s.user_attrs)
        if parent is not None:
            children.setdefault(parent, []).append(s.study_name)
    found: list[str] = []
    todo = sorted(children.get(name, []))
    while todo:
        child = todo.pop(0)
        if child not in found and child != name:
            found.append(child)
            todo += sorted(children.get(child, []))
    return found


def _made_from(study_attrs: dict[str, Any]) -> str | None:
    """The study a verify study or a post-processing search was made from, if it is one."""
    verified = study_attrs.get(VERIFY_OF_ATTR)
    if isinstance(verified, str):
        return verified
    tuned = study_attrs.get(POSTPROCESS_OF_ATTR)
    return tuned.get("study") if isinstance(tuned, dict) else None


def find_study_id(name: str, storage: BaseStorage) -> int:
    """The storage's id of study ``name``.

    Raises:
        StudyError: no such study.
    """
    try:
        return storage.get_study_id_from_name(name)
    except KeyError as e:
        raise StudyError(
            f"no study named {name!r} in this storage (sweeper studies lists them)"
        ) from e


def _existing(
    spec: StudySpec, storage: BaseStorage, exist_ok: bool, error: DuplicatedStudyError
) -> optuna.Study:
    """The existing study of ``spec.name`` if ``exist_ok`` and its spec is identical."""
    stored = _stored_spec(spec.name, storage, wait_s=_SPEC_WAIT_S)
    if stored != spec:
        raise StudyError(
            f"study {spec.name!r} already exists and its stored spec differs from this one; "
            "pick another name (--name), or delete it first (sweeper delete-study); "
            "--exist-ok only reuses a study whose spec is identical"
        ) from error
    if not exist_ok:
        raise StudyError(
            f"study {spec.name!r} already exists with this same spec; pass --exist-ok "
            "(exist_ok=True) to reuse it, or pick another name (--name)"
        ) from error
    study, _ = load_study(spec.name, storage)
    return study


def _stored_spec(name: str, storage: BaseStorage, wait_s: float = 0.0) -> StudySpec:
    """The spec stored on study ``name``, waiting up to ``wait_s`` for a creator to store it."""
    study_id = find_study_id(name, storage)
    deadline = time.monotonic() + wait_s
    attrs = storage.get_study_user_attrs(study_id)
    while SPEC_ATTR not in attrs and time.monotonic() < deadline:
        time.sleep(0.2)
        attrs = storage.get_study_user_attrs(study_id)
    if SPEC_ATTR not in attrs:
        raise StudyError(
            f"study {name!r} has no sweeper spec: it was not made by sweeper create-study"
        )
    version = attrs.get(SCHEMA_ATTR)
    if version != SCHEMA_VERSION:
        raise StudyError(
            f"study {name!r} stores spec schema version {version}; this sweeper reads "
            f"version {SCHEMA_VERSION}"
        )
    try:
        return parse_spec(attrs[SPEC_ATTR], source=f"spec stored on study {name!r}")
    except ValueError as e:
        raise StudyError(str(e)) from e


def study_key(name: str, storage: BaseStorage) -> str:
    """The directory name of study ``name``'s files: safe name plus its stored id.

    Raises:
        StudyError: no such study.
    """
    study_id = find_study_id(name, storage)
    uid = storage.get_study_user_attrs(study_id).get(UUID_ATTR)
    tag = uid[:12] if isinstance(uid, str) and uid else f"id{study_id}"
    return f"{safe_component(name)}-{safe_component(tag)}"


def study_pictures(name: str, storage: BaseStorage) -> list[str]:
    """Artifact ids of the files (learning curves, detections) uploaded for the study's trials."""
    from optuna.artifacts import get_all_artifact_meta

    trials = storage.get_all_trials(find_study_id(name, storage), deepcopy=False)
    return [meta.artifact_id for t in trials for meta in get_all_artifact_meta(t, storage=storage)]


def delete_sweep(name: str, storage: BaseStorage, artifacts: Path) -> tuple[list[str], int]:
    """Delete study ``name`` and the studies made from it (its verify study, its
    post-processing searches), with their checkpoints, logs and pictures under ``artifacts``.

    Returns the linked studies deleted and the bytes freed.

    Raises:
        StudyError: no such study (then nothing is deleted).
    """
    find_study_id(name, storage)
    linked = linked_studies(name, storage)
    freed = 0
    for each in [*reversed(linked), name]:  # made-from studies first: none is left orphaned
        key = study_key(each, storage)
        pictures = study_pictures(each, storage)
        delete_study(each, storage)
        freed += remove_study_files(artifacts, key, pictures)
    return linked, freed
