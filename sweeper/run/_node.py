"""``sweeper worker`` on one node: check the study, plan the slots, say what starts, supervise."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from storage import CONNECTIONS_PER_PROCESS, HeartbeatSettings, close_storage, open_storage, redact
from sweeper.define import load_study, study_key
from sweeper.errors import OptionError
from sweeper.run._checkpoints import artifacts_problem
from sweeper.run._options import WorkerLimits, WorkerOptions
from sweeper.run._supervisor import plan_slots, run_workers


def run_node(
    study: str,
    url: str,
    *,
    gpus: str = "auto",
    procs: int | None = None,
    procs_per_gpu: int = 1,
    limits: WorkerLimits | None = None,
    data_root: Path | None = None,
    artifacts: Path,
    heartbeat_interval: int = HeartbeatSettings.interval,
    grace_period: int = HeartbeatSettings.grace_period,
    console: Console,
) -> int:
    """Run ``study``'s trials on this node, one child process a slot; return the exit code.

    The study is loaded once here, so a bad name fails fast in one line, and its key (the
    folder of its checkpoints and logs) travels to the children in their options; the parent
    then holds no database connection while the children work.

    Raises:
        OptionError: a bad ``--gpus``/``--procs`` or heartbeat setting, a GPU this node
            does not have, or an artifacts directory that cannot take a file.
        StudyError: no such study.
    """
    checked = open_storage(url, create=False)
    try:
        _, spec = load_study(study, checked)
        key = study_key(study, checked)
    finally:
        close_storage(checked)
    slots = plan_slots(gpus, procs, procs_per_gpu)
    try:
        beat = HeartbeatSettings(heartbeat_interval, grace_period, spec.retries.max_retries)
    except ValueError as e:
        raise OptionError(str(e)) from e
    if (problem := artifacts_problem(artifacts)) is not None:
        raise OptionError(f"--artifacts: {problem}")
    limits = limits or WorkerLimits()
    options = WorkerOptions(
        study_name=study,
        artifacts=artifacts.resolve(),
        limits=limits,
        data_root=data_root.resolve() if data_root else None,
        heartbeat=beat,
        study_key=key,
    )
    per_process = 0 if url.startswith("grpc://") else CONNECTIONS_PER_PROCESS
    console.print(
        f"study {study} in {redact(url)}: {len(slots)} worker process(es) "
        f"({', '.join(s.label for s in slots)}); up to {per_process * len(slots)} database "
        f"connections from this node ({per_process} a process); logs in {artifacts / 'logs'}; "
        f"a database outage is waited out for up to {limits.storage_wait_s:g} s "
        "(--storage-wait)",
        markup=False,
        soft_wrap=True,
    )
    return run_workers(options, url, slots, console=console)
