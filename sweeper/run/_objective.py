"""One trial: sampled params -> TrainConfig -> fit -> report, prune, score, attributes.

The objective is the only place where Optuna meets the trainer: ``fit`` gets an
``on_epoch_end`` callback that reports val H-mean to Hyperband and stops the run when the
trial should be pruned.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact
from optuna_dashboard import save_note

from storage import outage_reason, retry_count, retry_root, set_trial_user_attrs
from sweeper.attrs import (
    CONFIG_OVERRIDES_ATTR,
    FAIL_REASON_ATTR,
    HOST_ATTR,
    INTERRUPTED_ATTR,
    OOM_RETRIES_ATTR,
    PROMOTED_FROM_ATTR,
    RESUME_REFUSED_ATTR,
    RESUMED_FROM_ATTR,
    TRACKING_RUNS_ATTR,
    VERIFY_OVERRIDE_KEYS,
    WORKER_ID_ATTR,
)
from sweeper.define import StudySpec, study_key, suggest_params, trial_config
from sweeper.errors import StudyError
from sweeper.paths import relative_to_artifacts, trial_checkpoints
from sweeper.run._checkpoints import (
    FILE_SYSTEM_WIDE,
    os_error_reason,
    resume_mismatch,
    seed_promoted_checkpoint,
)
from sweeper.run._cost import CostLedger
from sweeper.run._pictures import detections_png, learning_curve_png
from sweeper.run._tracking import RunInfo, TrackedRun, flatten, open_trackers
from sweeper.text import one_line
from sweeper.trial_result import TrialCost, TrialResult, own_cost, penalized_score
from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import TrainConfig, apply_overrides
from trainer_core.data import make_splits
from trainer_core.errors import ConfigError, DataError
from trainer_core.fit import EpochRecord, FitResult, fit
from trainer_core.precision import resolve_device
from trainer_core.run_state import resume_problem

log = logging.getLogger(__name__)


StatusFn = Callable[[dict[str, Any]], None]


class TrialFailed(Exception):
    """The trial cannot produce a score (non-finite loss, out of memory at batch 1, bad data)."""


class WillRepeat(TrialFailed):
    """A failure every trial on this worker would hit (bad data, a config that cannot run
    here, a full disk, an unusable artifacts directory): the worker stops instead of
    spending the budget."""


class DiskError(TrialFailed):
    """Writing one trial's files failed (a folder it cannot write); the reason names the
    path. A full or read-only file system is a :class:`WillRepeat` instead."""


class Interrupted(Exception):
    """A stop signal arrived mid-trial; the trial is re-queued to resume elsewhere."""


@dataclass
class WorkerContext:
    """What one worker process knows about itself; shared by all the trials it runs."""

    study_name: str
    artifacts: Path
    worker_id: str
    data_root: Path | None = None
    device: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    on_status: StatusFn | None = None
    study_key: str | None = None
    """The study's folder under ``artifacts`` (:func:`sweeper.define.study_key`); the worker
    fills it in once when it is None."""
    devices: float = 1.0
    """The devices this worker's slot holds: 1 for a GPU or a CPU process, 1/K for one of
    K processes sharing a GPU. A trial's device-seconds are its wall time times this."""
    storage_link: str | None = None
    """The storage URL with its password masked, for the trackers' link back."""

    @property
    def host(self) -> str:
        return socket.gethostname()

    def status(self, **event: Any) -> None:
        if self.on_status is not None:
            self.on_status(event)


def trial_result(result: FitResult, spec: StudySpec, artifacts: Path) -> TrialResult:
    """What ``fit`` produced, as the trial stores it; the score uses the spec's ranking."""
    facts = TrialResult(
        stop_reason=result.reason,
        epochs_run=result.epochs_run,
        images_per_s=round(result.images_per_s, 2),
        peak_memory_mb=round(result.peak_memory_mb, 1),
        device=result.device,
        precision=result.precision,
        batch_size=result.batch_size,
        checkpoint_dir=relative_to_artifacts(result.checkpoint_dir, artifacts),
    )
    best, gap, on_gap = result.best, result.gap, result.gap_metrics
    if best is None or gap is None or on_gap is None:
        return facts  # stopped before its first validation
    return replace(
        facts,
        val_precision=best.precision,
        val_recall=best.recall,
        val_hmean=best.hmean,
        gap_split=result.gap_split,
        gap_precision=on_gap.precision,
        gap_recall=on_gap.recall,
        gap_hmean=on_gap.hmean,
        gap=gap,
        score=penalized_score(best.hmean, gap, spec.ranking.penalty, spec.ranking.tolerance),
        best_epoch=result.best_epoch,
    )


