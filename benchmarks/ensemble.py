"""Does a fold ensemble beat its members on unseen pages, and what does each member cost?

1. Data like the team's, as ``selection.py`` makes it: synthetic receipt pages (192 x 96) for
   a starting point, a training set, and a labelled evaluation set never trained on.
2. A starting point trained once (kept in ``--cache``, or ``--start FILE``), as the team
   starts from pretrained weights.
3. N fold models: the real ``fit`` fine-tuning from it with ``data.n_folds = N``,
   ``data.fold = k``, the re-runs ``sweeper verify --folds N`` makes.
4. Each member alone and the ensemble of all N (``trainer_core.inference.Ensemble``: maps
   averaged per image before one post-processing) scored on half of the evaluation pages in
   original coordinates: at the config's post-processing, and at the post-processing that
   scores best on the other half (a grid over ``thresh`` and ``box_thresh``, scored on the
   maps by ``MapScorer``, as ``tune-postprocess`` scores). An averaged map is flatter where
   the members disagree, so the box score threshold that suits one model need not suit it.
5. Time per image of ``predict_images`` (reading, the members, post-processing) with K = 1..N
   members, in one thread, as process CPU time (robust to a shared machine) and wall time: on
   the evaluation pages with the fold models, and on the real SROIE receipts (460x1000 to
   750x2200) with DBNet-resnet18 at 640 px, the production size (random weights: the time
   does not depend on them).

    uv run python benchmarks/ensemble.py            # the measurement (see BENCHMARKS.md)
    uv run python benchmarks/ensemble.py --quick    # the pipeline end to end, small
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import selection
import torch
from machine import describe
from selection import Setup, _base, _data, _pretrained

from trainer_core.config import ModelConfig, PostprocessConfig, TrainConfig
from trainer_core.data import Sample, read_ufo
from trainer_core.data.image_files import list_images, read_upright
from trainer_core.fit import fit
from trainer_core.inference import Ensemble, Member, load_member, predict_images
from trainer_core.model import build_model
from trainer_core.prob_maps import MapScorer, ProbMaps

CPU = torch.device("cpu")
SROIE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sroie_receipts" / "img"


@dataclass(frozen=True)
class Sizes:
    folds: int
    epochs: int
    data: Setup
    repeats: int


FULL = Sizes(folds=5, epochs=5, data=replace(selection.FULL, eval_images=120), repeats=3)
QUICK = Sizes(folds=3, epochs=1, data=replace(selection.QUICK, eval_images=12), repeats=1)


def _folds(cache: Path, start: Path, train: Path, sizes: Sizes) -> list[Path]:
    """The fold models' best.pt, each trained once and kept."""
    paths = []
    for k in range(sizes.folds):
        out = cache / f"fold-{k}-of-{sizes.folds}-{sizes.epochs}ep"
        done = out / "trained"  # best.pt appears at the first epoch: not a sign of the end
        if not done.exists():
            cfg = _base(train, out, sizes.epochs, init_checkpoint=str(start))
            cfg["data"] |= {"n_folds": sizes.folds, "fold": k}
            cfg |= {"optimizer": {"lr": 2e-3}, "scheduler": {"eta_min": 1e-5}}
            result = fit(TrainConfig.model_validate(cfg))
            print(f"fold {k}: its val H-mean {result.best.hmean:.3f}", flush=True)
            done.write_text(result.reason)
        paths.append(out / "best.pt")
    return paths


def _per_image(
    members: list[Member], paths: list[Path], post: PostprocessConfig, repeats: int
) -> tuple[float, float]:
    """Median over ``repeats`` of predict_images' (wall, process CPU) seconds per image, in
    one intra-op thread (one untimed run first). CPU time is what the work costs whatever
    else the machine runs; wall time shows the machine's load too."""
    ensemble = Ensemble(members, CPU)
    predict_images(ensemble, paths[:2], post)
    walls, cpus = [], []
    for _ in range(repeats):
        start_cpu = time.process_time()
        walls.append(predict_images(ensemble, paths, post).seconds / len(paths))
        cpus.append((time.process_time() - start_cpu) / len(paths))
    return statistics.median(walls), statistics.median(cpus)


