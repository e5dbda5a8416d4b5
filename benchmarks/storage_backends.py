"""Storage costs per backend: opening, creating a study, connections held per worker.

Three figures back the storage layer's claims:

1. Latency of ``open_storage``, ``create_study`` (spec stored, baselines queued) and
   ``load_study`` on SQLite, PostgreSQL and MariaDB (fresh database each, dropped after).
2. Peak server connections per worker process: N processes with the heartbeat on, each
   running trials (main thread) while the heartbeat thread writes, sampled from
   ``pg_stat_activity``. The pool (1 + 2 overflow) is what keeps 64 workers under
   PostgreSQL's default 100 connections.
3. SQLite under N local processes: finished trials per second and "database is locked"
   errors (WAL journal + 30 s busy timeout should give none).

Needs the local PostgreSQL (127.0.0.1:5432, trust) and MariaDB (127.0.0.1:3306, root).

Usage: uv run python benchmarks/storage_backends.py [--procs 8] [--seconds 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import threading
import time
from pathlib import Path

import optuna
import psycopg2
from machine import describe, median_ms

from storage import HeartbeatSettings, open_storage
from sweeper.define import create_study, load_spec, load_study
from tests.servers import mysql_database, postgres_database, sqlite_database

DEMO = Path(__file__).resolve().parents[1] / "studies" / "demo.yaml"


def latencies(url: str, repeats: int) -> tuple[float, float, float]:
    """Median ms of open_storage, create_study and load_study on ``url``."""
    spec = load_spec(DEMO)
    open_storage(url)  # first open creates the tables; time the steady state
    storage = open_storage(url)
    names = iter(f"lat-{i}" for i in range(repeats))
    # No warm-up calls: the first open above is the warm-up, and each study needs a new name.
    opened = median_ms(lambda: open_storage(url), repeats, warm_up=False)
    created = median_ms(
        lambda: create_study(spec.renamed(next(names)), storage), repeats, warm_up=False
    )
    loaded = median_ms(lambda: load_study("lat-0", storage), repeats, warm_up=False)
    return opened.wall_ms, created.wall_ms, loaded.wall_ms


def _worker(url: str, name: str, seconds: float, locked: mp.Value) -> None:
    """Run quick trials for ``seconds`` with the heartbeat on (interval 1 s)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = HeartbeatSettings(interval=1, grace_period=5)
    study, _ = load_study(name, open_storage(url, heartbeat=True, settings=settings))
    deadline = time.monotonic() + seconds

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(3):
            trial.report(x, step)
            time.sleep(0.05)  # an "epoch": gives the heartbeat thread room to overlap
        return x

    while time.monotonic() < deadline:
        try:
            study.optimize(objective, n_trials=1)
        except Exception as e:  # counted, not fatal: this is what we measure
            if not _is_locked(e):
                raise
            with locked.get_lock():
                locked.value += 1


def _is_locked(e: BaseException | None) -> bool:
    """Whether SQLite's "database is locked" is anywhere in the exception chain."""
    while e is not None:
        if "database is locked" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def run_workers(url: str, procs: int, seconds: float) -> tuple[int, int, float]:
    """(finished trials, 'database is locked' errors, trials/s) for ``procs`` workers.

    Raises:
        RuntimeError: a worker died of some other error.
    """
    spec = load_spec(DEMO).renamed("load")
    storage = open_storage(url)
    create_study(spec, storage)
    ctx = mp.get_context("spawn")
    locked = ctx.Value("i", 0)
    workers = [
        ctx.Process(target=_worker, args=(url, spec.name, seconds, locked)) for _ in range(procs)
    ]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    crashed = [w.exitcode for w in workers if w.exitcode != 0]
    if crashed:
        raise RuntimeError(f"{len(crashed)} of {procs} workers failed (exit codes {crashed})")
    study = optuna.load_study(study_name=spec.name, storage=storage)
    done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return done, locked.value, done / elapsed


def postgres_connections(url: str, procs: int, seconds: float) -> tuple[int, float]:
    """Peak and median connections to the database while ``procs`` workers all run."""
    database = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    counts: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        cur = admin.cursor()
        while not stop.is_set():
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,))
            counts.append(cur.fetchone()[0])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run_workers(url, procs, seconds)
    finally:
        stop.set()
        sampler.join()
        admin.close()
    # Workers take seconds to import and connect; the middle half is when all of them run.
    steady = counts[len(counts) // 4 : 3 * len(counts) // 4]
    return max(counts), statistics.median(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("machine: " + describe(f"optuna {optuna.__version__}"))

    print("\nlatency, median ms     open_storage  create_study  load_study")
    databases = (
        ("sqlite", sqlite_database),
        ("postgresql", postgres_database),
        ("mariadb", mysql_database),
    )
    for label, database in databases:
        with database() as url:
            opened, created, loaded = latencies(url, args.repeats)
        print(f"{label:<22} {opened:>12.1f}  {created:>12.1f}  {loaded:>10.1f}")

    with postgres_database() as url:
        peak, median = postgres_connections(url, args.procs, args.seconds)
    print(
        f"\npostgresql: {args.procs} workers with heartbeat: connections median {median:g}, "
        f"peak {peak} (incl. 1 of the benchmark; a pool of 1 + 2 overflow allows 3 a worker)"
    )

    with sqlite_database() as url:
        done, locked, rate = run_workers(url, args.procs, args.seconds)
    print(
        f"sqlite: {args.procs} processes for {args.seconds:g} s: {done} trials "
        f"({rate:.1f}/s), 'database is locked' errors: {locked}"
    )


if __name__ == "__main__":
    main()
