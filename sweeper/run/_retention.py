"""Checkpoints kept only while they can still be used, and what a study's take on disk.

``last.pt`` (weights, optimizer and scaler state: about 3x the weights with AdamW) exists to
resume a trial or to promote a pruned one; ``best.pt`` (weights only) is what a finished
trial is worth. After every trial a worker applies the spec's ``retention``:

- a completed trial keeps ``best.pt`` only (and the probability maps cached beside it);
  outside the ranking's ``top_k`` it keeps nothing when ``outside_top: none``;
- the ``keep_pruned`` best pruned trials (furthest epoch, then last val H-mean: the order
  ``sweeper rank`` lists them in) keep both files so they can be promoted, and so does a
  pruned trial whose promotion waits; other pruned trials keep nothing;
- running, waiting and failed trials keep everything (a failed one may be retried).

A folder holds one retry chain (:mod:`sweeper.paths`); the chain's latest trial decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage import retry_root, storage_of
from sweeper.attrs import PROMOTED_FROM_ATTR
from sweeper.define import StudySpec, study_key
from sweeper.paths import checkpoints_dir
from sweeper.rank import rank_study
from sweeper.text import human_bytes

log = logging.getLogger(__name__)

_RESUME_FILES = ("last.pt", "last.pt.tmp")
_RESULT_FILES = ("best.pt", "best.pt.tmp", "prob_maps.npz")


@dataclass(frozen=True)
class DiskUsage:
    """Bytes under a study's checkpoint folder, and how many trial folders hold what."""

    bytes: int
    folders: int
    last: int
    """Folders with a ``last.pt`` (resumable or promotable)."""
    best: int

    def describe(self) -> str:
        return (
            f"checkpoints: {human_bytes(self.bytes)} in {self.folders} trial folder(s) "
            f"({self.best} best.pt, {self.last} last.pt)"
        )


def checkpoint_usage(artifacts: Path, key: str) -> DiskUsage:
    """What study ``key``'s checkpoints take under ``artifacts`` (``sweeper status``)."""
    root = checkpoints_dir(artifacts, key)
    folders = [p for p in root.glob("trial-*") if p.is_dir()] if root.is_dir() else []
    size = sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file())
    return DiskUsage(
        bytes=size,
        folders=len(folders),
        last=sum((d / "last.pt").is_file() for d in folders),
        best=sum((d / "best.pt").is_file() for d in folders),
    )


def _latest_by_chain(trials: list[FrozenTrial]) -> dict[int, FrozenTrial]:
    latest: dict[int, FrozenTrial] = {}
    for t in trials:
        root = retry_root(t)
        if root not in latest or t.number > latest[root].number:
            latest[root] = t
    return latest


def _plan(study: optuna.Study, spec: StudySpec) -> dict[int, tuple[str, ...]]:
    """Chain root -> the files its folder may lose now."""
    r = spec.retention
    trials = study.get_trials(deepcopy=False)
    ranking = rank_study(study, spec)
    top = {c.number for c in ranking.completed[: r.top_k]} if r.top_k is not None else None
    awaited = {
        t.user_attrs[PROMOTED_FROM_ATTR]
        for t in trials
        if PROMOTED_FROM_ATTR in t.user_attrs and t.state == TrialState.WAITING
    }
    kept_pruned = {p.number for p in ranking.pruned[: r.keep_pruned]} | awaited
    plan: dict[int, tuple[str, ...]] = {}
    for root, t in _latest_by_chain(trials).items():
        if t.state == TrialState.COMPLETE:
            drop_all = top is not None and t.number not in top and r.outside_top == "none"
            plan[root] = _RESUME_FILES + (_RESULT_FILES if drop_all else ())
        elif t.state == TrialState.PRUNED and t.number not in kept_pruned:
            plan[root] = _RESUME_FILES + _RESULT_FILES
    return plan


def apply_retention(
    study: optuna.Study, spec: StudySpec, artifacts: Path, key: str | None = None
) -> int:
    """Delete the checkpoint files of ``study`` that can no longer be used; return the
    bytes freed.

    Example:
        >>> apply_retention(*load_study("demo", open_storage()), Path("art"))  # doctest: +SKIP
    """
    key = key or study_key(study.study_name, storage_of(study))
    folder = checkpoints_dir(artifacts, key)
    freed = 0
    for root, names in _plan(study, spec).items():
        for name in names:
            path = folder / f"trial-{root}" / name
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
    return freed


def retention_callback(
    spec: StudySpec, artifacts: Path, key: str
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """``study.optimize`` callback: apply the retention after every finished trial.

    A file system error is logged, never raised: keeping a file too long costs disk, not
    the worker.
    """

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        try:
            freed = apply_retention(study, spec, artifacts, key)
        except OSError as e:
            log.warning("retention after trial %d: %s", trial.number, e)
            return
        if freed:
            log.info("retention after trial %d freed %s", trial.number, human_bytes(freed))

    return callback
