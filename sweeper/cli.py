"""The ``sweeper`` command line: thin commands over the library, rich output.

Each command parses its arguments, calls one library function and prints the result.
Errors from bad input (a missing file, an invalid spec, an unreachable database, an
unknown study) print one line on stderr and exit 2; ``--debug`` adds the traceback.
A new command is one decorated function::

    @command("rank")
    def rank(study: StudyArg, storage: StorageOption = None) -> None:
        out.print(rank_table(study, open_storage(storage)))
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import optuna
import typer
import yaml
from rich.console import Console

from storage import (
    STORAGE_WAIT_S,
    HeartbeatSettings,
    StorageError,
    open_storage,
    optuna_version_problem,
    redact,
    resolve_url,
)
from sweeper.define import (
    StudySpec,
    create_study,
    delete_sweep,
    load_spec,
    load_study,
    study_key,
    tracking_from_flags,
)
from sweeper.errors import EXIT_BAD_INPUT, EXIT_FAILED, OptionError, SpecError, StudyError
from sweeper.paths import DEFAULT_ARTIFACTS
from sweeper.rank import Rule, list_studies, study_status
from sweeper.text import human_bytes, one_line
from sweeper.trial_result import TrialResult
from sweeper.view import Format, ReplayFormat, print_replay, print_status, print_studies

if TYPE_CHECKING:
    from sweeper.after import ModelSource
from trainer_core.errors import ConfigError, DataError

__all__ = ["BAD_INPUT", "EXIT_BAD_INPUT", "EXIT_FAILED", "app", "command", "main"]

BAD_INPUT: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    OptionError,
    SpecError,
    StudyError,
    StorageError,
    FileNotFoundError,
    yaml.YAMLError,
)
"""Errors that mean the user gave something unusable: one line, exit 2."""

app = typer.Typer(
    name="sweeper",
    help="Hyperparameter sweeps for DBNet text detectors: Optuna + Hyperband on a shared DB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="storage URL, e.g. postgresql://user@host/db; default: $SWEEPER_STORAGE, "
        "else sqlite:///sweeps.db (prefer the variable for URLs with passwords)",
        show_default=False,
    ),
]
StudyArg = Annotated[str, typer.Argument(metavar="STUDY", help="study name")]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="where this node mounts the spec's relative data paths"),
]

ArtifactsOption = Annotated[
    Path,
    typer.Option(
        "--artifacts", help="checkpoints, pictures and logs of the workers (shared by nodes)"
    ),
]
SortOption = Annotated[
    Rule | None,
    typer.Option(
        "--by",
        help="score (penalized), val, holdout, or mean (of val and holdout H-mean); "
        "default: the spec's ranking.rule",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])
HostOption = Annotated[
    str, typer.Option("--host", help="address to listen on; it has no login: keep it private")
]
PortOption = Annotated[int, typer.Option("--port", help="port to listen on")]

FLAG = ""
"""The metavar of an on/off option: it takes no value, and typer would show ``<bool>``."""

# Set by the root callback on every invocation, read when an error is reported.
_debug: ContextVar[bool] = ContextVar("sweeper_debug", default=False)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", metavar=FLAG, help="show tracebacks of errors")
    ] = False,
) -> None:
    _debug.set(debug)
    if problem := optuna_version_problem():
        err.print(f"warning: {problem}", markup=False, soft_wrap=True)
    # Optuna logs "A new study created ..." at INFO on stderr; the commands say it better.
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def command(name: str, **kwargs: Any) -> Callable[[F], F]:
    """Register a CLI command whose project errors print as one line (exit 2, or 1).

    Args:
        name: the command's name on the command line.
        **kwargs: passed on to ``typer.Typer.command`` (help=..., hidden=...).
    """

    def register(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except BAD_INPUT as e:
                _fail(e, EXIT_BAD_INPUT)
            except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
                raise
            except Exception as e:
                _fail(e, EXIT_FAILED, unexpected=True)

        app.command(name, **kwargs)(run)
        return fn

    return register


def _fail(e: BaseException, code: int, unexpected: bool = False) -> None:
    """Print ``e`` as one line (with the traceback under --debug) and exit with ``code``."""
    debug = _debug.get()
    if debug:
        traceback.print_exception(e, file=sys.stderr)
    text = one_line(e)
    if unexpected:
        text = f"unexpected {type(e).__name__}: {text}"
        if not debug:
            text += " (--debug shows the traceback)"
    err.print(f"error: {text}", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _storage_flag(url: str | None) -> str:
    """``--storage URL`` for a suggested command (password masked), or nothing."""
    return f" --storage '{redact(url)}'" if url else ""


@command("create-study")
def create_study_cmd(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC.yaml", help="study spec, e.g. studies/demo.yaml")
    ],
    storage: StorageOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="study name (default: the spec's name)")
    ] = None,
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok", metavar=FLAG, help="reuse a study of this name if its spec is identical"
        ),
    ] = False,
    data_root: DataRootOption = None,
    skip_check: Annotated[
        bool,
        typer.Option(
            "--skip-check",
            metavar=FLAG,
            help="do not build the backbone or read the data first (faster)",
        ),
    ] = False,
) -> None:
    """Validate a study spec, check it (sweeper check), create the study, queue its baselines."""
    spec = load_spec(spec_path)
    if name is not None:
        spec = spec.renamed(name)
    for warning in spec.warnings():
        err.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)
    if not skip_check:
        _print_check(spec, data_root)
    url = resolve_url(storage)
    study = create_study(spec, open_storage(url), exist_ok=exist_ok)
    out.print(
        f"study {study.study_name} ready in {redact(url)}: "
        f"search space {', '.join(spec.search_space)}; baselines queued: {len(spec.baselines)}; "
        f"budget: {spec.budget.describe()}",
        markup=False,
        soft_wrap=True,
    )
    out.print(spec.describe_pruning(), markup=False, soft_wrap=True)
    flag = _storage_flag(storage)
    out.print("next:", markup=False)
    out.print(f"  sweeper worker --study {study.study_name}{flag}", markup=False, soft_wrap=True)
    out.print(f"  sweeper status {study.study_name}{flag}", markup=False, soft_wrap=True)
    # Not optuna-dashboard URL: it misses the pictures (the artifact store), and reads a
    # bare postgresql:// as psycopg 3, which is not installed.
    out.print(f"  sweeper dashboard{flag}", markup=False, soft_wrap=True)


@command("check")
def check_cmd(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC.yaml", help="study spec, e.g. studies/demo.yaml")
    ],
    data_root: DataRootOption = None,
) -> None:
    """Check a spec where it will run: the backbone builds, the data reads and decodes."""
    _print_check(load_spec(spec_path), data_root)


def _print_check(spec: StudySpec, data_root: Path | None) -> None:
    from sweeper.define import check_spec  # builds a model: torch loads only here

    for line in check_spec(spec, data_root):
        out.print(f"checked: {line}", markup=False, soft_wrap=True)


@command("studies")
def studies_cmd(storage: StorageOption = None) -> None:
    """List the studies in a storage with their trial counts."""
    url = resolve_url(storage)
    print_studies(list_studies(open_storage(url, create=False)), url, out)


@command("status")
def status_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Show one study: trials by state, the best so far, the running trials, its disk."""
    from sweeper.run import checkpoint_usage

    url = resolve_url(storage)
    storage_obj = open_storage(url, create=False)
    status = study_status(study, storage_obj)
    usage = checkpoint_usage(artifacts, study_key(study, storage_obj))
    print_status(status, url, f"{usage.describe()} under {artifacts}", out)


