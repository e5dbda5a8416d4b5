"""What Hyperband saves on the demo study: epochs trained and the best score found.

Runs the bundled demo spec twice with the same trial budget and sampler seed: once with
its Hyperband pruner, once with pruning off (``pruner.kind: none``). Prints total epochs trained, wall time, pruned trials and the best score.

Usage: uv run python benchmarks/pruning.py [--procs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from machine import describe
from rich.console import Console

from storage import open_storage
from sweeper.demo import DEMO_DATA, bundled_spec
from sweeper.dispatch import plan_slots, run_workers
from sweeper.ranking import rank_study
from sweeper.spec import load_spec, parse_spec
from sweeper.study import create_study, load_study
from trainer_core.data.synthetic import generate


def sweep(workdir: Path, pruning: bool, procs: int) -> dict[str, float]:
    spec = load_spec(bundled_spec("demo.yaml"))
    data = spec.base.data
    generate((workdir / data.annotations).parent, seed=0, **DEMO_DATA)
    raw = spec.model_dump(mode="json")
    raw["name"] = "pruning" if pruning else "no-pruning"
    if not pruning:
        raw["pruner"] = {**raw["pruner"], "kind": "none"}
    spec = parse_spec(raw)
    url = f"sqlite:///{workdir / 'bench.db'}"
    create_study(spec, open_storage(url))
    start = time.perf_counter()
    run_workers(
        spec.name,
        url,
        plan_slots("auto", procs=procs),
        artifacts=workdir / "artifacts",
        child_options={"data_root": str(workdir)},
        console=Console(quiet=True),
    )
    wall = time.perf_counter() - start
    study, spec = load_study(spec.name, open_storage(url))
    ranking = rank_study(study, spec)
    epochs = sum(t.user_attrs.get("epochs_run", 0) for t in study.get_trials(deepcopy=False))
    return {
        "trials": len(ranking.completed) + len(ranking.pruned),
        "pruned": len(ranking.pruned),
        "epochs": epochs,
        "wall_s": wall,
        "best_score": ranking.completed[0].score if ranking.completed else float("nan"),
        "best_val": max((t.val_hmean for t in ranking.completed), default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {describe()}; demo study, {args.procs} procs")
    print(
        f"{'pruner':<10} {'trials':>6} {'pruned':>6} {'epochs':>6} {'wall s':>7} {'best score':>10}"
    )
    for pruning in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            r = sweep(Path(tmp), pruning, args.procs)
        name = "hyperband" if pruning else "none"
        print(
            f"{name:<10} {r['trials']:>6} {r['pruned']:>6} {r['epochs']:>6} "
            f"{r['wall_s']:>7.0f} {r['best_score']:>10.4f}"
        )


if __name__ == "__main__":
    main()
