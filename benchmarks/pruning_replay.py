"""Which pruner keeps the eventual winner on the receipts-shaped space? Replayed, not re-trained.

On the shared pool of complete learning curves (``benchmarks/curve_pool.py``: configs from
the receipts space scaled to E epochs, ``T_max`` from 0.8 E to 1.1 E, every epoch scored per
image), each draw simulates one sweep: the evaluation images split at random into val /
holdout / test, K configs drawn from the pool in a random order, and per-trial epoch times
jittered by 10% so 4 asynchronous workers drift apart as a fleet's do. Every policy replays
that same sweep through the real pruner (sweeper.rank.replay): trials report their val
H-mean epoch by epoch and stop when pruned. The completed trials are ranked by the shipped
rule (mean of val and holdout H-mean at each trial's best val epoch), and the pick is judged
on test.

Prints per policy: epochs trained against no pruning, the pick's mean test regret (against
the best test H-mean among the sweep's K trials) and its difference from the unpruned
sweep's with a paired 95% interval, how often the unpruned winner survives, and the
Spearman correlation of each rung's val H-mean with the final ranking value.

    uv run python benchmarks/pruning_replay.py --cache /work/cache/curve_pool
    uv run python benchmarks/pruning_replay.py --quick     # the pipeline on a tiny pool
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from curve_pool import QUICK, CurvePool, build_pool, load_pool, pool_folder
from machine import describe
from optuna.trial import FrozenTrial

from sweeper.define import SchedulePhasePruner, phase_fractions
from sweeper.rank import POLICIES, Policy, judge, make_policy, replay, rung_correlation
from trainer_core.optim import cosine_lr


class ExtrapolatingPruner(SchedulePhasePruner):
    """Successive halving at epoch rungs on each curve extrapolated to its last epoch.

    The fit is ``v(t) = a + b * log(1 + L(t))``, with ``L(t)`` the lr summed over epochs
    1..t in units of the peak lr (the trial's own cosine: how much learning it has had), by
    least squares on the epochs seen so far, read at ``L(E)``; with one epoch seen, that
    epoch's value.
    """

    def _rung_value(self, trial: FrozenTrial, rung: int) -> float | None:
        epochs = self.rung_epochs(trial)
        if rung >= len(epochs):
            return None
        upto = math.ceil(epochs[rung])
        values = trial.intermediate_values
        if any(e not in values for e in range(1, upto + 1)):
            return None
        seen = np.array([values[e] for e in range(1, upto + 1)])
        if upto < 2:
            return float(seen[-1])
        p = trial.params
        lr = np.array(
            [cosine_lr(t, p["lr"], p["eta_min"], p["T_max"]) / p["lr"] for t in range(self._epochs)]
        )
        x = np.log1p(np.cumsum(lr))
        b, a = np.polyfit(x[:upto], seen, 1)
        return float(a + b * x[-1])


def phase_best(r: int, eta: int, epochs: int) -> Policy:
    """The schedule-aware rungs, each trial judged by its best value up to its rung."""
    fractions = phase_fractions(r, eta, epochs)

    def make() -> SchedulePhasePruner:
        return SchedulePhasePruner(fractions, eta, epochs, default_t_max=epochs, running_best=True)

    return Policy("phase_best", make, make().rung_epochs_of)


def extrapolating(r: int, eta: int, epochs: int) -> Policy:
    """The extrapolation policy, at the plain epoch rungs of successive halving."""
    fractions = phase_fractions(r, eta, epochs)
    rungs = [f * epochs for f in fractions]
    return Policy(
        "extrapolate",
        lambda: ExtrapolatingPruner(fractions, eta, epochs, default_t_max=epochs, t_max_param=None),
        lambda _: rungs,
    )


@dataclass(frozen=True)
class Draw:
    """One simulated sweep: which configs, in what order, and their curves on this split."""

    configs: np.ndarray
    order: np.ndarray
    epoch_time: np.ndarray
    val: np.ndarray
    value: np.ndarray
    test: np.ndarray
    params: list[dict[str, float]]


def draws(pool: CurvePool, k: int, n: int, seed: int) -> list[Draw]:
    """``n`` sweeps of ``k`` configs, each on its own val / holdout / test split (thirds)."""
    rng = np.random.default_rng(seed)
    n_images = pool.counts.shape[2]
    third = n_images // 3
    out = []
    for _ in range(n):
        images = rng.permutation(n_images)
        configs = rng.choice(len(pool.configs), size=k, replace=False)
        sub = CurvePool(pool.counts[configs], pool.train_hmean[configs], [], pool.epochs)
        val = sub.hmean(images[:third])
        hold = sub.hmean(images[third : 2 * third])
        test = sub.hmean(images[2 * third : 3 * third])
        best = val.argmax(axis=1)
        rows = np.arange(k)
        out.append(
            Draw(
                configs=configs,
                order=rng.permutation(k),
                epoch_time=rng.uniform(0.9, 1.1, k),
                val=val,
                value=(val[rows, best] + hold[rows, best]) / 2,
                test=test[rows, best],
                params=[pool.configs[c] for c in configs],
            )
        )
    return out


@dataclass(frozen=True)
class PolicySummary:
    name: str
    epochs: float
    regret: np.ndarray
    survived: float
    rho: np.ndarray
    seconds: float


def measure(policy: Policy, sweeps: list[Draw], workers: int) -> PolicySummary:
    """Replay every sweep under ``policy``."""
    epochs, regret, survived, rhos = [], [], [], []
    started = time.perf_counter()
    for d in sweeps:
        run = replay(
            d.val,
            policy.make(),
            workers=workers,
            order=d.order,
            params=d.params,
            epoch_time=d.epoch_time,
            decisions=[policy.decisions(p) for p in d.params],
        )
        outcome = judge(run, d.value, d.test)
        epochs.append(outcome.epochs)
        regret.append(outcome.regret)
        survived.append(outcome.winner_survived)
        rungs = [policy.rungs(p) for p in d.params]
        if rungs[0]:
            width = min(len(r) for r in rungs)
            rhos.append(rung_correlation(d.val, np.array([r[:width] for r in rungs]), d.value))
    width = min((len(r) for r in rhos), default=0)
    rho = np.mean([r[:width] for r in rhos], axis=0) if width else np.array([])
    return PolicySummary(
        policy.name,
        float(np.mean(epochs)),
        np.array(regret),
        float(np.mean(survived)),
        rho,
        time.perf_counter() - started,
    )


EXTRA = {"phase_best": phase_best, "extrapolate": extrapolating}
"""Policies measured here only (not pruner kinds)."""


def replay_speed(pool: CurvePool, trials: int = 60, n: int = 200) -> list[str]:
    """Seconds per 1000 replays of a ``trials``-trial sweep (configs drawn with replacement)."""
    rng = np.random.default_rng(2)
    curves = pool.hmean(np.arange(pool.counts.shape[2]))
    lines = []
    for name in ("none", "successive_halving", "hyperband", "median", "schedule_aware"):
        policy = make_policy(
            name, min_resource=1, reduction_factor=3, epochs=pool.epochs, default_t_max=pool.epochs
        )
        picks = [rng.choice(len(pool.configs), size=trials) for _ in range(n)]
        started = time.perf_counter()
        for configs in picks:
            params = [pool.configs[c] for c in configs]
            replay(
                curves[configs],
                policy.make(),
                params=params,
                epoch_time=rng.uniform(0.9, 1.1, trials),
                decisions=[policy.decisions(p) for p in params],
            )
        seconds = (time.perf_counter() - started) * 1000 / n
        lines.append(f"  {name}: {seconds:.1f} s per 1000 replays of a {trials}-trial sweep")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny pool: a check of the pipeline")
    parser.add_argument("--cache", type=Path, default=Path("runs/curve_pool"))
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--k", type=int, default=24)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--min-resource", type=int, default=1)
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--speed", action="store_true", help="also time 60-trial replays")
    parser.add_argument("--policies", nargs="+", default=[*POLICIES, *EXTRA])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = pool_folder(args.cache, args.quick)
    pool = build_pool(folder, QUICK) if args.quick else load_pool(folder)
    k = min(args.k, len(pool.configs))
    n = 20 if args.quick else args.draws
    print(f"machine: {describe()}")
    print(
        f"pool: {len(pool.configs)} configs x {pool.epochs} epochs, "
        f"{pool.counts.shape[2]} evaluation images (val / holdout / test a third each); "
        f"{n} sweeps of K = {k}, {args.workers} workers; rungs from min_resource "
        f"{args.min_resource}, reduction factor {args.reduction_factor}"
    )
    sweeps = draws(pool, k, n, seed=1)
    summaries = []
    for name in args.policies:
        if name in EXTRA:
            policy = EXTRA[name](args.min_resource, args.reduction_factor, pool.epochs)
            summaries.append(measure(policy, sweeps, args.workers))
            continue
        policy = make_policy(
            name,
            min_resource=args.min_resource,
            reduction_factor=args.reduction_factor,
            epochs=pool.epochs,
            default_t_max=pool.epochs,
        )
        summaries.append(measure(policy, sweeps, args.workers))
    base = next(s for s in summaries if s.name == "none")
    print(
        "\n| policy | epochs | fewer than none | test regret | regret - none's (95%) "
        "| winner survives | rung-to-final rho | s / 1000 sweeps |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for s in summaries:
        diff = s.regret - base.regret
        half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
        rho = " / ".join(f"{r:.2f}" for r in s.rho) or "-"
        print(
            f"| {s.name} | {s.epochs:.1f} | {base.epochs / s.epochs:.2f}x | "
            f"{100 * s.regret.mean():.2f} | {100 * (diff.mean() - half):+.2f} .. "
            f"{100 * (diff.mean() + half):+.2f} | {100 * s.survived:.0f}% | {rho} | "
            f"{1000 * s.seconds / n:.1f} |"
        )
    if args.speed:
        print("\nreplay speed, 4 workers:")
        for line in replay_speed(pool):
            print(line)


if __name__ == "__main__":
    main()
