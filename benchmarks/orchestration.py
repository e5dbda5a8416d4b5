"""Per-trial overhead of the sweeper worker path against a bare ``study.optimize`` loop.

Both sides use the same sampler (TPE from the spec), pruner (Hyperband from the spec) and
storage, and report 10 epochs per trial. The sweeper side runs the real worker loop
(:func:`sweeper.run._worker.run_worker`: stale-trial check, budget check, heartbeat, the
objective's reports, prune checks and user attributes, the tell) with ``fit`` replaced by a
no-op that reports 10 epochs. The bare side is the loop an Optuna tutorial would write.

Usage: uv run python benchmarks/orchestration.py [--trials 40] [--procs 1 4]
       [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import secrets
import tempfile
import time
from pathlib import Path

import optuna
from machine import describe

from storage import open_storage
from sweeper.define import create_study, load_study, parse_spec, suggest_params
from sweeper.run import WorkerContext, WorkerLimits, run_worker
from sweeper.run import _objective as objective_module
from tests.servers import postgres_database, sqlite_database
from trainer_core.config import TrainConfig
from trainer_core.fit import EpochRecord, FitResult
from trainer_core.metrics import DetectionMetrics

EPOCHS = 10


def _spec(name: str, n_trials: int) -> dict:
    return {
        "name": name,
        "search_space": {
            "lr": {"low": 1e-4, "high": 1e-3, "log": True},
            "weight_decay": {"low": 1e-5, "high": 3e-4, "log": True},
            "T_max": {"low": 8, "high": 12},
            "eta_min": {"low": 1e-6, "high": 5e-5, "log": True},
        },
        "sampler": {"seed": 0, "n_startup_trials": 10},
        "pruner": {"min_resource": 1, "reduction_factor": 3},
        "budget": {"n_trials": n_trials},
        "ranking": {"gap_source": "train"},
        "base": {"epochs": EPOCHS},
    }


def _value(params: dict, epoch: int) -> float:
    """A deterministic learning curve that depends on the params (so TPE has signal)."""
    return min(0.99, params["lr"] * 500 * epoch / EPOCHS + params["weight_decay"] * 100)


def noop_fit(
    config: TrainConfig, *, on_epoch_end=None, on_step=None, resume=False, timing=None
) -> FitResult:
    """Stands in for training: reports 10 epochs, returns a result with every field set."""
    params = {"lr": config.optimizer.lr, "weight_decay": config.optimizer.weight_decay}
    history = []
    status = "completed"
    for epoch in range(1, EPOCHS + 1):
        h = _value(params, epoch)
        record = EpochRecord(epoch, 0.1, config.optimizer.lr, 1.0, 100.0, h, h, h)
        history.append(record)
        if on_epoch_end is not None and on_epoch_end(epoch, record):
            status = "stopped"
            break
    best = DetectionMetrics(history[-1].precision, history[-1].recall, history[-1].hmean, 1, 1, 1)
    return FitResult(
        status=status,
        reason="noop",
        history=history,
        best_epoch=history[-1].epoch,
        best=best,
        gap_split="train",
        gap_metrics=best,
        peak_memory_mb=1.0,
        device="cpu",
        precision="fp32",
        checkpoint_dir=config.output_dir,
        batch_size=config.batch_size,
    )


def _bare_loop(url: str, name: str, n_trials: int, index: int) -> None:
    study, spec = load_study(name, open_storage(url), worker_id=f"bench/{index}")

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, spec)
        for epoch in range(1, EPOCHS + 1):
            value = _value(params, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=n_trials)


def _sweeper_loop(url: str, name: str, n_trials: int, index: int) -> None:
    objective_module.fit = noop_fit  # the benchmark measures everything but training
    # ...and but the pictures: rendering a learning curve costs about 0.2 s a completed trial
    # (matplotlib, profiled), noise next to minutes of training but not orchestration.
    objective_module.Objective._upload_pictures = lambda *args: None
    with tempfile.TemporaryDirectory() as tmp:
        ctx = WorkerContext(name, Path(tmp), f"bench/{index}")
        run_worker(name, url, ctx, WorkerLimits(n_trials=n_trials))


def _process(kind: str, url: str, name: str, n_trials: int, index: int, go, times) -> None:
    """Imports happen before ``go``; only the loop (storage setup included) is timed."""
    loop = _bare_loop if kind == "bare" else _sweeper_loop
    # A spawned child starts with Optuna's default INFO logging: a line per trial, on stderr.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    go.wait()
    start = time.perf_counter()
    loop(url, name, n_trials, index)
    times.put((start, time.perf_counter()))


def _run(kind: str, url: str, n_trials: int, procs: int) -> float:
    """Milliseconds per trial (wall time over all trials, all processes)."""
    name = f"bench-{kind}-{secrets.token_hex(3)}"
    create_study(parse_spec(_spec(name, n_trials * procs)), open_storage(url))
    ctx = mp.get_context("spawn")
    go, times = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_process, args=(kind, url, name, n_trials, i, go, times))
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    time.sleep(8)  # let every process finish importing torch & co. before the clock starts
    go.set()
    spans = [times.get() for _ in workers]
    for w in workers:
        w.join()
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    done = len(load_study(name, open_storage(url))[0].get_trials(deepcopy=False))
    return 1000 * elapsed / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trials per process")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("machine: " + describe(f"optuna {optuna.__version__}"))
    print(
        f"{'backend':<11} {'procs':>5} {'bare ms/trial':>14} {'sweeper ms/trial':>17} {'ratio':>6}"
    )
    for backend in args.backends:
        for procs in args.procs:
            database = sqlite_database if backend == "sqlite" else postgres_database
            with database() as url:
                # Interleave so drift in machine load hits both sides alike.
                bare = _run("bare", url, args.trials, procs)
                ours = _run("sweeper", url, args.trials, procs)
            print(f"{backend:<11} {procs:>5} {bare:>14.1f} {ours:>17.1f} {ours / bare:>6.2f}")


if __name__ == "__main__":
    main()
