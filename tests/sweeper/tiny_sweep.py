"""A tiny study for worker tests: 64 px synthetic images, a 0.3M-parameter DBNet, CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.paths import find_trial_checkpoints
from trainer_core.data.synthetic import generate

DATA_DIR = "tiny-data"


def make_data(root: Path) -> Path:
    """Synthetic dataset under ``root/tiny-data`` (the spec's paths are relative to root)."""
    if not (root / DATA_DIR / "annotations.json").exists():
        generate(root / DATA_DIR, n_images=10, size=(96, 96), seed=5)
    return root


def tiny_spec(name: str, n_trials: int, epochs: int = 2, **sections: Any) -> dict[str, Any]:
    """A spec dict; ``sections`` replace whole top-level sections."""
    spec: dict[str, Any] = {
        "name": name,
        "search_space": {
            "lr": {"low": 1e-4, "high": 3e-3, "log": True},
            "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
            "T_max": {"low": 1, "high": 2 * epochs},
            "eta_min": {"low": 1e-7, "high": 1e-5, "log": True},
        },
        "sampler": {"seed": 0, "n_startup_trials": 4},
        # One epoch leaves nothing to prune at (a trial is never pruned at its last epoch).
        "pruner": {"min_resource": 1, "reduction_factor": 3} if epochs > 1 else {"kind": "none"},
        "budget": {"n_trials": n_trials},
        "retries": {"max_retries": 2},
        "ranking": {"gap_source": "holdout", "penalty": 1.0, "tolerance": 0.005},
        "base": {
            "model": {"backbone": "mobilenetv3_small_050", "neck_channels": 32},
            "data": {
                "format": "ufo",
                "image_root": f"{DATA_DIR}/images",
                "annotations": f"{DATA_DIR}/annotations.json",
                "val_fraction": 0.2,
                "holdout_fraction": 0.2,
            },
            "augment": {"enabled": False},
            "input_size": 64,
            "batch_size": 4,
            "epochs": epochs,
            "precision": "fp32",
            "device": "cpu",
        },
    }
    spec.update(sections)
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def worker_args(
    root: Path, url: str, name: str, *extra: str, procs: int = 1, grace_s: int | None = None
) -> list[str]:
    """``sweeper worker`` arguments for ``procs`` CPU workers on the data under ``root``, with
    their artifacts in ``root/artifacts``.

    ``grace_s`` turns on a heartbeat every second with that grace period: for tests that
    kill a worker and wait for its trial to be failed.
    """
    args = [
        "worker",
        "--study",
        name,
        "--storage",
        url,
        "--gpus",
        "cpu",
        "--procs",
        str(procs),
        "--data-root",
        str(root),
        "--artifacts",
        str(root / "artifacts"),
    ]
    if grace_s is not None:
        args += ["--heartbeat-interval", "1", "--grace-period", str(grace_s)]
    return [*args, *extra]


def create(root: Path, url: str, spec: dict[str, Any], *extra: str) -> None:
    """``sweeper create-study`` of ``spec`` (written to ``root/spec.yaml``) on ``url``.

    In this process: the workers under test run in their own, their study need not.
    """
    path = write_spec(root / "spec.yaml", spec)
    result = CliRunner().invoke(app, ["create-study", str(path), "--storage", url, *extra])
    assert result.exit_code == 0, result.stderr


def sweeper(*args: str, timeout: float = 300, **popen: Any) -> subprocess.CompletedProcess:
    """Run the real CLI in a separate process, for what only a process shows: signals,
    child processes, the environment, all that reaches its stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_unbuffered(),
        **popen,
    )


def start_sweeper(*args: str, **popen: Any) -> subprocess.Popen:
    """Start the real CLI in a separate process; ``popen`` as for ``subprocess.Popen``."""
    popen.setdefault("env", _unbuffered())
    return subprocess.Popen([sys.executable, "-m", "sweeper", *args], **popen)


def _unbuffered() -> dict[str, str]:
    """This process's environment (as the test has it now), with the child's lines showing
    as it prints them."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def worker_logs(artifacts: Path) -> dict[str, str]:
    """The worker children's logs under ``artifacts/logs``, by file name."""
    return {p.name: p.read_text() for p in sorted((artifacts / "logs").glob("*.log"))}


def wait_for_checkpoint(
    artifacts: Path, study: str, worker: subprocess.Popen, timeout_s: float = 180, root: int = 0
) -> Path:
    """Wait for the ``last.pt`` of retry chain ``root`` of ``study``; fail if ``worker`` dies.

    Checkpoint folders carry the study's stored id (sweeper.paths), found here by name.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        folder = find_trial_checkpoints(artifacts, study, root)
        if folder is not None and (folder / "last.pt").exists():
            return folder / "last.pt"
        assert worker.poll() is None, worker_logs(artifacts)
        assert time.monotonic() < deadline, f"no checkpoint after {timeout_s:.0f} s"
        time.sleep(0.1)


def run_trials(root: Path, url: str, spec: dict[str, Any], n_trials: int) -> None:
    """Create the study of ``spec`` and run ``n_trials`` of it here, in this process (the
    worker's objective, without the worker loop); artifacts in ``root/artifacts``."""
    from storage import open_artifact_store, open_storage
    from sweeper.define import create_study, load_study, parse_spec
    from sweeper.run import Objective, TrialFailed, WorkerContext

    create_study(parse_spec(spec), open_storage(url))
    study, loaded = load_study(spec["name"], open_storage(url))
    ctx = WorkerContext(spec["name"], root / "artifacts", "test/0", data_root=root)
    objective = Objective(loaded, ctx, open_artifact_store(ctx.artifacts))
    study.optimize(objective, n_trials=n_trials, catch=(TrialFailed,))
