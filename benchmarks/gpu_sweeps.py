"""The gpu check's sections that go through sweeper itself: the out-of-memory retry and the
worker sweep. sweeper is driven by its CLI (``python -m sweeper``) alone and read back from
the study with Optuna and the two top-level modules that name what a trial stores
(``sweeper.trial_result``, ``sweeper.attrs``); its inner modules are free to move.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from gpu_plan import Plan, Run, Workspace, train_config
from optuna.trial import FrozenTrial, TrialState
from sections import SectionReport, Skip
from train_step import train_step_rate

from sweeper.attrs import FAIL_REASON_ATTR, OOM_RETRIES_ATTR, WORKER_ID_ATTR
from sweeper.trial_result import TrialResult
from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import TrainConfig
from trainer_core.fit import fit

__all__ = ["oom_retry", "sweeper_cli", "worker_sweep"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEMO_SPEC = REPO / "studies" / "demo.yaml"
_STOP_GRACE_S = 20.0


def sweeper_cli(
    args: Sequence[str],
    output: Path,
    timeout_s: float,
    every_second: Callable[[], None] | None = None,
) -> str:
    """``python -m sweeper ARGS``, its output kept in ``output``; returns that output.

    The command runs in a process group of its own, so a time limit (or an exception here)
    stops it together with the worker children it started: SIGTERM, then SIGKILL.

    Raises:
        RuntimeError: it exited non-zero (the message ends with its last lines).
        TimeoutError: it ran past ``timeout_s``.
    """
    command = [sys.executable, "-m", "sweeper", *args]
    # The repository on the path as it is on ours: sweeper need not be installed there.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    with output.open("w") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                code = proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if every_second is not None:
                    every_second()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"sweeper {args[0]} still running after {timeout_s:.0f} s"
                    ) from None
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        text = output.read_text(errors="replace")
        log.info("$ sweeper %s\n%s", " ".join(args), text.rstrip())
    if code != 0:
        tail = " / ".join(text.strip().splitlines()[-5:])
        raise RuntimeError(f"sweeper {args[0]} exited {code}: {tail}")
    return text


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _study(root: Path, spec: dict[str, Any], report: SectionReport) -> tuple[str, str]:
    """Create the study of ``spec`` in ``root/study.db`` with the CLI; (its URL, output)."""
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    url = f"sqlite:///{root / 'study.db'}"
    args = ["create-study", str(path), "--storage", url, "--skip-check"]
    out = sweeper_cli(args, root / "create-study.out", max(10.0, report.time_left() / 4))
    return url, out


def _worker(
    root: Path,
    url: str,
    name: str,
    slots: Sequence[str],
    report: SectionReport,
    every_second: Callable[[], None] | None = None,
) -> None:
    """``sweeper worker`` on the study until its budget is spent; artifacts in ``root``."""
    args = ["worker", "--study", name, "--storage", url, "--artifacts", str(root / "artifacts")]
    # Leave the section time to read the study and write its table.
    timeout = max(10.0, report.time_left() - 10.0)
    try:
        sweeper_cli([*args, *slots], root / "worker.out", timeout, every_second)
    finally:  # the children's logs (an out-of-memory retry shows there) go with the run's
        for path in sorted((root / "artifacts" / "logs").glob("*.log")):
            log.info("worker log %s:\n%s", path.name, path.read_text(errors="replace").rstrip())


def _trials(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def _demo_spec(name: str, base: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """The bundled demo study (studies/demo.yaml) renamed, with ``base`` fields and whole
    top-level ``sections`` replaced."""
    demo = yaml.safe_load(DEMO_SPEC.read_text())
    return {**demo, "name": name, **sections, "base": {**demo["base"], **base}}


def _data(annotations: Path, **fields: Any) -> dict[str, Any]:
    """A spec's ``base.data`` section reading ``annotations`` (absolute: no --data-root)."""
    return {
        "format": "ufo",
        "image_root": str(annotations.parent / "images"),
        "annotations": str(annotations),
        **fields,
    }


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# ---- the out-of-memory retry ----------------------------------------------------------


def _step_peak(plan: Plan, device: torch.device, run: Run) -> float:
    """CUDA peak MB of a training step of the plan's out-of-memory DBNet at ``run``."""
    cfg = train_config(plan, run, model={"backbone": plan.oom_backbone})
    rate = train_step_rate(cfg, device, "auto", steps=1, warm_up=1)
    assert rate.peak_memory_mb is not None
    return rate.peak_memory_mb


