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
from typing import Annotated, Any, TypeVar

import optuna
import typer
import yaml
from rich.console import Console
from rich.table import Table

from storage import (
    CONNECTIONS_PER_PROCESS,
    STORAGE_WAIT_S,
    HeartbeatSettings,
    StorageError,
    close_storage,
    open_storage,
    optuna_version_problem,
    redact,
    resolve_url,
)
from sweeper.errors import SpecError, StudyError
from sweeper.exits import EXIT_BAD_INPUT, EXIT_FAILED
from sweeper.paths import remove_study_files, study_key, study_pictures
from sweeper.spec import StudySpec, load_spec
from sweeper.study import create_study, delete_study, find_study_id, linked_studies, load_study
from sweeper.summary import STATES, StudyStatus, StudySummary, list_studies, study_status
from sweeper.tables import Column, fit_table, print_fitted
from sweeper.trial_result import TrialResult
from trainer_core.errors import ConfigError, DataError

__all__ = ["BAD_INPUT", "EXIT_BAD_INPUT", "EXIT_FAILED", "app", "command", "main"]

BAD_INPUT: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
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

F = TypeVar("F", bound=Callable[..., Any])
HostOption = Annotated[
    str, typer.Option("--host", help="address to listen on; it has no login: keep it private")
]
PortOption = Annotated[int, typer.Option("--port", help="port to listen on")]