@command("delete-study")
def delete_study_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", metavar=FLAG, help="really delete it and all its trials")
    ] = False,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Delete a study, all its trials, and its checkpoints and logs under --artifacts.

    The studies made from it go too: its verify study and its post-processing searches.
    """
    if not yes:
        raise StudyError(
            f"deleting study {study!r} removes all its trials, checkpoints and logs, and its "
            "verify and post-processing studies; pass --yes to do it"
        )
    url = resolve_url(storage)
    linked, freed = delete_sweep(study, open_storage(url, create=False), artifacts)
    also = f" and the studies made from it ({', '.join(linked)})" if linked else ""
    out.print(
        f"deleted study {study}{also} from {redact(url)}; removed their checkpoints, logs "
        f"and pictures under {artifacts} ({human_bytes(freed)})",
        markup=False,
        soft_wrap=True,
    )


@command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="a train config")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a field by dotted path, e.g. optimizer.lr=3e-4"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", metavar=FLAG, help="continue from OUT/last.pt")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output directory (default: the config's)")
    ] = None,
    track: Annotated[
        list[str] | None,
        typer.Option(
            "--track",
            help="report to wandb[:PROJECT], mlflow[:TRACKING_URI] or tensorboard[:LOG_DIR]",
        ),
    ] = None,
) -> None:
    """Train one model without a study: the "retrain the winner" step."""
    from sweeper.run import run_training  # torch loads only for commands that train

    tracking = tracking_from_flags(track or [])
    result = run_training(
        config, overrides, resume=resume, out=out_dir, console=out, tracking=tracking
    )
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


@command("worker")
def worker_cmd(
    study: Annotated[str, typer.Option("--study", help="study to work on")],
    storage: StorageOption = None,
    gpus: Annotated[
        str, typer.Option("--gpus", help="auto (every visible GPU, else CPU), cpu, or 0,1,3")
    ] = "auto",
    procs: Annotated[
        int | None, typer.Option("--procs", help="CPU processes when no GPU is used (default 1)")
    ] = None,
    procs_per_gpu: Annotated[
        int, typer.Option("--procs-per-gpu", help="processes per GPU, for small models")
    ] = 1,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", help="trials per process at most")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="seconds after which no trial starts")
    ] = None,
    data_root: DataRootOption = None,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
    heartbeat_interval: Annotated[
        int, typer.Option("--heartbeat-interval", help="seconds between trial heartbeats")
    ] = HeartbeatSettings.interval,
    grace_period: Annotated[
        int, typer.Option("--grace-period", help="seconds of silence before a trial is dead")
    ] = HeartbeatSettings.grace_period,
    storage_wait: Annotated[
        float,
        typer.Option(
            "--storage-wait",
            min=0,
            help="seconds a worker waits out an unreachable database (retrying with backoff) "
            "before it stops",
        ),
    ] = STORAGE_WAIT_S,
) -> None:
    """Run trials on this node: one process per GPU, until the study's budget is spent."""
    from sweeper.run import WorkerLimits, run_node

    code = run_node(
        study,
        resolve_url(storage),
        gpus=gpus,
        procs=procs,
        procs_per_gpu=procs_per_gpu,
        limits=WorkerLimits(n_trials, timeout, storage_wait),
        data_root=data_root,
        artifacts=artifacts,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        console=err,
    )
    raise typer.Exit(code)


