"""Which ranking rule's pick holds up on data no rule saw? Measured on a pool of real trials.

The pool is the shared one of complete learning curves (``benchmarks/curve_pool.py``: fine-
tuning runs from one starting point on synthetic receipts, configs from the receipts space
scaled down, every epoch scored per image on an evaluation set never trained on, and on a
fixed subset of the training images for the train-gap rule). Built once, cached, and read
here and by ``benchmarks/pruning_replay.py``.

Sweeps are simulated from the pool at no further training cost (sweeper.selection.simulate):
each draw splits the evaluation images into val / holdout / test at random and takes K
trials; the best epoch is chosen on val, the holdout only ranks, the test only judges.

Prints the machine, the pool, and per rule: mean test H-mean of its pick, regret against
the best test H-mean among the K, its regret minus val's with a paired 95% interval, how
often it beats or ties the val pick, Kendall tau with the test order. ``--quick`` runs the
pipeline on the tiny pool (a check, not a measurement).

    uv run python benchmarks/selection.py --cache /work/cache/curve_pool   # the measurement
    uv run python benchmarks/selection.py --quick    # the pipeline end to end, small
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from curve_pool import QUICK as QUICK_POOL
from curve_pool import build_pool, load_pool, pool_folder
from machine import describe

from sweeper.rank import RuleSpec, simulate


@dataclass(frozen=True)
class Draws:
    """How sweeps are simulated from the pool."""

    k: int
    draws: int


FULL = Draws(k=12, draws=400)
QUICK = Draws(k=4, draws=50)
RULES = [
    RuleSpec("val"),
    RuleSpec("crossfit"),
    RuleSpec("holdout"),
    RuleSpec("mean"),
    *(
        RuleSpec("score", penalty, tolerance)
        for penalty in (0.5, 1.0, 2.0, 4.0)
        for tolerance in (0.0, 0.005, 0.01, 0.02)
    ),
    *(
        RuleSpec("score", penalty, tolerance, gap_split="train")
        for penalty in (0.5, 1.0)
        for tolerance in (0.02, 0.05)
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small pool: a check of the pipeline")
    parser.add_argument("--cache", type=Path, default=Path("runs/curve_pool"), help="the pool")
    args = parser.parse_args()
    setup = QUICK if args.quick else FULL
    print(f"machine: {describe(f'torch {torch.__version__}')}")
    folder = pool_folder(args.cache, args.quick)
    pool = build_pool(folder, QUICK_POOL) if args.quick else load_pool(folder)
    counts, train_hmean = pool.counts, pool.train_hmean
    third = counts.shape[2] // 3
    sizes = (third, third, third)
    print(
        f"pool: {counts.shape[0]} trials x {counts.shape[1]} epochs, {counts.shape[2]} evaluation "
        f"images; draws: {setup.draws}, K = {setup.k} trials, val / holdout / test = "
        f"{third} / {third} / {third} images"
    )
    summaries = simulate(
        counts,
        RULES,
        sizes=sizes,
        k=setup.k,
        draws=setup.draws,
        seed=1,
        train_hmean=train_hmean,
    )
    print(
        "\n| rule | mean test H | regret | regret - val's (95%) | beats or ties val | Kendall tau |"
    )
    print("|---|---|---|---|---|---|")
    for s in sorted(summaries, key=lambda s: -s.mean_test):
        low, high = (100 * x for x in s.regret_vs_val)
        print(
            f"| {s.label} | {100 * s.mean_test:.2f} | {100 * s.mean_regret:.2f} | "
            f"{low:+.2f} .. {high:+.2f} | {100 * s.beats_or_ties_val:.0f}% | "
            f"{s.kendall_tau:.3f} |"
        )


if __name__ == "__main__":
    main()