def _timing_rows(
    members: list[Member], paths: list[Path], post: PostprocessConfig, repeats: int
) -> list[str]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows, one = [], None
        for k in sorted({1, 2, len(members) // 2 + 1, len(members)}):
            wall, cpu = _per_image(members[:k], paths, post, repeats)
            one = one or cpu
            rows.append(f"| {k} | {1e3 * cpu:.1f} | {cpu / one:.2f}x | {1e3 * wall:.1f} |")
        return rows
    finally:
        torch.set_num_threads(threads)


_TIMING_HEADER = (
    "| members | CPU ms per image (1 thread) | vs one | wall ms per image |\n|---:|---:|---:|---:|"
)

GRID = [
    {"thresh": t, "box_thresh": b} for t in (0.2, 0.3, 0.4, 0.5) for b in (0.3, 0.4, 0.5, 0.6, 0.7)
]


def _maps(members: list[Member], samples: list[Sample]) -> ProbMaps:
    """The ensemble's averaged maps of ``samples``, padded back to the input square, with the
    ground truth: what ``MapScorer`` scores (the pages' 2:1 aspect makes 1/scale exact)."""
    ensemble = Ensemble(members, CPU)
    size = ensemble.size
    maps = np.zeros((len(samples), size, size), np.float16)
    scales = np.zeros(len(samples))
    for first in range(0, len(samples), 16):
        chunk = samples[first : first + 16]
        images = [read_upright(s.image).pixels for s in chunk]
        for i, (prob, box) in enumerate(ensemble.prob_maps(images), start=first):
            maps[i, : prob.shape[0], : prob.shape[1]] = prob
            scales[i] = box.scale
    return ProbMaps(
        maps, scales, [list(s.polygons) for s in samples], [list(s.ignore) for s in samples]
    )


def _scores(tune: ProbMaps, test: ProbMaps, post: PostprocessConfig) -> tuple[float, float, str]:
    """Test H-mean at ``post``, and at the grid point best on ``tune`` (which it names)."""
    tuner, tester = MapScorer(tune, box_thresh_floor=0.1), MapScorer(test, box_thresh_floor=0.1)
    best = max(GRID, key=lambda g: tuner.metrics(post.model_copy(update=g)).hmean)
    tuned = tester.metrics(post.model_copy(update=best)).hmean
    return tester.metrics(post).hmean, tuned, f"{best['thresh']:g} / {best['box_thresh']:g}"


def _score_table(members: list[Member], evaluation: list[Sample], post: PostprocessConfig) -> None:
    half = len(evaluation) // 2
    tune, test = evaluation[:half], evaluation[half:]
    rows = {f"fold {k} alone": [m] for k, m in enumerate(members)}
    rows[f"ensemble of {len(members)} (maps averaged)"] = members
    results = {name: _scores(_maps(ms, tune), _maps(ms, test), post) for name, ms in rows.items()}
    alone = list(results.values())[:-1]
    print(
        f"H-mean (%) on {len(test)} held-out pages; tuned: thresh / box_thresh best on the "
        f"other {len(tune)}; the config's: {post.thresh:g} / {post.box_thresh:g}"
    )
    print("| model | config's post-processing | tuned | tuned to |\n|---|---:|---:|---|")
    for name, (plain, tuned, where) in results.items():
        print(f"| {name} | {100 * plain:.2f} | {100 * tuned:.2f} | {where} |")
    for what, pick in (("mean", statistics.mean), ("best", max)):
        plain, tuned = pick(r[0] for r in alone), pick(r[1] for r in alone)
        print(f"| {what} of the members | {100 * plain:.2f} | {100 * tuned:.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small: a check of the pipeline")
    parser.add_argument("--cache", type=Path, default=Path("runs/ensemble"))
    parser.add_argument("--start", type=Path, help="a starting point to fine-tune instead")
    parser.add_argument("--part", choices=("all", "scores", "timing"), default="all")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    cache = args.cache / ("quick" if args.quick else "full")
    torch.manual_seed(0)
    print(f"machine: {describe(f'torch {torch.__version__}')}")
    started = time.perf_counter()
    data = _data(cache, sizes.data)
    start = args.start or _pretrained(cache, data, sizes.data)
    folds = _folds(cache, start, data["train"], sizes)
    evaluation = read_ufo(data["eval"], data["eval"].parent / "images")
    loaded = [load_member(p) for p in folds]
    members = [m for m, _ in loaded]
    post = loaded[0][1].postprocess
    print(
        f"{sizes.folds} fold models (DBNet-resnet10t, 128 px, {sizes.epochs} epochs from "
        f"{start}) ready in {time.perf_counter() - started:.0f} s; scored on "
        f"{len(evaluation)} held-out pages\n"
    )
    if args.part != "timing":
        _score_table(members, evaluation, post)
    if args.part != "scores":
        _timing_tables(members, evaluation, post, sizes.repeats, quick=args.quick)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


def _timing_tables(
    members: list[Member],
    evaluation: list[Sample],
    post: PostprocessConfig,
    repeats: int,
    quick: bool,
) -> None:
    """Time per image of 1..N members: the fold models on the pages, and the production-sized
    DBNet-resnet18 at 640 px on the real receipts."""
    pages = [s.image for s in evaluation]
    print("\nper image, the fold models on the held-out pages (192x96, 128 px input):")
    print(_TIMING_HEADER)
    print("\n".join(_timing_rows(members, pages, post, repeats)))

    big = ModelConfig(backbone="resnet18", neck_channels=256)
    receipts = [Member(build_model(big), 640, "fp32") for _ in range(len(members))]
    real = list_images(SROIE)[: 3 if quick else None]
    print(f"\nper image, DBNet-resnet18 at 640 px on {len(real)} SROIE receipts:")
    print(_TIMING_HEADER)
    print("\n".join(_timing_rows(receipts, real, PostprocessConfig(), repeats)))


if __name__ == "__main__":
    main()
