"""Database connections a sweeper fleet holds on PostgreSQL: workers direct, and via the proxy.

Runs P real worker processes (:func:`sweeper.run._worker.run_worker`, with ``fit`` replaced by the
no-op of ``orchestration.py`` paced at ``--epoch-s`` a reported epoch) on a fresh PostgreSQL
database: first straight to the database with Optuna's heartbeat on, then through
``run_proxy`` (Optuna's gRPC storage proxy). ``pg_stat_activity`` is sampled every 50 ms
while the workers run; the figures are the connections of the workers (or of the proxy),
not counting the sampler's own.

Usage: uv run python benchmarks/connection_budget.py [--procs 1 4 8] [--trials 3]
       [--epoch-s 0.3] [--heartbeat-s 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import psycopg2
import torch
from machine import describe
from orchestration import _spec, noop_fit
from sqlalchemy.engine import make_url

from storage import HeartbeatSettings, open_storage
from sweeper.define import create_study, parse_spec
from sweeper.run import WorkerContext, WorkerLimits, run_worker
from sweeper.run import _objective as objective_module
from tests.servers import postgres_database, proxy_process

ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def _worker(url: str, name: str, trials: int, epoch_s: float, beat_s: int, index: int) -> None:
    def paced_fit(config, *, on_epoch_end=None, **kwargs):
        def on_epoch(epoch, record):
            time.sleep(epoch_s)  # training time: the storage sits idle, as in a real trial
            return on_epoch_end(epoch, record) if on_epoch_end else False

        return noop_fit(config, on_epoch_end=on_epoch, **kwargs)

    objective_module.fit = paced_fit
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = WorkerContext(name, Path(tmp), f"bench/{index}")
        beat = HeartbeatSettings(interval=beat_s, grace_period=beat_s * 10)
        run_worker(name, url, ctx, WorkerLimits(n_trials=trials), beat)


def _count(admin, database: str) -> int:
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,))
        return cur.fetchone()[0]


def _measure(url: str, database_url: str, args: argparse.Namespace, procs: int) -> list[int]:
    """Connection counts to the database of ``database_url`` sampled while ``procs`` workers
    run on ``url`` (that database, or a proxy in front of it)."""
    name = f"conn-{secrets.token_hex(3)}"
    database = make_url(database_url).database
    setup = open_storage(database_url)
    create_study(parse_spec(_spec(name, 10_000)), setup)
    setup.engine.dispose()  # so every connection counted is the fleet's (or the proxy's)
    ctx = mp.get_context("spawn")
    workers = [
        ctx.Process(
            target=_worker,
            args=(url, name, args.trials, args.epoch_s, args.heartbeat_s, i),
        )
        for i in range(procs)
    ]
    admin = psycopg2.connect(**ADMIN)
    admin.autocommit = True
    for w in workers:
        w.start()
    samples = []
    while any(w.is_alive() for w in workers):
        samples.append(_count(admin, database))
        time.sleep(0.05)
    for w in workers:
        w.join()
        assert w.exitcode == 0, f"a worker on {url} failed"
    admin.close()
    return samples


def _row(mode: str, procs: int, samples: list[int]) -> str:
    busy = [s for s in samples if s > 0] or [0]
    return (
        f"{mode:<7} {procs:>5} {statistics.median(busy):>7.0f} {max(samples):>5} "
        f"{max(samples) / procs:>10.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--trials", type=int, default=3, help="trials per worker")
    parser.add_argument("--epoch-s", type=float, default=0.3)
    parser.add_argument("--heartbeat-s", type=int, default=1)
    args = parser.parse_args()
    print("machine: " + describe(f"torch {torch.__version__}", f"optuna {optuna.__version__}"))
    print(
        f"{args.trials} trials a worker, 10 epochs of {args.epoch_s} s, heartbeat "
        f"{args.heartbeat_s} s"
    )
    with postgres_database() as url:
        print(f"{'mode':<7} {'procs':>5} {'median':>7} {'peak':>5} {'peak/proc':>10}")
        for procs in args.procs:
            print(_row("direct", procs, _measure(url, url, args, procs)))
        with proxy_process(url) as (proxied, _):
            open_storage(proxied, connect_timeout=30)
            for procs in args.procs:
                print(_row("proxy", procs, _measure(proxied, url, args, procs)))


if __name__ == "__main__":
    main()
