"""Cached probability maps: made by one inference pass, reused, and scored exactly as the
full post-processing and metrics would score them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer_core.checkpoint import save_checkpoint
from trainer_core.config import PostprocessConfig, TrainConfig
from trainer_core.data import DetectionDataset, make_splits
from trainer_core.data.synthetic import generate
from trainer_core.data.synthetic_maps import synthetic_prob_maps
from trainer_core.fit import gap_samples
from trainer_core.metrics import detection_metrics
from trainer_core.model import build_model
from trainer_core.postprocess import polygons_from_prob
from trainer_core.prob_maps import CACHE_NAME, MapScorer, ProbMaps, cache_prob_maps


@pytest.fixture(scope="module")
def dataset_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(
        tmp_path_factory.mktemp("maps"), n_images=12, size=(160, 128), seed=4, regions=(4, 12)
    )


def _config(dataset_json: Path, holdout: float = 0.25) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "model": {"backbone": "mobilenetv3_small_050", "neck_channels": 32},
            "data": {
                "format": "ufo",
                "image_root": str(dataset_json.parent / "images"),
                "annotations": str(dataset_json),
                "val_fraction": 0.25,
                "holdout_fraction": holdout,
                "gap_subset": 3,
            },
            "input_size": 64,
            "batch_size": 4,
            "precision": "fp32",
            "device": "cpu",
        }
    )


def _direct(maps: ProbMaps, post: PostprocessConfig, average: str) -> tuple[int, int, int, float]:
    preds = []
    for i in range(len(maps)):
        polygons, _ = polygons_from_prob(maps.prob(i), **post.model_dump())
        preds.append([p / float(maps.scales[i]) for p in polygons])
    m = detection_metrics(maps.polygons, maps.ignore, preds, average=average)  # type: ignore[arg-type]
    return m.n_gt, m.n_pred, m.n_match, m.hmean


@pytest.mark.parametrize("average", ["dataset", "image"])
def test_the_staged_scorer_gives_what_the_full_pipeline_gives(
    dataset_json: Path, average: str
) -> None:
    samples = make_splits(_config(dataset_json).data).train
    maps, scales = synthetic_prob_maps(samples, 256, seed=1)
    split = ProbMaps(
        maps, scales, [list(s.polygons) for s in samples], [list(s.ignore) for s in samples]
    )
    scorer = MapScorer(split, average, box_thresh_floor=0.1)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    seen_matches = set()
    # Settings repeat thresh and unclip_ratio so cached stages are reused with new subsets.
    for _ in range(12):
        post = PostprocessConfig(
            thresh=float(rng.choice([0.2, 0.3, 0.45])),
            box_thresh=float(rng.uniform(0.1, 0.9)),
            unclip_ratio=float(rng.choice([1.5, 2.2])),
            max_candidates=int(rng.choice([2, 5, 1000])),
        )
        got = scorer.metrics(post)
        want = _direct(split, post, average)
        assert (got.n_gt, got.n_pred, got.n_match) == want[:3], post
        assert got.hmean == pytest.approx(want[3])
        seen_matches.add(got.n_match)
    assert len(seen_matches) > 3  # the settings made a difference
    polygon = PostprocessConfig(output="polygon", box_thresh=0.3)
    got = scorer.metrics(polygon)
    assert (got.n_gt, got.n_pred, got.n_match) == _direct(split, polygon, average)[:3]
    with pytest.raises(ValueError, match="box_thresh_floor"):
        scorer.metrics(PostprocessConfig(box_thresh=0.05))


def _checkpoint(path: Path, cfg: TrainConfig, seed: int) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, {"model": build_model(cfg.model).state_dict(), "epoch": 1})
    return path


def test_maps_are_made_once_then_reused_until_the_weights_change(
    dataset_json: Path, tmp_path: Path
) -> None:
    cfg = _config(dataset_json)
    best = _checkpoint(tmp_path / "best.pt", cfg, seed=0)
    first = cache_prob_maps(cfg, best)
    assert not first.reused and first.path == tmp_path / CACHE_NAME
    splits = make_splits(cfg.data)
    assert first.gap_split == "holdout"
    assert len(first.val) == len(splits.val) and len(first.gap) == len(splits.holdout)
    assert first.val.maps.dtype == np.float16 and first.val.maps.shape[1:] == (64, 64)

    # The cached maps are the network's, up to float16 rounding.
    model = build_model(cfg.model)
    model.load_state_dict(torch.load(best, weights_only=True)["model"])
    model.eval()
    item = DetectionDataset(splits.val, cfg, train=False)[0]
    with torch.inference_mode():
        prob = model(item["image"][None])["prob"][0].numpy()  # type: ignore[index]
    assert np.abs(first.val.prob(0) - prob).max() < 1e-3
    assert first.val.scales[0] == pytest.approx(item["scale"])
    assert [len(p) for p in first.val.polygons] == [len(s.polygons) for s in splits.val]

    again = cache_prob_maps(cfg, best)
    assert again.reused
    np.testing.assert_array_equal(again.val.maps, first.val.maps)
    np.testing.assert_array_equal(again.gap.scales, first.gap.scales)
    for a, b in zip(again.gap.polygons, first.gap.polygons, strict=True):
        assert all(np.allclose(p, q) for p, q in zip(a, b, strict=True))
    assert again.gap.ignore == first.gap.ignore

    _checkpoint(best, cfg, seed=1)  # other weights, same file name
    remade = cache_prob_maps(cfg, best)
    assert not remade.reused
    assert np.abs(remade.val.maps.astype(np.float32) - first.val.maps).max() > 1e-3


def test_without_a_holdout_the_gap_split_is_the_seeded_train_subset(
    dataset_json: Path, tmp_path: Path
) -> None:
    cfg = _config(dataset_json, holdout=0.0)
    cached = cache_prob_maps(cfg, _checkpoint(tmp_path / "best.pt", cfg, seed=0))
    splits = make_splits(cfg.data)
    subset = gap_samples(cfg, splits.train, splits.holdout)
    assert cached.gap_split == "train" and len(cached.gap) == 3
    assert [len(p) for p in cached.gap.polygons] == [len(s.polygons) for s in subset]


def test_no_checkpoint_is_a_file_not_found(dataset_json: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cache_prob_maps(_config(dataset_json), tmp_path / "best.pt")
