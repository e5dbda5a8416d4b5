"""A trial's result attributes: one transaction (storage.set_trial_user_attrs) or one per key.

The batched write reuses Optuna's private RDB upsert (storage/_trials.py); this measures
what it saves over the public ``trial.set_user_attr`` loop, per trial, for the ~20
attributes a finished trial stores, so the private use can be weighed against its risk.

Usage: uv run python benchmarks/attribute_writes.py [--trials 30] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna
from machine import describe

from storage import open_storage, set_trial_user_attrs
from sweeper.trial_result import RESULT_ATTRS
from tests.servers import postgres_database, sqlite_database

ATTRS = {name: 0.5 for name in RESULT_ATTRS} | {"host": "node-a", "worker_id": "node-a:1/0.ab"}


def per_trial_ms(url: str, trials: int, batched: bool) -> float:
    """Median milliseconds to write ``ATTRS`` on a running trial."""
    study = optuna.create_study(storage=open_storage(url))
    times = []
    for _ in range(trials):
        trial = study.ask()
        start = time.perf_counter()
        if batched:
            set_trial_user_attrs(trial, ATTRS)
        else:
            for key, value in ATTRS.items():
                trial.set_user_attr(key, value)
        times.append((time.perf_counter() - start) * 1e3)
        study.tell(trial, 0.5)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(describe(f"optuna {optuna.__version__}"))
    print(f"{len(ATTRS)} attributes per trial, median of {args.trials} trials")
    scratch = {"sqlite": sqlite_database, "postgresql": postgres_database}
    for backend in args.backends:
        with scratch[backend]() as url:
            public = per_trial_ms(url, args.trials, batched=False)
            batched = per_trial_ms(url, args.trials, batched=True)
        print(
            f"{backend:<10} one call per key {public:7.1f} ms   one transaction "
            f"{batched:6.1f} ms   ({public / batched:.1f}x)"
        )


if __name__ == "__main__":
    main()