@command("rank")
def rank_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    top: Annotated[int, typer.Option("--top", help="completed trials to show")] = 10,
    penalty: Annotated[
        float | None, typer.Option("--penalty", help="override the spec's ranking.penalty")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option("--tolerance", help="override the spec's ranking.tolerance")
    ] = None,
    by: SortOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json")] = "table",
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", metavar=FLAG, help="every column, however wide (default: what fits)"
        ),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="also draw val vs holdout H-mean to this PNG (and the study's artifacts)"
        ),
    ] = None,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Completed trials by penalized score; then the pruned (with their epoch) and the failed."""
    from sweeper.view import show_rank

    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    show_rank(
        study_obj,
        spec,
        out,
        by=by,
        penalty=penalty,
        tolerance=tolerance,
        fmt=fmt,
        top=top,
        wide=wide,
        plot=plot,
        artifacts=artifacts,
    )
    if plot is not None:
        err.print(f"picture: {plot} (uploaded to the study's artifacts in {artifacts})")


@command("replay")
def replay_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    pruner: Annotated[
        list[str] | None,
        typer.Option(
            "--pruner",
            help="hyperband, successive_halving, median, first_rung, schedule_aware or none; "
            "repeat for several (default: all)",
            show_default=False,
        ),
    ] = None,
    min_resource: Annotated[
        int | None, typer.Option("--min-resource", help="first rung, in epochs (default: spec's)")
    ] = None,
    reduction_factor: Annotated[
        int | None,
        typer.Option("--reduction-factor", help="keep 1 of this many a rung (default: spec's)"),
    ] = None,
    orders: Annotated[int, typer.Option("--orders", help="random trial orders a setting")] = 200,
    fmt: Annotated[ReplayFormat, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Would a pruner have cut the winner? Replays the study's complete curves; trains nothing."""
    from sweeper.rank import POLICIES, replay_study

    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    result = replay_study(
        study_obj,
        spec,
        pruner or list(POLICIES),
        min_resource=min_resource,
        reduction_factor=reduction_factor,
        orders=orders,
    )
    print_replay(result, out, fmt)


