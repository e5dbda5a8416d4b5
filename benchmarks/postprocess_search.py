"""How long ``sweeper tune-postprocess`` searches once a trial's maps are cached.

``uv run python benchmarks/postprocess_search.py [--images 100] [--trials 300]``

The issue's goal: a 300-trial search over 100 val images at 640 x 640 in under a minute on
2 cores. The maps are synthetic (trainer_core.data.synthetic_maps: DB kernels of 20-40 text
regions per image, blurred, dimmed, with misses, false blobs and noise), written and read
through the real cache (float16, compressed); the search is the real one
(``sweeper.postprocess_search.run_search``: TPE, one SQLite trial per setting, scored by
``MapScorer``). Printed: the machine, the cache's size and read time, the search's wall time
split into scoring and Optuna + SQLite, and the H-mean before and after. A check scores the
best setting with the full post-processing and metrics and asserts the same counts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

from sweeper.after import run_search
from sweeper.define import PostprocessSearchSpec
from trainer_core.config import DataConfig, PostprocessConfig
from trainer_core.data import make_splits
from trainer_core.data.synthetic import generate
from trainer_core.data.synthetic_maps import synthetic_prob_maps
from trainer_core.metrics import detection_metrics
from trainer_core.postprocess import polygons_from_prob
from trainer_core.prob_maps import MapScorer, ProbMaps, load_prob_maps, save_prob_maps


def _split(samples: list, size: int, seed: int) -> ProbMaps:
    maps, scales = synthetic_prob_maps(samples, size, seed)
    return ProbMaps(
        maps, scales, [list(s.polygons) for s in samples], [list(s.ignore) for s in samples]
    )


class _Timed:
    """A MapScorer whose ``metrics`` calls are timed."""

    def __init__(self, scorer: MapScorer) -> None:
        self.scorer, self.seconds = scorer, 0.0

    def metrics(self, post: PostprocessConfig):
        start = time.perf_counter()
        try:
            return self.scorer.metrics(post)
        finally:
            self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--size", type=int, default=640)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(
        "machine:",
        describe(
            f"optuna {optuna.__version__}", f"opencv {cv2.__version__}", "cv2.setNumThreads(1)"
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        annotations = generate(
            root / "data",
            n_images=args.images * 2,
            size=(args.size, args.size * 3 // 4),
            seed=0,
            regions=(20, 40),
        )
        data = DataConfig(
            image_root=annotations.parent / "images", annotations=annotations, val_fraction=0.5
        )
        splits = make_splits(data)
        val, gap = (
            _split(splits.val[: args.images], args.size, 1),
            _split(splits.train[:16], args.size, 2),
        )
        cache = root / "prob_maps.npz"
        save_prob_maps(cache, val, gap, {"gap_split": "train"})
        start = time.perf_counter()
        cached = load_prob_maps(cache)
        read_s = time.perf_counter() - start
        n_regions = sum(len(p) for p in cached.val.polygons)
        print(
            f"cache: {len(cached.val)} val maps {args.size}x{args.size} ({n_regions} regions) + "
            f"{len(cached.gap)} gap maps, {cache.stat().st_size / 1e6:.1f} MB float16 compressed "
            f"({val.maps.nbytes / 1e6:.0f} MB raw), read in {read_s:.2f} s"
        )

        ranges = PostprocessSearchSpec()
        own = PostprocessConfig()
        scorer = _Timed(MapScorer(cached.val, "dataset", ranges.box_thresh.span()[0]))
        before = scorer.metrics(own).hmean
        scorer.seconds = 0.0
        search = optuna.create_study(
            storage=f"sqlite:///{root / 'search.db'}",
            study_name="bench.trial-0.postprocess",
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=ranges.seed, multivariate=True),
        )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        start = time.perf_counter()
        best = run_search(search, ranges, scorer, own, args.trials)  # type: ignore[arg-type]
        total = time.perf_counter() - start
        print(
            f"search: {args.trials} trials in {total:.1f} s "
            f"({1000 * total / args.trials:.0f} ms a trial): scoring {scorer.seconds:.1f} s, "
            f"Optuna + SQLite {total - scorer.seconds:.1f} s"
        )
        print(f"val H-mean {100 * before:.2f} (defaults) -> {100 * best.value:.2f}: {best.params}")

        # The staged scorer against the whole pipeline, on the best setting.
        post = own.model_copy(update=best.params)
        preds = [
            [
                p / float(cached.val.scales[i])
                for p in polygons_from_prob(cached.val.prob(i), **post.model_dump())[0]
            ]
            for i in range(len(cached.val))
        ]
        full = detection_metrics(cached.val.polygons, cached.val.ignore, preds)
        staged = scorer.scorer.metrics(post)
        assert (full.n_gt, full.n_pred, full.n_match) == (
            staged.n_gt,
            staged.n_pred,
            staged.n_match,
        )
        print(
            "check: the full post-processing + metrics give the same counts "
            f"({full.n_match} matches)"
        )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
