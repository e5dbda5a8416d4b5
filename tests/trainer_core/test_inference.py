"""Inference on image folders: original coordinates on tall pages, ensembles, skipped files,
and the same scores the training run recorded."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from trainer_core.config import PostprocessConfig, TrainConfig
from trainer_core.data import eval_transform, make_splits, read_icdar
from trainer_core.data.dataset import IMAGENET_MEAN, IMAGENET_STD
from trainer_core.data.image_files import Orientation, list_images
from trainer_core.data.letterbox import Letterbox
from trainer_core.data.synthetic import generate
from trainer_core.engine import predict
from trainer_core.errors import DataError
from trainer_core.fit import FitResult, eval_loader, fit
from trainer_core.inference import (
    Ensemble,
    Member,
    evaluate_samples,
    load_member,
    predict_images,
)
from trainer_core.precision import resolve_precision

BROKEN = Path(__file__).parent / "data" / "broken"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, FitResult]:
    """A tiny resnet18 DBNet trained a few steps with the real fit, and its run."""
    root = tmp_path_factory.mktemp("inference")
    ann = generate(root / "data", n_images=10, size=(96, 96), seed=2, regions=(2, 4))
    cfg = TrainConfig.model_validate(
        {
            "model": {"backbone": "resnet18", "neck_channels": 32},
            "data": {
                "format": "ufo",
                "image_root": str(ann.parent / "images"),
                "annotations": str(ann),
                "val_fraction": 0.3,
            },
            "augment": {"enabled": False},
            "postprocess": {"thresh": 0.2, "box_thresh": 0.3},
            "optimizer": {"lr": 3e-3},
            "input_size": 64,
            "batch_size": 4,
            "epochs": 1,
            "precision": "fp32",
            "device": "cpu",
            "output_dir": str(root / "run"),
        }
    )
    result = fit(cfg)
    assert result.best is not None
    return cfg, result


def test_evaluation_gives_the_score_the_run_recorded(
    trained: tuple[TrainConfig, FitResult],
) -> None:
    cfg, result = trained
    member, stored_cfg = load_member(result.best_checkpoint)
    assert stored_cfg == cfg
    val = make_splits(cfg.data).val
    metrics, _ = evaluate_samples(
        Ensemble([member], CPU), val, cfg.postprocess, average=cfg.metric_average
    )
    assert metrics == result.best
    assert metrics.n_pred > 0 and metrics.n_gt > 0


def test_an_ensemble_of_one_is_the_model(trained: tuple[TrainConfig, FitResult]) -> None:
    cfg, result = trained
    member, _ = load_member(result.best_checkpoint)
    val = make_splits(cfg.data).val
    paths = [s.image for s in val]
    one = predict_images(Ensemble([member], CPU), paths, cfg.postprocess, batch_size=2)
    # The training run's own predict (the square images need no per-axis factors here).
    direct = predict(
        member.model,
        eval_loader(val, cfg),
        len(val),
        resolve_precision("fp32", CPU),
        CPU,
        cfg.postprocess,
    )
    assert sum(len(p) for p in direct) > 0
    for ours, theirs in zip(one.polygons, direct, strict=True):
        assert ours is not None and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, np.clip(b, 0, 95), atol=1e-3)
    # Twice the same member averages to the same maps, bit for bit.
    twice = predict_images(Ensemble([member, member], CPU), paths, cfg.postprocess)
    for a, b in zip(one.polygons, twice.polygons, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_members_maps_are_averaged_at_the_largest_input(
    trained: tuple[TrainConfig, FitResult],
) -> None:
    cfg, result = trained
    small, _ = load_member(result.best_checkpoint)
    torch.manual_seed(1)
    other, _ = load_member(result.best_checkpoint)
    with torch.no_grad():
        for p in other.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    large = Member(other.model, 96, "fp32")
    image = cv2.cvtColor(cv2.imread(str(make_splits(cfg.data).val[0].image)), cv2.COLOR_BGR2RGB)
    [(mean, box)] = Ensemble([small, large], CPU).prob_maps([image])
    [(a, _)] = Ensemble([small], CPU).prob_maps([image])
    [(b, _)] = Ensemble([large], CPU).prob_maps([image])
    assert box == Letterbox(96, 96, 96) and mean.shape == b.shape == (96, 96)
    a_up = cv2.resize(a, (96, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(mean, (a_up + b) / 2, atol=1e-6)
    assert not np.allclose(a_up, b, atol=1e-3)


class Darkness(nn.Module):
    """A stand-in detector whose text probability is how dark a pixel is: on a white page
    with black bars, the text is exactly where the bars are, so the geometry shows alone."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        mean = torch.from_numpy(IMAGENET_MEAN)[:, None, None]
        std = torch.from_numpy(IMAGENET_STD)[:, None, None]
        rgb = images * std + mean
        return {"prob": (1 - rgb.mean(dim=1)).clamp(0, 1)}


# Bars on a 750 x 2200 page, as receipts are: (x0, y0, x1, y1), long thin lines.
BARS = [(60, 100, 690, 160), (60, 900, 400, 960), (300, 2000, 700, 2080)]


def _page(path: Path, height: int = 2200, width: int = 750) -> Path:
    page = np.full((height, width, 3), 255, np.uint8)
    for x0, y0, x1, y1 in BARS:
        page[y0:y1, x0:x1] = 0
    cv2.imwrite(str(path), page)
    return path