@command("export-best")
def export_best_cmd(
    study: StudyArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="YAML file to write")],
    storage: StorageOption = None,
    by: SortOption = None,
) -> None:
    """Write the winning trial's full train config, ready for ``sweeper train``."""
    from sweeper.rank import export_best

    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    trial = export_best(study_obj, spec, output, by=by)
    out.print(
        f"trial {trial.number} (score {TrialResult.from_attrs(trial.user_attrs).score:.4f}) "
        f"-> {output}; "
        f"retrain: sweeper train {output}",
        markup=False,
        soft_wrap=True,
    )


@command("promote")
def promote_cmd(
    study: StudyArg,
    trial: Annotated[int, typer.Argument(metavar="TRIAL", help="number of a pruned trial")],
    storage: StorageOption = None,
) -> None:
    """Finish a pruned trial: enqueue it to train its full epochs from its last checkpoint."""
    from sweeper.after import promote_trial

    study_obj, spec = load_study(study, open_storage(resolve_url(storage)))
    new = promote_trial(study_obj, trial)
    out.print(
        f"trial {trial} promoted: trial {new.number} will resume it from its last checkpoint "
        f"and train to epoch {spec.base.epochs}, unpruned; a worker of study {study} "
        f"(with the same --artifacts) picks it up: sweeper worker --study {study}"
        f"{_storage_flag(storage)}",
        markup=False,
        soft_wrap=True,
    )


@command("tune-postprocess")
def tune_postprocess_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    trial: Annotated[
        int | None, typer.Option("--trial", help="the completed trial to tune")
    ] = None,
    top: Annotated[
        int | None, typer.Option("--top", help="tune the top K completed trials instead")
    ] = None,
    n_trials: Annotated[
        int | None,
        typer.Option("--n-trials", help="search trials (default: the spec's postprocess_search)"),
    ] = None,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="where this node mounts the spec's relative data paths"),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="for the one inference pass (default: auto)")
    ] = None,
) -> None:
    """Search a trial's post-processing thresholds on its cached probability maps."""
    from sweeper.after import pick_trials, tune_postprocess
    from sweeper.view import print_tuned

    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    for number in pick_trials(study_obj, spec, trial, top):
        tuned, cached = tune_postprocess(
            study_obj,
            spec,
            number,
            artifacts=artifacts,
            n_trials=n_trials,
            data_root=data_root,
            device=device,
        )
        print_tuned(number, tuned, cached, out)
    out.print(
        f"stored on study {study}; sweeper rank marks tuned trials, export-best writes them",
        markup=False,
        soft_wrap=True,
    )