def _verify_overrides(overrides: object) -> dict[str, Any]:
    """A trial's stored config overrides, if they set only what ``sweeper verify`` varies.

    A stored attribute must not move a trial's data, weights or output (anyone who can write
    attributes could point a worker at any file), so other keys are refused.

    Raises:
        ConfigError: the overrides set anything else.
    """
    allowed = ", ".join(VERIFY_OVERRIDE_KEYS)
    if not isinstance(overrides, dict):
        raise ConfigError(f"{CONFIG_OVERRIDES_ATTR}: expected a mapping of {allowed}")
    others = [str(k) for k in overrides if k not in VERIFY_OVERRIDE_KEYS]
    if others:
        raise ConfigError(
            f"{CONFIG_OVERRIDES_ATTR}: may set only {allowed}; not {', '.join(others)}"
        )
    return overrides


@dataclass
class _Attempt:
    """What one call of the objective keeps about its trial as it goes."""

    ledger: CostLedger
    run: TrackedRun | None = None
    recorded: TrialResult = field(default_factory=TrialResult)
    pruned: bool = False
    stored_ids: dict[str, str] = field(default_factory=dict)


class Objective:
    """Callable for ``study.optimize``: trains one trial and returns its score."""

    def __init__(self, spec: StudySpec, ctx: WorkerContext, artifact_store: Any) -> None:
        self.spec = spec
        self.ctx = ctx
        self.artifact_store = artifact_store

    def __call__(self, trial: optuna.Trial) -> float:
        """Train ``trial``; whatever happens, its cost ledger is written and its tracker
        runs are closed with the state it ends in."""
        attempt = _Attempt(CostLedger(trial.number, self.ctx.devices))
        state = "FAIL"
        try:
            score = self._train(trial, attempt)
            state = "COMPLETE"
            return score
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except Interrupted:
            state = "INTERRUPTED"  # re-queued: the retry continues its tracker runs
            raise
        finally:
            self._settle(trial, attempt, state)

    def _train(self, trial: optuna.Trial, attempt: _Attempt) -> float:
        ctx, ledger = self.ctx, attempt.ledger
        set_trial_user_attrs(trial, {HOST_ATTR: ctx.host, WORKER_ID_ATTR: ctx.worker_id})
        try:
            params = suggest_params(trial, self.spec)
            cfg = trial_config(self.spec, params, ctx.data_root, ctx.device)
            if overrides := trial.user_attrs.get(CONFIG_OVERRIDES_ATTR):  # a verify re-run
                cfg = apply_overrides(cfg, _verify_overrides(overrides))
            ledger.on_device(resolve_device(cfg.device))
        except ConfigError as e:
            raise self._fail(trial, f"bad config: {e}") from e
        out_dir = trial_checkpoints(ctx.artifacts, self._study_key(trial), retry_root(trial))
        cfg = cfg.model_copy(update={"output_dir": out_dir})
        promoted = PROMOTED_FROM_ATTR in trial.user_attrs
        if promoted:
            self._seed_promoted(trial, out_dir)
        attempt.run = self._open_tracking(trial, cfg, promoted)
        ctx.status(event="trial", trial=trial.number, params=trial.params)

        def on_epoch_end(epoch: int, record: EpochRecord) -> bool:
            trial.report(record.hmean, epoch)
            ctx.status(event="epoch", trial=trial.number, epoch=epoch, hmean=record.hmean)
            ledger.epoch(record)
            if attempt.run is not None:
                attempt.run.log_epoch(record)
            self._write_cost(trial, attempt, every_s=True)
            # A trial that trained all its epochs is complete, and a promoted one was
            # promoted to finish: neither is pruned.
            attempt.pruned = not promoted and epoch < cfg.epochs and trial.should_prune()
            return attempt.pruned

        def on_step(index: int, total: int, loss: float) -> None:
            if ctx.stop.is_set():
                raise Interrupted("stop signal")

        result = self._fit_with_oom_retries(trial, cfg, on_epoch_end, on_step, ledger)
        if result.failed:
            raise self._fail(trial, result.reason)
        score = self._record(trial, result, attempt)
        if attempt.pruned:
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs_run}")
        if result.status == "completed" or result.status == "early_stopped":
            self._upload_pictures(trial, cfg, result)
        return score

    def _open_tracking(
        self, trial: optuna.Trial, cfg: TrainConfig, promoted: bool
    ) -> TrackedRun | None:
        """The trial's run in the spec's trackers, continuing its chain's where it has one."""
        backends = open_trackers(self.spec.tracking, self.ctx.artifacts)
        if not backends:
            return None
        root = retry_root(trial)
        tags = (("retried",) if retry_count(trial) else ()) + (("promoted",) if promoted else ())
        info = RunInfo(
            name=f"{self.spec.name}/trial-{root}",
            group=self.spec.name,
            params=flatten(cfg.model_dump(mode="json")),
            link={
                "study": self.spec.name,
                "trial": trial.number,
                "chain": root,
                "storage": self.ctx.storage_link,
            },
            tags=tags,
        )
        assert self.spec.tracking is not None  # backends came from it
        run = TrackedRun(backends, info, self.spec.tracking.timeout_s)
        run.start(trial.user_attrs.get(TRACKING_RUNS_ATTR) or {})
        return run

    def _write_cost(
        self,
        trial: optuna.Trial,
        attempt: _Attempt,
        every_s: bool = False,
        cost: TrialCost | None = None,
    ) -> None:
        """Store the ledger so far (or ``cost``) and any tracker run id that is new (one
        transaction); with ``every_s``, only when an id is new or the ledger's write is due."""
        ledger = attempt.ledger
        ids = attempt.run.run_ids() if attempt.run is not None else {}
        new_ids = bool(ids) and ids != attempt.stored_ids
        if every_s and not new_ids and not ledger.due():
            return
        attrs = TrialResult(cost=cost or ledger.cost()).to_attrs()
        if new_ids:
            attrs[TRACKING_RUNS_ATTR] = attempt.stored_ids = ids
        set_trial_user_attrs(trial, attrs)
        ledger.written = time.perf_counter()

    def _settle(self, trial: optuna.Trial, attempt: _Attempt, state: str) -> None:
        """The attempt's last ledger write and its tracker runs' summary. Never raises: the
        trial's own outcome (or the storage outage that ended it) is what the worker sees.

        The trackers finish first: a run id that arrived late (a slow MLflow server, a
        trial stopped early) is then stored with the last ledger write, so the retry
        continues that run instead of opening a second one. Both get the cost as of the
        attempt's end, so the trackers' summary and the ledger agree."""
        cost = attempt.ledger.cost()
        if attempt.run is not None:
            self._finish_run(attempt, state, cost)
        try:
            self._write_cost(trial, attempt, cost=cost)
        except Exception as e:  # the storage went away: the earlier writes stay
            reason = outage_reason(e) or one_line(e, 300)  # the cause, not Optuna's wrapper
            log.warning("trial %d: its cost could not be written (%s)", trial.number, reason)

    def _finish_run(self, attempt: _Attempt, state: str, cost: TrialCost) -> None:
        """Close the attempt's tracker runs with the result and ``cost`` as their summary."""
        assert attempt.run is not None
        summary = {k: v for k, v in attempt.recorded.to_attrs().items() if k != "cost"}
        summary |= {
            "gpu_hours": round(cost.device_s / 3600, 6),
            "training_device_s": cost.training_device_s,
            "evaluation_device_s": cost.evaluation_device_s,
            "overhead_device_s": cost.overhead_device_s,
            "utilization_pct": cost.utilization_pct,
            "gpu_peak_memory_mb": cost.peak_memory_mb,
        }
        tags = ["pruned"] if state == "PRUNED" else []
        attempt.run.finish(summary, tags, state)

    def _study_key(self, trial: optuna.Trial) -> str:
        """The study's folder name, read from the storage once per process at most."""
        if self.ctx.study_key is None:
            self.ctx.study_key = study_key(trial.study.study_name, trial.storage)
        return self.ctx.study_key

    def _fit_with_oom_retries(
        self,
        trial: optuna.Trial,
        cfg: TrainConfig,
        on_epoch_end: Callable[[int, EpochRecord], bool],
        on_step: Callable[[int, int, float], None],
        ledger: CostLedger,
    ) -> FitResult:
        """Fit, resuming from the trial's checkpoint; out of memory halves the batch.

        The retry keeps the effective batch (batch x accumulation) and resumes from
        ``last.pt``, down to batch 1 before giving up. Every call's time goes on ``ledger``.
        """
        while True:
            last = cfg.output_dir / "last.pt"
            resume = last.exists() and self._may_resume(trial, cfg, last)
            if resume:
                self._report_checkpointed_epochs(trial, last)
            try:
                result = fit(
                    cfg,
                    on_epoch_end=on_epoch_end,
                    on_step=on_step,
                    resume=resume,
                    timing=ledger.timing,
                )
            except DataError as e:
                raise self._fail(trial, f"bad data: {e}", WillRepeat) from e
            except ConfigError as e:
                raise self._fail(trial, f"bad config: {e}", WillRepeat) from e
            except OSError as e:
                # A full disk fails every next trial too: the worker stops (WillRepeat).
                kind = WillRepeat if e.errno in FILE_SYSTEM_WIDE else DiskError
                raise self._fail(trial, os_error_reason(e), kind) from e
            except Interrupted:
                trial.set_user_attr(INTERRUPTED_ATTR, True)
                raise
            ledger.fitted(result)
            oom = result.failed and result.reason.startswith("out of memory")
            if not oom or cfg.batch_size == 1:
                return result
            smaller = {
                "batch_size": cfg.batch_size // 2,
                "grad_accum_steps": cfg.grad_accum_steps * 2,
            }
            log.warning("trial %d: %s; retrying with %s", trial.number, result.reason, smaller)
            trial.set_user_attr(OOM_RETRIES_ATTR, trial.user_attrs.get(OOM_RETRIES_ATTR, 0) + 1)
            cfg = cfg.model_copy(update=smaller)

    def _may_resume(self, trial: optuna.Trial, cfg: TrainConfig, last: Path) -> bool:
        """False (and the trial trains from scratch) for a checkpoint of another config."""
        state = load_checkpoint(last)
        why = resume_problem(state) or resume_mismatch(cfg, state)
        if why is None:
            return True
        log.warning("trial %d: not resuming %s: %s; training from scratch", trial.number, last, why)
        trial.set_user_attr(RESUME_REFUSED_ATTR, f"{last}: {why}")
        return False

    def _report_checkpointed_epochs(self, trial: optuna.Trial, last: Path) -> None:
        """A resumed trial reports the epochs its checkpoint already holds, so the pruner
        sees the whole curve even where the retried trial died before reporting."""
        state = load_checkpoint(last)
        log.info("trial %d resumes from %s (epoch %d)", trial.number, last, state["epoch"])
        trial.set_user_attr(RESUMED_FROM_ATTR, state["epoch"])
        with warnings.catch_warnings():
            # Steps the retry inherited are already there; optuna ignores them with a warning.
            warnings.simplefilter("ignore", UserWarning)
            for record in state["history"]:
                if record["hmean"] is not None:
                    trial.report(record["hmean"], record["epoch"])

    def _seed_promoted(self, trial: optuna.Trial, out_dir: Path) -> None:
        """A promoted trial starts from the last checkpoint of the pruned trial it continues."""
        try:
            copied = seed_promoted_checkpoint(trial.user_attrs, self.ctx.artifacts, out_dir)
        except (OSError, StudyError) as e:
            raise self._fail(trial, f"cannot continue the promoted trial: {e}") from e
        if copied:
            log.info(
                "trial %d continues pruned trial %d from its checkpoint",
                trial.number,
                trial.user_attrs[PROMOTED_FROM_ATTR],
            )

    def _fail(
        self, trial: optuna.Trial, reason: str, kind: type[TrialFailed] = TrialFailed
    ) -> TrialFailed:
        trial.set_user_attr(FAIL_REASON_ATTR, reason)
        self.ctx.status(event="failed", trial=trial.number, reason=reason)
        return kind(reason)

    def _record(self, trial: optuna.Trial, result: FitResult, attempt: _Attempt) -> float:
        """Store the trial's :class:`TrialResult` with its cost so far (one transaction) and
        its dashboard note, which shows its retry chain's cost; return its score."""
        recorded = replace(
            trial_result(result, self.spec, self.ctx.artifacts), cost=attempt.ledger.cost()
        )
        attempt.recorded = recorded
        set_trial_user_attrs(trial, recorded.to_attrs())
        save_note(trial, recorded.note(self._chain_cost(trial, recorded.cost)))
        return float("nan") if recorded.score is None else recorded.score

    def _chain_cost(self, trial: optuna.Trial, own: TrialCost | None) -> TrialCost | None:
        """What the trial's retry chain spent before it, plus ``own``; None for a trial
        that is no retry (its own cost is the chain's)."""
        if own is None or not retry_count(trial):
            return None
        root = retry_root(trial)
        earlier = [
            c
            for t in trial.study.get_trials(deepcopy=False)
            if t.number != trial.number
            and retry_root(t) == root
            and (c := own_cost(t.number, t.user_attrs)) is not None
        ]
        return sum(earlier, start=TrialCost.zero()) + own

    def _upload_pictures(self, trial: optuna.Trial, cfg: TrainConfig, result: FitResult) -> None:
        """Detections on a few val images and the learning curve, into the artifact store."""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                curve = learning_curve_png(
                    result.history, Path(tmp) / "learning_curve.png", f"trial {trial.number}"
                )
                upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(curve), study_or_trial=trial
                )
                if result.val_predictions is not None:
                    val = make_splits(cfg.data).val
                    png = detections_png(
                        val, result.val_predictions, Path(tmp) / "val_detections.png"
                    )
                    upload_artifact(
                        artifact_store=self.artifact_store, file_path=str(png), study_or_trial=trial
                    )
        except (OSError, ValueError) as e:  # pictures are a courtesy; never fail a trial
            log.warning("trial %d: could not upload pictures (%s)", trial.number, e)