def _box(bar: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = bar
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_predictions_land_on_their_text_on_a_tall_page(tmp_path: Path) -> None:
    page = _page(tmp_path / "receipt.png")
    post = PostprocessConfig(thresh=0.5, box_thresh=0.5, unclip_ratio=0.05, min_size=1)
    run = predict_images(Ensemble([Member(Darkness(), 256, "fp32")], CPU), [page], post)
    [polygons] = run.polygons
    assert polygons is not None and len(polygons) == len(BARS)
    found = sorted(polygons, key=lambda p: float(p[:, 1].min()))
    input_pixel = 2200 / 256
    for polygon, bar in zip(found, BARS, strict=True):
        # Within an input pixel and a half of the bar's corners (contours run through the
        # centres of the edge pixels), in the page's own pixels: a lost letterbox would put
        # the bottom bar ~1400 px off, a square stretch the x's 3x.
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        np.testing.assert_allclose(lo, bar[:2], atol=1.5 * input_pixel)
        np.testing.assert_allclose(hi, bar[2:], atol=1.5 * input_pixel)


def test_a_sideways_photo_is_read_upright_and_scored_in_its_stored_grid(tmp_path: Path) -> None:
    from PIL import Image

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    upright = _page(images / "upright.png")
    stored = np.rot90(cv2.imread(str(upright)), k=1)  # stored turned left: orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = images / "sideways.png"
    Image.fromarray(np.ascontiguousarray(stored[..., ::-1])).save(sideways, exif=exif)
    post = PostprocessConfig(thresh=0.5, box_thresh=0.5, unclip_ratio=0.05, min_size=1)
    ensemble = Ensemble([Member(Darkness(), 256, "fp32")], CPU)
    run = predict_images(ensemble, [upright, sideways], post)
    a, b = (sorted(p, key=lambda q: float(q[:, 1].min())) for p in run.polygons)  # type: ignore[arg-type]
    for p, q in zip(a, b, strict=True):
        np.testing.assert_allclose(p.min(axis=0), q.min(axis=0), atol=1.0)
        np.testing.assert_allclose(p.max(axis=0), q.max(axis=0), atol=1.0)

    # Scored against labels in each file's stored grid (as the readers measure), every bar
    # is found: the sideways page's predictions are turned back into its grid.
    orientation = Orientation(6, 750, 2200)
    for name, to_grid in (("upright", lambda p: p), ("sideways", orientation.to_stored)):
        lines = [",".join(f"{v:g}" for v in to_grid(_box(bar)).ravel()) for bar in BARS]
        (labels / f"gt_{name}.txt").write_text("".join(f"{line},TEXT\n" for line in lines))
    samples = read_icdar(images, labels)
    metrics, _ = evaluate_samples(ensemble, samples, post)
    assert (metrics.n_gt, metrics.n_pred, metrics.n_match) == (6, 6, 6)


def test_the_network_resize_is_undone_within_a_pixel(shared_data: Path) -> None:
    """Ground truth of the receipts taken into the network's input and back lands where it
    started, and where the resized image shows it."""
    root = shared_data / "sroie_receipts"
    samples = read_icdar(root / "img", root / "box")
    assert samples
    for sample in samples:
        h, w = cv2.imread(str(sample.image)).shape[:2]
        box = Letterbox(640, h, w)
        for polygon in sample.polygons:
            back = box.to_original(box.to_network(polygon))
            assert np.abs(back - polygon).max() < 1e-2
    # The resized content sits where to_network says: a white page's extent, and a bar.
    page = np.full((2200, 750, 3), 255, np.uint8)
    x0, y0, x1, y1 = BARS[2]
    page[y0:y1, x0:x1] = 0
    net = eval_transform(640)(page).image[..., 0]
    box = Letterbox(640, 2200, 750)
    rows, cols = np.nonzero(net > 0)
    assert (rows.max() + 1, cols.max() + 1) == box.new_hw
    dark_rows, dark_cols = np.nonzero(net[: box.new_hw[0], : box.new_hw[1]] < 128)
    corners = box.to_network(_box(BARS[2]))
    np.testing.assert_allclose(
        [dark_cols.min(), dark_rows.min(), dark_cols.max() + 1, dark_rows.max() + 1],
        [*corners.min(axis=0), *corners.max(axis=0)],
        atol=1.0,
    )


def test_unreadable_images_are_named_skipped_and_counted(
    trained: tuple[TrainConfig, FitResult], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg, result = trained
    folder = tmp_path / "images"
    folder.mkdir()
    for sample in make_splits(cfg.data).val[:2]:
        shutil.copy(sample.image, folder / sample.image.name)
    shutil.copy(BROKEN / "icdar" / "images" / "corrupt.jpg", folder / "a_corrupt.jpg")
    good = next(folder.glob("synth_*.jpg")).read_bytes()
    (folder / "z_cut.jpg").write_bytes(good[: len(good) // 2])
    member, _ = load_member(result.best_checkpoint)
    seen: list[tuple[str, bool]] = []
    caplog.set_level(logging.WARNING, logger="trainer_core.inference")
    run = predict_images(
        Ensemble([member], CPU),
        list_images(folder),
        cfg.postprocess,
        batch_size=3,
        on_image=lambda path, ok: seen.append((path.name, ok)),
    )
    assert [name for name, _ in seen] == [p.name for p in list_images(folder)]
    assert [p.name for p, _ in run.skipped] == ["a_corrupt.jpg", "z_cut.jpg"]
    assert run.n_done == 2 and list(run.by_name()) == [n for n, ok in seen if ok]
    messages = [r.getMessage() for r in caplog.records]
    assert any("a_corrupt.jpg: image unreadable; skipped" in m for m in messages)
    assert any("z_cut.jpg: image truncated" in m for m in messages)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.pt: no such checkpoint"):
        load_member(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"bad\.pt: not a readable checkpoint"):
        load_member(bad)
    torch.save({"model": {}}, tmp_path / "weights.pt")
    with pytest.raises(DataError, match=r"weights\.pt: holds no 'model' and 'config'"):
        load_member(tmp_path / "weights.pt")