# Set by the root callback on every invocation, read when an error is reported.
_debug: ContextVar[bool] = ContextVar("sweeper_debug", default=False)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks of errors")] = False,
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
    text = _one_line(e)
    if unexpected:
        text = f"unexpected {type(e).__name__}: {text}"
        if not debug:
            text += " (--debug shows the traceback)"
    err.print(f"error: {text}", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line."""
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"{e.filename}: no such file"
    if isinstance(e, yaml.YAMLError):
        return f"not valid YAML ({' '.join(str(e).split())})"
    return " ".join(str(e).split()) or type(e).__name__


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
        typer.Option("--exist-ok", help="reuse a study of this name if its spec is identical"),
    ] = False,
    data_root: DataRootOption = None,
    skip_check: Annotated[
        bool,
        typer.Option(
            "--skip-check", help="do not build the backbone or read the data first (faster)"
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
        f"budget: {spec.budget.n_trials} trials",
        markup=False,
        soft_wrap=True,
    )
    out.print(spec.describe_pruning(), markup=False, soft_wrap=True)
    flag = _storage_flag(storage)
    out.print("next:", markup=False)
    out.print(f"  sweeper worker --study {study.study_name}{flag}", markup=False, soft_wrap=True)
    out.print(f"  sweeper status {study.study_name}{flag}", markup=False, soft_wrap=True)
    out.print(f"  optuna-dashboard '{redact(url)}'", markup=False, soft_wrap=True)


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
    from sweeper.check import check_spec  # builds a model: torch loads only here

    for line in check_spec(spec, data_root):
        out.print(f"checked: {line}", markup=False, soft_wrap=True)


@command("studies")
def studies_cmd(storage: StorageOption = None) -> None:
    """List the studies in a storage with their trial counts."""
    url = resolve_url(storage)
    summaries = list_studies(open_storage(url, create=False))
    if not summaries:
        out.print(f"no studies in {redact(url)}", markup=False, soft_wrap=True)
        return
    columns = [
        Column("study", [s.name for s in summaries], justify="left", required=True),
        *(
            Column(state.name.lower(), [str(s.counts[state]) for s in summaries], required=True)
            for state in STATES
        ),
        Column("best", [_value(s.best_value) for s in summaries], required=True),
    ]
    print_fitted(out, fit_table(columns, out.width, redact(url)))


@command("status")
def status_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    artifacts: Annotated[
        Path, typer.Option("--artifacts", help="the workers' --artifacts (checkpoint disk use)")
    ] = Path("sweeper-artifacts"),
) -> None:
    """Show one study: trials by state, the best so far, the running trials, its disk."""
    from sweeper.retention import checkpoint_usage

    url = resolve_url(storage)
    storage_obj = open_storage(url, create=False)
    status = study_status(study, storage_obj)
    out.print(_headline(status.summary, url), markup=False, soft_wrap=True)
    _print_status(status)
    if status.saving is not None and status.saving.trials:
        out.print(status.saving.describe(), markup=False, soft_wrap=True)
    usage = checkpoint_usage(artifacts, study_key(study, storage_obj))
    out.print(f"{usage.describe()} under {artifacts}", markup=False, soft_wrap=True)


@command("delete-study")
def delete_study_cmd(
    study: StudyArg,
    storage: StorageOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="really delete it and all its trials")] = False,
    artifacts: Annotated[
        Path, typer.Option("--artifacts", help="the workers' --artifacts directory")
    ] = Path("sweeper-artifacts"),
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
    storage_obj = open_storage(url, create=False)
    find_study_id(study, storage_obj)  # no such study: say so before anything is deleted
    linked = linked_studies(study, storage_obj)
    freed = 0
    for name in [*reversed(linked), study]:  # made-from studies first: none is left orphaned
        key = study_key(name, storage_obj)
        pictures = study_pictures(name, storage_obj)
        delete_study(name, storage_obj)
        freed += remove_study_files(artifacts, key, pictures)
    also = f" and the studies made from it ({', '.join(linked)})" if linked else ""
    out.print(
        f"deleted study {study}{also} from {redact(url)}; removed their checkpoints, logs "
        f"and pictures under {artifacts} ({_bytes(freed)})",
        markup=False,
        soft_wrap=True,
    )


def _bytes(n: int) -> str:
    """``n`` bytes for people: 812 bytes, 3.4 MB."""
    if n < 1000:
        return f"{n} bytes"
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


@command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="a train config")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a field by dotted path, e.g. optimizer.lr=3e-4"),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from OUT/last.pt")] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output directory (default: the config's)")
    ] = None,
) -> None:
    """Train one model without a study: the "retrain the winner" step."""
    from sweeper.train import run_training  # torch loads only for commands that train

    result = run_training(config, overrides, resume=resume, out=out_dir, console=out)
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
    artifacts: Annotated[
        Path, typer.Option("--artifacts", help="checkpoints, pictures and logs (shared by nodes)")
    ] = Path("sweeper-artifacts"),
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
    from sweeper.dispatch import plan_slots, run_workers
    from sweeper.worker_options import WorkerLimits, WorkerOptions

    url = resolve_url(storage)
    checked = open_storage(url, create=False)
    _, spec = load_study(study, checked)  # fail fast, in one line, on a bad name
    key = study_key(study, checked)
    close_storage(checked)  # the parent holds no connection while the children work
    try:
        slots = plan_slots(gpus, procs, procs_per_gpu)
        heartbeat = HeartbeatSettings(heartbeat_interval, grace_period, spec.retries.max_retries)
    except ValueError as e:
        raise SpecError(str(e)) from e
    options = WorkerOptions(
        study_name=study,
        artifacts=artifacts.resolve(),
        limits=WorkerLimits(n_trials, timeout, storage_wait),
        data_root=data_root.resolve() if data_root else None,
        heartbeat=heartbeat,
    )
    per_process = CONNECTIONS_PER_PROCESS if not url.startswith("grpc://") else 0
    err.print(
        f"study {study} in {redact(url)}: {len(slots)} worker process(es) "
        f"({', '.join(s.label for s in slots)}); up to {per_process * len(slots)} database "
        f"connections from this node ({per_process} a process); logs in {artifacts / 'logs'}; "
        f"a database outage is waited out for up to {storage_wait:g} s (--storage-wait)",
        markup=False,
        soft_wrap=True,
    )
    code = run_workers(options, url, slots, console=err, study_key=key)
    raise typer.Exit(code)


SortOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="score (penalized), val, holdout, or mean (of val and holdout H-mean); "
        "default: the spec's ranking.rule",
        show_default=False,
    ),
]


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
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    wide: Annotated[
        bool, typer.Option("--wide", help="every column, however wide (default: what fits)")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="also draw val vs holdout H-mean to this PNG (and the study's artifacts)"
        ),
    ] = None,
    artifacts: Annotated[
        Path, typer.Option("--artifacts", help="the workers' --artifacts, where --plot uploads")
    ] = Path("sweeper-artifacts"),
) -> None:
    """Completed trials by penalized score; then the pruned (with their epoch) and the failed."""
    from sweeper.ranking import rank_study

    if fmt not in ("table", "csv", "json"):
        raise SpecError(f"--format {fmt!r}: use table, csv or json")
    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    if _print_if_verify(study_obj, spec, fmt, wide):
        return
    ranking = rank_study(study_obj, spec, by=by, penalty=penalty, tolerance=tolerance)  # type: ignore[arg-type]
    if plot is not None:
        _plot_ranking(ranking, study_obj, spec.ranking.gap_source, plot, artifacts)
    if fmt == "json":
        print(ranking.to_json(top))
    elif fmt == "csv":
        print(ranking.to_csv(top), end="")
    else:
        from sweeper.report import print_ranking

        print_ranking(ranking, out, top, wide=wide)


def _print_if_verify(study: optuna.Study, spec: StudySpec, fmt: str, wide: bool) -> bool:
    """A verify study ranks by config over its re-runs (sweeper verify); False otherwise."""
    from sweeper.verify import print_verify, source_study_name, verify_report

    if source_study_name(study) is None:
        return False
    if fmt == "csv":
        raise SpecError(
            f"--format csv: study {study.study_name} is a verify study; use table or json"
        )
    report = verify_report(study, spec)
    if fmt == "json":
        print(report.to_json())
    else:
        print_verify(report, out, wide=wide)
    return True


def _plot_ranking(
    ranking: Any, study: optuna.Study, gap_split: str, path: Path, artifacts: Path
) -> None:
    """Write the selection picture and upload it to the study's artifacts for the dashboard."""
    from optuna.artifacts import upload_artifact

    from storage import open_artifact_store
    from sweeper.selection_plot import selection_png

    try:
        selection_png(ranking, path, gap_split)
    except ValueError as e:
        raise StudyError(str(e)) from e
    upload_artifact(
        artifact_store=open_artifact_store(artifacts), file_path=str(path), study_or_trial=study
    )
    err.print(f"picture: {path} (uploaded to the study's artifacts in {artifacts})", markup=False)


@command("export-best")
def export_best_cmd(
    study: StudyArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="YAML file to write")],
    storage: StorageOption = None,
    by: SortOption = None,
) -> None:
    """Write the winning trial's full train config, ready for ``sweeper train``."""
    from sweeper.ranking import export_best

    study_obj, spec = load_study(study, open_storage(resolve_url(storage), create=False))
    trial = export_best(study_obj, spec, output, by=by)  # type: ignore[arg-type]
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
    from sweeper.promote import promote_trial

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
    artifacts: Annotated[
        Path, typer.Option("--artifacts", help="the workers' --artifacts directory")
    ] = Path("sweeper-artifacts"),
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="where this node mounts the spec's relative data paths"),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="for the one inference pass (default: auto)")
    ] = None,
) -> None:
    """Search a trial's post-processing thresholds on its cached probability maps."""
    from sweeper.postprocess_search import pick_trials, tune_postprocess

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
        how = "reused" if cached.reused else "made by one inference pass"
        params = ", ".join(f"{k}={_value(v)}" for k, v in tuned.params.items())
        out.print(
            f"trial {number}: maps of {len(cached.val)} val and {len(cached.gap)} "
            f"{cached.gap_split} images {how} ({cached.path}); {tuned.search_trials} search "
            f"trials in study {tuned.search_study}",
            markup=False,
            soft_wrap=True,
        )
        out.print(
            f"  val H {100 * tuned.val_before:.2f} -> {100 * tuned.val_after:.2f}; "
            f"{tuned.gap_split} H {100 * tuned.gap_before:.2f} -> {100 * tuned.gap_after:.2f}; "
            f"best: {params}",
            markup=False,
            soft_wrap=True,
        )
        if tuned.gap_after < tuned.gap_before:
            out.print(
                f"  warning: the {tuned.gap_split} H-mean fell: the tuned values fit val only",
                markup=False,
                soft_wrap=True,
            )
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
    from sweeper.verify import enqueue_verify

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