@command("verify")
def verify_cmd(
    study: StudyArg,
    top: Annotated[int, typer.Option("--top", help="how many of the best configs to re-run")],
    storage: StorageOption = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="re-runs with this many other seeds (default 3)")
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option("--folds", help="instead: one re-run on each of N folds of non-holdout data"),
    ] = None,
) -> None:
    """Enqueue re-runs of the top-K configs into STUDY.verify, for any sweeper worker."""
    from sweeper.after import enqueue_verify

    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    done = enqueue_verify(study_obj, spec, top=top, seeds=seeds, folds=folds)
    out.print(
        f"study {done.study}: {done.added} re-run(s) enqueued of trial(s) "
        f"{', '.join(map(str, done.configs))} ({done.already} already there); run them with "
        f"sweeper worker --study {done.study}{_storage_flag(storage)}, then "
        f"sweeper rank {done.study}",
        markup=False,
        soft_wrap=True,
    )


ModelStudyArg = Annotated[
    str | None,
    typer.Argument(
        metavar="[STUDY]", help="the sweep (or name the model with --checkpoint / --ensemble)"
    ),
]
ImagesOption = Annotated[Path, typer.Option("--images", help="folder of jpg/png images")]
ModelTrialOption = Annotated[
    int | None, typer.Option("--trial", help="this completed trial (default: the best)")
]
BestOption = Annotated[
    bool, typer.Option("--best", metavar=FLAG, help="the best trial by the spec's rule")
]
CheckpointOption = Annotated[
    Path | None, typer.Option("--checkpoint", help="a best.pt/last.pt instead of a study")
]
EnsembleOption = Annotated[
    str | None,
    typer.Option(
        "--ensemble",
        help="average the re-runs in STUDY.verify (of --trial N, default the winner by mean)",
    ),
]
EnsembleTopOption = Annotated[
    int | None, typer.Option("--ensemble-top", help="average the top K trials of STUDY")
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")]
BatchOption = Annotated[int, typer.Option("--batch", help="images per forward pass")]
PostprocessSetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="override the post-processing, e.g. postprocess.thresh=0.25"),
]
DetectionFormat = Literal["ufo", "icdar", "csv"]


def _model_source(
    study: str | None,
    trial: int | None,
    best: bool,
    checkpoint: Path | None,
    ensemble: str | None,
    top: int | None,
    storage: str | None,
    artifacts: Path,
    sets: list[str] | None,
) -> ModelSource:
    """The model options of predict and evaluate, as one value."""
    from sweeper.after import ModelSource

    return ModelSource(
        study, trial, best, checkpoint, ensemble, top, storage, artifacts, tuple(sets or ())
    )


