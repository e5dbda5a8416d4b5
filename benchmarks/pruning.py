"""What Hyperband saves on the warm-started demo study: epochs trained, wall time, best score.

For each sampler seed, the bundled demo spec (fine-tuning runs from the demo's pretrained
starting point) is swept twice with the same trial budget: once with its pruner and once
with pruning off (``pruner.kind: none``). Prints each seed's rows, the means, and Hyperband's
bracket arithmetic for the demo's epoch range and reduction factor (the most it can save)
beside a longer epoch range and successive halving (``pruner.kind: successive_halving``),
so the 3x goal can be judged against what the settings allow.

Usage: uv run python benchmarks/pruning.py [--procs 2] [--seeds 0 1 2]
           [--kinds hyperband none] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import optuna
from machine import describe
from rich.console import Console

from storage import open_storage
from sweeper.define import (
    StudySpec,
    brackets,
    create_study,
    ideal_saving,
    load_spec,
    load_study,
    parse_spec,
)
from sweeper.demo import DEMO_DATA, bundled_spec, pretrained_checkpoint
from sweeper.rank import pruning_saving, rank_study
from sweeper.run import WorkerOptions, plan_slots, run_workers
from trainer_core.data.synthetic import generate


def sweep(workdir: Path, spec: StudySpec, kind: str, seed: int, procs: int) -> dict[str, float]:
    """One sweep of the demo study with pruner ``kind`` and sampler ``seed``."""
    raw = spec.model_dump(mode="json")
    raw["name"] = f"{kind}-seed{seed}"
    raw["pruner"] = {**raw["pruner"], "kind": kind}
    raw["sampler"] = {**raw["sampler"], "seed": seed}
    spec = parse_spec(raw)
    url = f"sqlite:///{workdir / 'bench.db'}"
    create_study(spec, open_storage(url))
    start = time.perf_counter()
    options = WorkerOptions(spec.name, workdir / "artifacts", data_root=workdir)
    run_workers(options, url, plan_slots("auto", procs=procs), console=Console(quiet=True))
    wall = time.perf_counter() - start
    study, spec = load_study(spec.name, open_storage(url))
    ranking = rank_study(study, spec)
    saving = pruning_saving(study.get_trials(deepcopy=False), spec.base.epochs)
    return {
        "trials": saving.trials,
        "pruned": saving.pruned,
        "epochs": saving.trained,
        "wall_s": wall,
        "best_score": ranking.completed[0].score if ranking.completed else float("nan"),
        "best_val": max((t.val_hmean for t in ranking.completed), default=float("nan")),
    }


def arithmetic(spec: StudySpec) -> list[str]:
    """Hyperband's best case for the demo's settings and for settings that reach 3x."""
    r, eta, epochs = spec.pruner.min_resource, spec.pruner.reduction_factor, spec.base.epochs
    lines = [f"bracket arithmetic (ideal: each rung keeps exactly 1/{eta}; sweeper/brackets.py):"]
    for b in brackets(r, eta, epochs):
        lines.append(
            f"  demo bracket {b.index}: rungs {b.rungs or 'none'}, share {b.share}, "
            f"{b.mean_epochs:.2f} of {epochs} epochs a trial"
        )
    for label, kind, e in [
        ("demo, hyperband", "hyperband", epochs),
        ("demo, successive_halving", "successive_halving", epochs),
        ("27 epochs, hyperband", "hyperband", 27),
        ("27 epochs, successive_halving", "successive_halving", 27),
        ("81 epochs, hyperband", "hyperband", 81),
    ]:
        lines.append(
            f"  {label:<30} r={r} eta={eta} E={e}: at best "
            f"{ideal_saving(r, eta, e, kind):.2f}x fewer epochs"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--kinds", nargs="+", default=["hyperband", "none"])
    parser.add_argument("--dir", type=Path, default=Path("bench-pruning"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = args.dir.resolve()
    spec = load_spec(bundled_spec("demo.yaml"))
    print(f"machine: {describe()}; warm-started demo study, {args.procs} procs")
    for line in arithmetic(spec):
        print(line)
    # One dataset and one starting point for every sweep, made (or reused) here.
    data = spec.base.data
    assert data.annotations is not None
    if not (root / data.annotations).exists():
        generate((root / data.annotations).parent, seed=0, **DEMO_DATA)
    pretrained_checkpoint(root, spec, Console(quiet=True))

    header = (
        f"{'seed':>4} {'pruner':<18} {'trials':>6} {'pruned':>6} {'epochs':>6} "
        f"{'wall s':>7} {'best score':>10} {'best val H':>10}"
    )
    print(header)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in args.kinds}
    for seed in args.seeds:
        for kind in args.kinds:
            workdir = root / f"{kind}-seed{seed}"
            workdir.mkdir(parents=True, exist_ok=True)
            for link in ("demo-data", "pretrained"):  # shared, not copied
                if not (workdir / link).exists():
                    (workdir / link).symlink_to(root / link)
            r = sweep(workdir, spec, kind, seed, args.procs)
            rows[kind].append(r)
            print(_row(str(seed), kind, r), flush=True)
    for kind, found in rows.items():
        mean = {k: statistics.fmean(r[k] for r in found) for k in found[0]}
        print(_row("mean", kind, mean))
    if "none" in rows and len(rows) > 1:
        base = rows["none"]
        for kind, found in rows.items():
            if kind == "none":
                continue
            ratio = statistics.fmean(b["epochs"] for b in base) / statistics.fmean(
                r["epochs"] for r in found
            )
            delta = statistics.fmean(
                r["best_score"] - b["best_score"] for r, b in zip(found, base, strict=True)
            )
            print(
                f"{kind}: {ratio:.2f}x fewer epochs than no pruning; best score "
                f"{delta:+.4f} against it (mean over seeds)"
            )


def _row(seed: str, kind: str, r: dict[str, float]) -> str:
    return (
        f"{seed:>4} {kind:<18} {r['trials']:>6.0f} {r['pruned']:>6.0f} {r['epochs']:>6.0f} "
        f"{r['wall_s']:>7.0f} {r['best_score']:>10.4f} {r['best_val']:>10.4f}"
    )


if __name__ == "__main__":
    main()