@command("dashboard")
def dashboard_cmd(
    storage: StorageOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    artifacts: Annotated[
        Path, typer.Option("--artifacts", help="the workers' --artifacts directory")
    ] = Path("sweeper-artifacts"),
) -> None:
    """optuna-dashboard on the storage, with the trials' pictures."""
    from sweeper.dashboard import run_dashboard

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
    from sweeper.reap import reap_loop, reap_stale

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if every is None:
        reaped = reap_stale(study, storage, grace)
        out.print(f"failed and re-queued: {', '.join(map(str, reaped)) or 'none'}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reap_loop(study, storage, grace, every, stop)


def _headline(s: StudySummary, url: str) -> str:
    budget = f"/{s.n_trials_budget}" if s.n_trials_budget is not None else ""
    return f"study {s.name} in {redact(url)}: {s.finished}{budget} trials finished"


def _print_status(status: StudyStatus) -> None:
    counts = Table(show_header=True)
    for state in STATES:
        counts.add_column(state.name.lower(), justify="right")
    counts.add_row(*(str(status.summary.counts[state]) for state in STATES))
    out.print(counts)
    if status.summary.given_back:
        out.print(f"given back untrained (started past the budget): {status.summary.given_back}")
    if status.best_number is None:
        out.print("best: none yet")
    else:
        params = ", ".join(f"{k}={_value(v)}" for k, v in status.best_params.items())
        out.print(
            f"best: trial {status.best_number}, value {_value(status.summary.best_value)}"
            f" ({params})",
            markup=False,
            soft_wrap=True,
        )
    if not status.running:
        out.print("running: none")
        return
    rows = status.running
    columns = [
        Column("trial", [str(r.number) for r in rows], required=True),
        Column("epoch", ["-" if r.last_epoch is None else str(r.last_epoch) for r in rows]),
        Column("worker", [r.worker_id or "-" for r in rows], justify="left"),
        Column("device", [r.device or "-" for r in rows], justify="left"),
        Column("started", [f"{r.started:%m-%d %H:%M:%S}" if r.started else "-" for r in rows]),
        Column("host", [r.host or "-" for r in rows], justify="left"),
    ]
    print_fitted(out, fit_table(columns, out.width, "running"), hint="a wider terminal shows them")


def _value(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main() -> None:
    """Entry point of the ``sweeper`` console script."""
    app()
