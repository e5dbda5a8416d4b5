"""The dataset: item shapes and dtypes, batching, reproducible augmentation, image loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainer_core.config import TrainConfig
from trainer_core.data import DetectionDataset, load_image, make_splits, seed_worker
from trainer_core.data.synthetic import generate
from trainer_core.errors import DataError


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    ann = generate(tmp_path_factory.mktemp("ds"), n_images=6, size=(80, 120), seed=9)
    return TrainConfig.model_validate(
        {
            "data": {
                "image_root": str(ann.parent / "images"),
                "annotations": str(ann),
                "val_fraction": 0.34,
            },
            "input_size": 64,
            # Text is 3-10 px at this size; keep it in the targets.
            "targets": {"min_text_size": 2},
        }
    )


def test_train_items(cfg: TrainConfig) -> None:
    ds = DetectionDataset(make_splits(cfg.data).train, cfg, train=True)
    item = ds[0]
    assert set(item) == {"image", "prob", "prob_mask", "thresh", "thresh_mask"}
    assert item["image"].shape == (3, 64, 64)
    for name in ("prob", "prob_mask", "thresh", "thresh_mask"):
        assert item[name].shape == (64, 64)
    assert all(v.dtype == torch.float32 for v in item.values())
    # ImageNet normalization: a mid-grey pixel is near zero, black is about -2.
    assert float(item["image"].min()) > -2.2 and float(item["image"].max()) < 2.7
    assert item["prob"].max() == 1 and float(item["thresh"].min()) >= 0.3 - 1e-6


def test_eval_items_and_default_collate(cfg: TrainConfig) -> None:
    val = make_splits(cfg.data).val
    ds = DetectionDataset(val, cfg, train=False)
    item = ds[1]
    assert item["image"].shape == (3, 64, 64)
    assert item["scale"] == pytest.approx(64 / 120) and item["index"] == 1
    assert ds.samples[1] is val[1]  # ground truth stays in original coordinates
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 64, 64)
    assert batch["scale"].dtype == torch.float64 and batch["index"].tolist() == [0, 1]


def test_augmentation_depends_on_seed_epoch_and_index_only(cfg: TrainConfig) -> None:
    samples = make_splits(cfg.data).train
    a, b = DetectionDataset(samples, cfg, True), DetectionDataset(samples, cfg, True)
    first = a[1]["image"]
    _ = a[0], b[2]  # reading other items in between changes nothing
    assert torch.equal(b[1]["image"], first)
    a.set_epoch(1)
    assert not torch.equal(a[1]["image"], first)
    workers = DataLoader(b, batch_size=2, num_workers=1, worker_init_fn=seed_worker)
    inline = DataLoader(a, batch_size=2)
    b.set_epoch(1)
    for x, y in zip(workers, inline, strict=True):
        for key in x:
            assert torch.equal(x[key], y[key])


def test_load_image(tmp_path: Path, cfg: TrainConfig) -> None:
    image = load_image(make_splits(cfg.data).train[0].image)
    assert image.shape == (80, 120, 3) and image.dtype == np.uint8
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"bad\.jpg: cannot read the image"):
        load_image(bad)