@command("predict")
def predict_cmd(
    images: ImagesOption,
    output: Annotated[Path, typer.Option("-o", "--output", help="file (ufo, csv) or folder")],
    study: ModelStudyArg = None,
    trial: ModelTrialOption = None,
    best: BestOption = False,
    checkpoint: CheckpointOption = None,
    ensemble: EnsembleOption = None,
    ensemble_top: EnsembleTopOption = None,
    fmt: Annotated[DetectionFormat, typer.Option("--format", help="ufo, icdar or csv")] = "ufo",
    device: DeviceOption = "auto",
    batch: BatchOption = 1,
    sets: PostprocessSetOption = None,
    storage: StorageOption = None,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Detect text on a folder of images with a trial, a checkpoint or an ensemble."""
    from sweeper.after import predict_folder
    from sweeper.view import image_progress, print_prediction

    source = _model_source(
        study, trial, best, checkpoint, ensemble, ensemble_top, storage, artifacts, sets
    )
    with image_progress(err) as (on_start, on_image):
        done = predict_folder(
            source, images, output, fmt=fmt, device=device, batch=batch,
            on_start=on_start, on_image=on_image,
        )  # fmt: skip
    print_prediction(done, out)


@command("evaluate")
def evaluate_cmd(
    images: ImagesOption,
    annotations: Annotated[
        Path, typer.Option("--annotations", help="UFO/CSV file or folder of ICDAR files")
    ],
    study: ModelStudyArg = None,
    trial: ModelTrialOption = None,
    best: BestOption = False,
    checkpoint: CheckpointOption = None,
    ensemble: EnsembleOption = None,
    ensemble_top: EnsembleTopOption = None,
    fmt: Annotated[
        DetectionFormat, typer.Option("--format", help="the annotations': ufo, icdar or csv")
    ] = "ufo",
    device: DeviceOption = "auto",
    batch: BatchOption = 1,
    sets: PostprocessSetOption = None,
    storage: StorageOption = None,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """Precision, recall and H-mean of a trial, checkpoint or ensemble on labelled images."""
    from sweeper.after import evaluate_folder
    from sweeper.view import image_progress, print_evaluation

    source = _model_source(
        study, trial, best, checkpoint, ensemble, ensemble_top, storage, artifacts, sets
    )
    with image_progress(err) as (on_start, on_image):
        done = evaluate_folder(
            source, images, annotations, fmt=fmt, device=device, batch=batch,
            on_start=on_start, on_image=on_image,
        )  # fmt: skip
    print_evaluation(done, out)


@command("record-test")
def record_test_cmd(
    study: StudyArg,
    trial: Annotated[int, typer.Argument(metavar="TRIAL", help="number of a completed trial")],
    hmean: Annotated[float, typer.Option("--hmean", help="H-mean, in 0..1 or percent")],
    precision: Annotated[float | None, typer.Option("--precision", help="same scale")] = None,
    recall: Annotated[float | None, typer.Option("--recall", help="same scale")] = None,
    label: Annotated[
        str, typer.Option("--label", help='what scored it, e.g. "LB public"')
    ] = "test",
    storage: StorageOption = None,
) -> None:
    """Keep a test or leaderboard score of a trial; rank shows it beside val and holdout."""
    from sweeper.after import record_test
    from sweeper.view import print_recorded

    study_obj, _ = load_study(study, open_storage(resolve_url(storage), create=False))
    done = record_test(study_obj, trial, hmean, precision=precision, recall=recall, label=label)
    print_recorded(done, study, out)


@command("dashboard")
def dashboard_cmd(
    storage: StorageOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    artifacts: ArtifactsOption = DEFAULT_ARTIFACTS,
) -> None:
    """optuna-dashboard on the storage, with the trials' pictures."""
    from sweeper.view import run_dashboard

    run_dashboard(storage, host, port, artifacts)


@command("demo")
def demo_cmd(
    directory: Annotated[
        Path, typer.Option("--dir", help="where the demo keeps everything it makes")
    ] = Path("sweeper-demo"),
    procs: Annotated[int, typer.Option("--procs", help="CPU processes when there is no GPU")] = 2,
    gpus: Annotated[str, typer.Option("--gpus", help="auto, cpu, or 0,1,3")] = "auto",
) -> None:
    """The main job: generate data, create the demo study, sweep it here, rank it."""
    from sweeper.demo import run_demo

    raise typer.Exit(run_demo(directory, procs=procs, gpus=gpus, console=out))


@command("storage-proxy")
def storage_proxy_cmd(
    storage: StorageOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 13000,
) -> None:
    """Optuna's gRPC storage proxy in front of the database; workers use grpc://HOST:PORT."""
    from storage import run_proxy

    err.print(f"storage proxy for {redact(resolve_url(storage))} on grpc://{host}:{port}")
    run_proxy(storage, host, port)


@command("reap")
def reap_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    every: Annotated[
        float | None, typer.Option("--every", min=1, help="repeat every S seconds (default: once)")
    ] = None,
    grace: Annotated[
        int, typer.Option("--grace", min=1, help="seconds of silence before a trial is dead")
    ] = HeartbeatSettings.grace_period,
) -> None:
    """Fail and re-queue trials whose worker went silent (needed behind the gRPC proxy)."""
    from sweeper.run import reap_loop, reap_stale

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if every is None:
        reaped = reap_stale(study, storage, grace)
        out.print(f"failed and re-queued: {', '.join(map(str, reaped)) or 'none'}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reap_loop(study, storage, grace, every, stop)


def main() -> None:
    """Entry point of the ``sweeper`` console script."""
    app()