def _ballast_bytes(plan: Plan, report: SectionReport) -> int:
    """How much GPU memory to hold so the worker has room for batch B/2 but not for B."""
    run, half_run = plan.oom_run, replace(plan.oom_run, batch=plan.oom_run.batch // 2)
    device = torch.device("cuda")
    try:
        big: float | None = _step_peak(plan, device, run)
    except torch.OutOfMemoryError:
        big = None  # does not fit even the whole GPU: no ballast needed
    half = _step_peak(plan, device, half_run)
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    context = total - free - torch.cuda.memory_reserved()  # this process's CUDA context
    room = free if big is None else context + (big + half) / 2 * 2**20
    facts = report.table(["what", "MB"])
    facts.add(f"peak of a training step at batch {run.batch}, {run.px} px", _megabytes(big))
    facts.add(f"peak at batch {half_run.batch}", _megabytes(half))
    facts.add("a CUDA context (this process's, taken as the worker's)", _megabytes(context / 2**20))
    facts.add("left to the worker: context + halfway between the two", _megabytes(room / 2**20))
    ballast = max(0, int(free - room))
    facts.add("held by this check while the worker runs (ballast)", _megabytes(ballast / 2**20))
    return ballast


def oom_retry(plan: Plan, ws: Workspace, report: SectionReport) -> None:
    """A real CUDA out-of-memory at the plan's large size, caught by the worker, retried with
    half the batch and twice the accumulation, and the trial completed.

    A GPU of 80 GB or more may well hold DBNet-resnet18's batch 8 at 1280 px, so this
    process first takes the memory the worker must not have: it measures the peak of one
    training step at batch B and B/2 (as ``fit`` trains: channels-last, precision auto), then
    holds a ballast that leaves the worker's process room for halfway between the two. The
    worker runs on that GPU alone (``--gpus N``, N the first visible one), as one child.

    On the CPU the same study runs its trial (no out-of-memory to be had) and the section
    is reported skipped, with what it did run.
    """
    cuda = plan.device == "cuda"
    run = plan.oom_run
    ballast_bytes = _ballast_bytes(plan, report) if cuda else 0
    root = ws.folder("oom")
    name = "gpu-check-oom"
    spec = _demo_spec(
        name,
        {
            "model": {"backbone": plan.oom_backbone},
            # The demo ranks on a holdout split: val and holdout a fifth each, as there.
            "data": _data(ws.dataset(run.data), val_fraction=0.2, holdout_fraction=0.2),
            "input_size": run.px,
            "batch_size": run.batch,
            "grad_accum_steps": 1,
            "epochs": 2,
            "num_workers": plan.sweep_workers,
        },
        budget={"n_trials": 1},
        pruner={"kind": "none"},
    )
    url, _ = _study(root, spec, report)  # its one trial is the demo's baseline (lr 1e-3)
    slots = ["--gpus", _visible_gpus()[0]] if cuda else ["--gpus", "cpu", "--procs", "1"]
    ballast = torch.empty(ballast_bytes, dtype=torch.uint8, device="cuda") if cuda else None
    try:
        _worker(root, url, name, [*slots, "--n-trials", "1"], report)
    finally:
        del ballast
        if cuda:
            torch.cuda.empty_cache()
    [trial] = _trials(url, name)
    result = TrialResult.from_attrs(trial.user_attrs)
    retries = trial.user_attrs.get(OOM_RETRIES_ATTR, 0)
    saved = None
    if result.checkpoint_dir is not None:
        best = root / "artifacts" / result.checkpoint_dir / "best.pt"
        if best.exists():
            saved = TrainConfig.model_validate_json(load_checkpoint(best)["config"])
    final = f"{saved.batch_size} x {saved.grad_accum_steps}" if saved else "? (no best.pt)"
    table = report.table(
        ["trial", "state", "oom retries", "batch x accumulation", "epochs", "device", "peak MB"]
    )
    table.add(
        trial.number,
        trial.state.name,
        retries,
        f"{run.batch} x 1 -> {final}",
        result.epochs_run,
        result.device,
        _megabytes(result.peak_memory_mb),
    )
    if FAIL_REASON_ATTR in trial.user_attrs:
        report.note(f"Why it failed: {trial.user_attrs[FAIL_REASON_ATTR]}")
    report.check("the trial completed", trial.state == TrialState.COMPLETE, trial.state.name)
    if not cuda:
        raise Skip(
            "no CUDA device: a real CUDA out-of-memory needs one "
            "(tests/sweeper/test_oom_retry.py checks the retry with an injected error); "
            f"rehearsed: the study, the worker and the trial's result ({final})"
        )
    report.check("it ran out of memory and was retried", retries >= 1, f"{retries} retries")
    report.check(
        "the retry halved the batch and kept the effective batch",
        saved is not None
        and saved.batch_size < run.batch
        and saved.batch_size * saved.grad_accum_steps == run.batch,
        final,
    )


# ---- the worker sweep ---------------------------------------------------------------


class GpuProcesses:
    """Which GPU each process had a context on, from ``nvidia-smi`` every second.

    Never raises: it samples while a worker runs, and a sampling problem must not stop that
    worker; it is logged, and the check it feeds is then skipped for want of pids."""

    def __init__(self) -> None:
        self.found = shutil.which("nvidia-smi") is not None
        self.seen: dict[int, set[str]] = {}
        self.index = {uuid: index for index, uuid in self._rows("--query-gpu=index,uuid")}
        """GPU uuid -> index."""

    def _rows(self, query: str) -> list[tuple[str, str]]:
        """``nvidia-smi QUERY`` as (first, second) field pairs; none when it cannot say."""
        if not self.found:
            return []
        try:
            out = subprocess.run(
                ["nvidia-smi", query, "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("nvidia-smi %s: %s", query, e)
            return []
        fields = [[f.strip() for f in ln.split(",")] for ln in out.stdout.splitlines()]
        return [(f[0], f[1]) for f in fields if len(f) == 2 and out.returncode == 0]

    def sample(self) -> None:
        for pid, uuid in self._rows("--query-compute-apps=pid,gpu_uuid"):
            if pid.isdigit():
                self.seen.setdefault(int(pid), set()).add(self.index.get(uuid, uuid))


def _visible_gpus() -> list[str]:
    """The GPU indices ``--gpus auto`` hands out, in order."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


_WORKER_ID = re.compile(r":(\d+)/(\d+)\.")  # host:pid/slot.token (sweeper's worker id)


def _pid_slot(trial: FrozenTrial) -> tuple[int, int] | None:
    found = _WORKER_ID.search(str(trial.user_attrs.get(WORKER_ID_ATTR, "")))
    return (int(found[1]), int(found[2])) if found else None


def _starting_point(plan: Plan, ws: Workspace, root: Path, report: SectionReport) -> Path:
    """The sweep's starting point, trained here with ``fit`` as ``sweeper demo`` makes its
    own: the demo's DBNet from scratch on a separate synthetic set."""
    demo_base = yaml.safe_load(DEMO_SPEC.read_text())["base"]
    cfg = TrainConfig.model_validate(
        {
            **demo_base,
            "model": {"backbone": plan.sweep_backbone, "neck_channels": plan.sweep_neck},
            "data": _data(ws.dataset("pretrain"), val_fraction=0.25, holdout_fraction=0.0),
            "input_size": plan.sweep_px,
            "epochs": plan.pretrain_epochs,
            "eval_every": 3 if plan.pretrain_epochs >= 6 else 1,
            "batch_size": 8,
            "optimizer": {"lr": 4e-3},
            "scheduler": {"eta_min": 1e-5},
            "device": plan.device,
            "num_workers": plan.sweep_workers,
            "output_dir": str(root / "pretraining"),
        }
    )
    start = time.perf_counter()
    result = fit(cfg)
    seconds = time.perf_counter() - start
    if plan.device == "cuda":
        torch.cuda.empty_cache()  # the worker's children need the memory, not this process
    if result.failed or result.best is None:
        raise RuntimeError(f"the starting point did not train: {result.reason}")
    report.note(
        f"Starting point: DBNet-{plan.sweep_backbone} from scratch, {cfg.epochs} epoch(s) on "
        f"{plan.data['pretrain'].n_images} other images at {plan.sweep_px} px, val H-mean "
        f"{result.best.hmean:.3f} ({seconds:.1f} s on {result.device}, {result.precision})."
    )
    return result.best_checkpoint


def worker_sweep(plan: Plan, ws: Workspace, report: SectionReport) -> None:
    """A short SQLite sweep of the demo study, fine-tuning from a starting point trained
    here, by ``sweeper worker``: on a GPU ``--gpus auto --procs-per-gpu K``, on the CPU
    ``--gpus cpu --procs 1``. Checks that it completes, prunes, and that every trial
    records the device it ran on and its peak memory; on a GPU also that each child process
    had a context on its own GPU alone (``nvidia-smi``)."""
    cuda = plan.device == "cuda"
    root = ws.folder("sweep")
    start_from = _starting_point(plan, ws, root, report)
    name = "gpu-check-sweep"
    spec = _demo_spec(
        name,
        {
            "model": {
                "backbone": plan.sweep_backbone,
                "neck_channels": plan.sweep_neck,
                "init_checkpoint": str(start_from),
            },
            "data": _data(ws.dataset("sweep"), val_fraction=0.2, holdout_fraction=0.2),
            "input_size": plan.sweep_px,
            "epochs": plan.sweep_epochs,
            "num_workers": plan.sweep_workers,
        },
        budget={"n_trials": plan.sweep_trials},
    )
    url, created = _study(root, spec, report)
    rungs = [ln.strip() for ln in created.splitlines() if ln.startswith("pruning:")]
    report.note("create-study: " + (" ".join(rungs) or "printed no pruning rungs"))
    gpus = _visible_gpus() if cuda else []
    if cuda:
        slots = ["--gpus", "auto", "--procs-per-gpu", str(plan.procs_per_gpu)]
        expected_slots = len(gpus) * plan.procs_per_gpu
    else:
        slots, expected_slots = ["--gpus", "cpu", "--procs", "1"], 1
    processes = GpuProcesses() if cuda else None
    _worker(root, url, name, slots, report, processes.sample if processes else None)
    report.note(f"`sweeper worker {' '.join(slots)}`")

    trials = _trials(url, name)
    table = report.table(
        ["trial", "state", "epochs", "val H", "device", "precision", "peak MB", "slot", "pid"]
        + (["GPUs its pid used"] if processes else [])
    )
    for trial in trials:
        result = TrialResult.from_attrs(trial.user_attrs)
        pid_slot = _pid_slot(trial)
        used = processes.seen.get(pid_slot[0], set()) if processes and pid_slot else set()
        table.add(
            trial.number,
            trial.state.name,
            len(trial.intermediate_values),
            "-" if result.val_hmean is None else f"{result.val_hmean:.3f}",
            result.device or "-",
            result.precision or "-",
            _megabytes(result.peak_memory_mb),
            pid_slot[1] if pid_slot else "?",
            pid_slot[0] if pid_slot else "?",
            *([",".join(sorted(used)) or "-"] if processes else []),
        )
    _sweep_checks(plan, trials, report, gpus, expected_slots, processes)


def _sweep_checks(
    plan: Plan,
    trials: list[FrozenTrial],
    report: SectionReport,
    gpus: list[str],
    expected_slots: int,
    processes: GpuProcesses | None,
) -> None:
    states = [t.state for t in trials]
    counts = ", ".join(f"{s.name.lower()} {states.count(s)}" for s in sorted(set(states)))
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    report.check(
        f"the sweep ran its {plan.sweep_trials} trials to the end",
        len(finished) == plan.sweep_trials == len(trials),
        counts,
    )
    pruned = states.count(TrialState.PRUNED)
    first_rung = [t.intermediate_values.get(1) for t in trials if 1 in t.intermediate_values]
    if pruned:
        report.check("Hyperband pruned trials", True, f"{pruned} pruned")
    elif len(set(first_rung)) <= 1:
        report.check(
            "Hyperband pruned trials",
            None,
            f"every trial reported val H {first_rung[0] if first_rung else '-'} at epoch 1: "
            "ties are never pruned (the rungs are in the note above)",
        )
    else:
        report.check("Hyperband pruned trials", False, "the curves differ, none was pruned")
    results = [TrialResult.from_attrs(t.user_attrs) for t in finished]
    devices = sorted({r.device or "none" for r in results})
    if plan.device == "cuda":
        cuda_name = torch.cuda.get_device_name(0)
        ok = bool(results) and devices == [cuda_name]
        report.check("every trial's device attribute names the GPU", ok, ", ".join(devices))
    else:
        report.check(
            "every trial's device attribute names the GPU", None, "no GPU: " + ", ".join(devices)
        )
    peaks = [r.peak_memory_mb for r in results]
    report.check(
        "every trial recorded its peak memory",
        bool(peaks) and all(p is not None and p > 0 for p in peaks),
        "CUDA max allocated" if plan.device == "cuda" else "peak RSS on the CPU",
    )
    slots = {ps for t in finished if (ps := _pid_slot(t)) is not None}
    report.check(
        f"each of the {expected_slots} child process(es) ran trials",
        len({slot for _, slot in slots}) == expected_slots,
        f"slots {sorted({slot for _, slot in slots})}",
    )
    if processes is None:
        report.check("each child saw exactly its GPU", None, "no GPU (--gpus cpu)")
        return
    if not {pid for pid, _ in slots} & processes.seen.keys():
        report.check(
            "each child saw exactly its GPU",
            None,
            "nvidia-smi listed none of the children's pids (another PID namespace?): "
            f"{sorted(processes.seen) or 'no compute processes'}",
        )
        return
    wrong = []
    for pid, slot in sorted(slots):
        index = slot // plan.procs_per_gpu
        expected = gpus[index] if index < len(gpus) else "?"
        used = sorted(processes.seen.get(pid, set()))
        if used != [expected]:
            wrong.append(f"slot {slot} (pid {pid}) used GPU {used}, not [{expected}]")
    report.check("each child saw exactly its GPU", not wrong, "; ".join(wrong) or "nvidia-smi")
